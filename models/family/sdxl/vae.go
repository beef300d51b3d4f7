package sdxl

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"

	"github.com/disintegration/imaging"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// Names of the VAE exports' inputs and outputs.
const (
	vaeEncIn      = "sample"
	vaeEncParams  = "latent_parameters" // optimum >= 1.23: the latent distribution's mean and log-variance
	vaeEncSampled = "latent_sample"     // older optimum: a draw from it, made inside the graph
	vaeDecIn      = "latent_sample"
	vaeDecOut     = "sample"
)

// Autoencoder is SDXL's VAE through ONNX Runtime. Images are centre-cropped to a square and
// resized to the VAE's sample_size (1024 for SDXL); a latent is the mean of the VAE encoder's
// latent distribution times scaling_factor, [latent_channels, size/8, size/8] (diffusers'
// vae.encode(x).latent_dist.mean * vae.config.scaling_factor; cocoflow takes the mean, not a
// sample, so that encoding is deterministic). Decode divides by scaling_factor before the
// decoder, as diffusers' pipelines do. Sessions open on first use; Autoencoder is safe for
// concurrent use.
type Autoencoder struct {
	l   *layout
	opt Options

	once     sync.Once
	openErr  error
	enc, dec *ort.Session
	encOut   string // vaeEncParams or vaeEncSampled
}

var _ family.Autoencoder = (*Autoencoder)(nil)

// newAutoencoder returns the VAE of the checked folder l.
func newAutoencoder(l *layout, opt Options) *Autoencoder { return &Autoencoder{l: l, opt: opt} }

// open starts both VAE sessions and checks their signatures.
func (a *Autoencoder) open() error {
	a.once.Do(func() {
		c := a.l.vae.LatentChannels
		a.enc, a.openErr = openSession(a.l.path(dirVAEEncoder, ModelFile), nil, a.opt, []want{{vaeEncIn, "float32", 4, 1, 3}})
		if a.openErr != nil {
			return
		}
		outs := a.enc.Outputs()
		switch {
		case hasTensor(outs, vaeEncParams, 2*c):
			a.encOut = vaeEncParams
		case hasTensor(outs, vaeEncSampled, c):
			a.encOut = vaeEncSampled
		default:
			a.openErr = fmt.Errorf("%s: outputs %s, want %s [batch, %d, h, w] (or %s [batch, %d, h, w] from optimum < 1.23)",
				a.enc.Path(), describe(outs), vaeEncParams, 2*c, vaeEncSampled, c)
			return
		}
		a.dec, a.openErr = openSession(a.l.path(dirVAEDecoder, ModelFile), nil, a.opt, []want{{vaeDecIn, "float32", 4, 1, int64(c)}})
		if a.openErr == nil && !hasTensor(a.dec.Outputs(), vaeDecOut, 3) {
			a.openErr = fmt.Errorf("%s: outputs %s, want %s [batch, 3, H, W]", a.dec.Path(), describe(a.dec.Outputs()), vaeDecOut)
		}
	})
	return a.openErr
}

// Close releases the sessions.
func (a *Autoencoder) Close() error {
	var err error
	for _, s := range []*ort.Session{a.enc, a.dec} {
		if s != nil {
			if e := s.Close(); e != nil && err == nil {
				err = e
			}
		}
	}
	return err
}

// size is the side of the images the VAE maps.
func (a *Autoencoder) size() int { return a.l.imageSize }

// latentShape is [channels, size/f, size/f].
func (a *Autoencoder) latentShape() []int {
	s := a.l.imageSize / a.l.factor
	return []int{a.l.vae.LatentChannels, s, s}
}

// square centre-crops img to a square and resizes it to size x size.
func square(img image.Image, size int) *image.NRGBA {
	return imaging.Fill(img, size, size, imaging.Center, imaging.Lanczos)
}

