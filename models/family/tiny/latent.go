package tiny

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// Latent is the tiny family's autoencoder: a fixed, invertible patch transform instead of a
// learned VAE. An S x S RGB image becomes an (S/F) x (S/F) grid of F*F*3 channels
// (space-to-depth), each pixel channel normalised with fixed per-colour statistics, so the
// latent has roughly zero mean and unit variance like SD's scaled VAE latents.
//
// Layout: latent[(y*W + x)*C + ((dy*F + dx)*3 + c)] = (pixel(F*y+dy, F*x+dx)[c] - Mean[c]) / Std[c]
// with W = S/F and C = F*F*3 — row-major [H, W, C], ready to be read as H*W tokens of C features.
type Latent struct {
	F    int        // patch factor
	Mean [3]float32 // per-colour mean of pixel values in [0, 1]
	Std  [3]float32 // per-colour standard deviation
}

// DefaultLatent is the transform of the tiny family (measured on synthfaces: see latent_test.go).
var DefaultLatent = Latent{F: 4, Mean: [3]float32{0.49, 0.48, 0.43}, Std: [3]float32{0.27, 0.26, 0.28}}

// Shape returns the latent shape [H, W, C] of a size x size image.
func (l Latent) Shape(size int) []int {
	return []int{size / l.F, size / l.F, l.F * l.F * 3}
}

// Encode maps an image to its latent. The image must be square with a side divisible by F.
func (l Latent) Encode(img image.Image) ([]float32, []int, error) {
	b := img.Bounds()
	if b.Dx() != b.Dy() || b.Dx()%l.F != 0 {
		return nil, nil, fmt.Errorf("tiny latent: image is %dx%d, want a square with a side divisible by %d", b.Dx(), b.Dy(), l.F)
	}
	shape := l.Shape(b.Dx())
	h, w, c := shape[0], shape[1], shape[2]
	out := make([]float32, h*w*c)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			base := (y*w + x) * c
			for dy := 0; dy < l.F; dy++ {
				for dx := 0; dx < l.F; dx++ {
					r, g, bl, _ := img.At(b.Min.X+l.F*x+dx, b.Min.Y+l.F*y+dy).RGBA()
					k := base + (dy*l.F+dx)*3
					out[k] = (float32(r)/0xffff - l.Mean[0]) / l.Std[0]
					out[k+1] = (float32(g)/0xffff - l.Mean[1]) / l.Std[1]
					out[k+2] = (float32(bl)/0xffff - l.Mean[2]) / l.Std[2]
				}
			}
		}
	}
	return out, shape, nil
}

// Decode maps a latent of the given shape back to an image, clamping to the valid range.
func (l Latent) Decode(latent []float32, shape []int) (*image.NRGBA, error) {
	if len(shape) != 3 || shape[2] != l.F*l.F*3 || len(latent) != shape[0]*shape[1]*shape[2] {
		return nil, fmt.Errorf("tiny latent: shape %v with %d values does not match patch factor %d", shape, len(latent), l.F)
	}
	h, w, c := shape[0], shape[1], shape[2]
	img := image.NewNRGBA(image.Rect(0, 0, w*l.F, h*l.F))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			base := (y*w + x) * c
			for dy := 0; dy < l.F; dy++ {
				for dx := 0; dx < l.F; dx++ {
					k := base + (dy*l.F+dx)*3
					img.SetNRGBA(l.F*x+dx, l.F*y+dy, color.NRGBA{
						R: toByte(latent[k]*l.Std[0] + l.Mean[0]),
						G: toByte(latent[k+1]*l.Std[1] + l.Mean[1]),
						B: toByte(latent[k+2]*l.Std[2] + l.Mean[2]),
						A: 255,
					})
				}
			}
		}
	}
	return img, nil
}

// Mask maps a pixel mask to latent resolution: each latent cell holds the fraction of its
// F x F pixels that are subject, in [0, 1].
func (l Latent) Mask(m *image.Gray) ([]float32, []int, error) {
	b := m.Bounds()
	if b.Dx() != b.Dy() || b.Dx()%l.F != 0 {
		return nil, nil, fmt.Errorf("tiny latent: mask is %dx%d, want a square with a side divisible by %d", b.Dx(), b.Dy(), l.F)
	}
	h, w := b.Dy()/l.F, b.Dx()/l.F
	out := make([]float32, h*w)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			n := 0
			for dy := 0; dy < l.F; dy++ {
				for dx := 0; dx < l.F; dx++ {
					if m.GrayAt(b.Min.X+l.F*x+dx, b.Min.Y+l.F*y+dy).Y >= 128 {
						n++
					}
				}
			}
			out[y*w+x] = float32(n) / float32(l.F*l.F)
		}
	}
	return out, []int{h, w}, nil
}

func toByte(v float32) uint8 {
	return uint8(math.Round(float64(min(max(v, 0), 1)) * 255))
}