// Encode returns the scaled latent of img, [latent_channels, size/8, size/8].
func (a *Autoencoder) Encode(img image.Image) ([]float32, []int, error) {
	if err := a.open(); err != nil {
		return nil, nil, err
	}
	if b := img.Bounds(); b.Dx() < 1 || b.Dy() < 1 {
		return nil, nil, fmt.Errorf("sdxl vae: empty image")
	}
	S := a.size()
	im := square(img, S)
	x := make([]float32, 3*S*S) // [1, 3, S, S] in [-1, 1]
	for y := range S {
		for xx := range S {
			p := im.Pix[y*im.Stride+4*xx:]
			for c := range 3 {
				x[c*S*S+y*S+xx] = float32(p[c])/127.5 - 1
			}
		}
	}
	out, err := a.enc.Run(map[string]ort.Tensor{vaeEncIn: ort.NewTensor([]int64{1, 3, int64(S), int64(S)}, x)})
	if err != nil {
		return nil, nil, err
	}
	shape := a.latentShape()
	n := shape[0] * shape[1] * shape[2]
	vals, err := ort.Data[float32](out[a.encOut])
	if err != nil || len(vals) < n {
		return nil, nil, fmt.Errorf("%s: output %s has %d values, want at least %d for %v (%v)", a.enc.Path(), a.encOut, len(vals), n, shape, err)
	}
	lat := make([]float32, n)
	scale := float32(*a.l.vae.ScalingFactor)
	for i, v := range vals[:n] { // latent_parameters: the mean's channels come first
		lat[i] = v * scale
	}
	return lat, shape, nil
}

// Decode returns the image of a scaled latent of shape [latent_channels, h, w].
func (a *Autoencoder) Decode(latent []float32, shape []int) (*image.NRGBA, error) {
	if err := a.open(); err != nil {
		return nil, err
	}
	c := a.l.vae.LatentChannels
	if len(shape) != 3 || shape[0] != c || shape[1] < 1 || shape[2] < 1 || len(latent) != shape[0]*shape[1]*shape[2] {
		return nil, fmt.Errorf("sdxl vae: latent of shape %v with %d values, want [%d, h, w]", shape, len(latent), c)
	}
	z := make([]float32, len(latent))
	scale := float32(*a.l.vae.ScalingFactor)
	for i, v := range latent {
		z[i] = v / scale
	}
	out, err := a.dec.Run(map[string]ort.Tensor{vaeDecIn: ort.NewTensor([]int64{1, int64(c), int64(shape[1]), int64(shape[2])}, z)})
	if err != nil {
		return nil, err
	}
	t := out[vaeDecOut]
	px, err := ort.Data[float32](t)
	if err != nil || len(t.Shape) != 4 || t.Shape[1] != 3 {
		return nil, fmt.Errorf("%s: output %s has shape %v, want [1, 3, H, W] (%v)", a.dec.Path(), vaeDecOut, t.Shape, err)
	}
	H, W := int(t.Shape[2]), int(t.Shape[3])
	img := image.NewNRGBA(image.Rect(0, 0, W, H))
	for y := range H {
		for x := range W {
			var p [3]uint8
			for ch := range 3 {
				v := (float64(px[ch*H*W+y*W+x]) + 1) / 2 // [-1, 1] -> [0, 1], as diffusers' image processor
				p[ch] = uint8(math.Round(math.Min(math.Max(v, 0), 1) * 255))
			}
			img.SetNRGBA(x, y, color.NRGBA{R: p[0], G: p[1], B: p[2], A: 255})
		}
	}
	return img, nil
}

// Mask maps a subject mask to latent resolution: the mask is cropped and resized as Encode
// crops and resizes its image, then each latent cell holds the fraction of its 8 x 8 pixels
// that are subject (value >= 128), in [0, 1]. It returns the [h, w] mask and its shape.
func (a *Autoencoder) Mask(m *image.Gray) ([]float32, []int, error) {
	if b := m.Bounds(); b.Dx() < 1 || b.Dy() < 1 {
		return nil, nil, fmt.Errorf("sdxl vae: empty mask")
	}
	S, f := a.size(), a.l.factor
	im := square(m, S)
	h := S / f
	out := make([]float32, h*h)
	for y := range h {
		for x := range h {
			n := 0
			for dy := range f {
				for dx := range f {
					if im.Pix[(y*f+dy)*im.Stride+4*(x*f+dx)] >= 128 {
						n++
					}
				}
			}
			out[y*h+x] = float32(n) / float32(f*f)
		}
	}
	return out, []int{h, h}, nil
}
