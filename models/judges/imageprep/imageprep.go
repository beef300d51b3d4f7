// Package imageprep turns images into the input tensors of the paper's image judges, pixel for
// pixel as their Python reference pipelines do: PIL's antialiased bicubic resize (the filter
// torchvision's Resize applies to PIL images), torchvision's centre crop, ToTensor and Normalize.
// CLIP's preprocessing (resize of the short side, centre crop) and DreamSim's (resize to a
// square) are both built from these.
package imageprep

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// CLIP's normalisation constants (OpenAI's _transform, also DreamSim's CLIP branches).
var (
	CLIPMean = [3]float32{0.48145466, 0.4578275, 0.40821073}
	CLIPStd  = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// RGB is an 8-bit RGB image, row-major, three bytes a pixel: PIL's "RGB" mode.
type RGB struct {
	W, H int
	Pix  []uint8
}

// At returns the three channels of pixel (x, y).
func (m RGB) At(x, y int) (r, g, b uint8) {
	i := 3 * (y*m.W + x)
	return m.Pix[i], m.Pix[i+1], m.Pix[i+2]
}

// FromImage converts img to RGB as PIL's convert("RGB") does: colour values are kept
// un-premultiplied and alpha is dropped (an opaque image keeps its exact values).
func FromImage(img image.Image) RGB {
	b := img.Bounds()
	out := RGB{W: b.Dx(), H: b.Dy(), Pix: make([]uint8, 3*b.Dx()*b.Dy())}
	i := 0
	switch src := img.(type) {
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := src.Pix[src.PixOffset(b.Min.X, y):]
			for x := 0; x < out.W; x++ {
				copy(out.Pix[i:i+3], row[4*x:4*x+3])
				i += 3
			}
		}
		return out
	case *image.RGBA:
		if src.Opaque() {
			for y := b.Min.Y; y < b.Max.Y; y++ {
				row := src.Pix[src.PixOffset(b.Min.X, y):]
				for x := 0; x < out.W; x++ {
					copy(out.Pix[i:i+3], row[4*x:4*x+3])
					i += 3
				}
			}
			return out
		}
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			out.Pix[i], out.Pix[i+1], out.Pix[i+2] = c.R, c.G, c.B
			i += 3
		}
	}
	return out
}

// precision is PIL's PRECISION_BITS for 8-bit images: the fixed-point weights have 22
// fractional bits, so that 255 × the weights' sum fits an int32.
const precision = 32 - 8 - 2

// bicubic is PIL's bicubic filter, a = -0.5, support 2.
func bicubic(x float64) float64 {
	const a = -0.5
	x = math.Abs(x)
	switch {
	case x < 1:
		t := float64((a+2)*x) - (a + 3)
		t = float64(t * x)
		return float64(t*x) + 1
	case x < 2:
		t := float64((x-5)*x) + 8
		t = float64(t*x) - 4
		return float64(t * a)
	}
	return 0
}

// kernel is the 1-D resampling of one axis: output i reads n[i] inputs from lo[i] with
// weights w[i*size : i*size+n[i]] in 22-bit fixed point.
type kernel struct {
	lo, n []int
	w     []int32
	size  int
}

// newKernel is PIL's precompute_coeffs for the box [0, in) scaled to out samples, followed by
// normalize_coeffs_8bpc. The float64 conversions keep Go from fusing multiply-adds, so every
// double is rounded as C rounds it.
func newKernel(in, out int) kernel {
	scale := float64(in) / float64(out)
	filterscale := max(scale, 1)
	support := 2 * filterscale
	size := int(math.Ceil(support))*2 + 1
	k := kernel{lo: make([]int, out), n: make([]int, out), w: make([]int32, out*size), size: size}
	ww := make([]float64, size)
	for xx := range out {
		center := float64((float64(xx) + 0.5) * scale)
		ss := 1 / filterscale
		xmin := max(int(center-support+0.5), 0)
		xmax := min(int(center+support+0.5), in) - xmin
		sum := 0.0
		for x := range xmax {
			ww[x] = bicubic(float64((float64(x+xmin) - center + 0.5) * ss))
			sum += ww[x]
		}
		for x := range xmax {
			v := ww[x]
			if sum != 0 {
				v /= sum
			}
			if v < 0 {
				k.w[xx*size+x] = int32(-0.5 + float64(v*(1<<precision)))
			} else {
				k.w[xx*size+x] = int32(0.5 + float64(v*(1<<precision)))
			}
		}
		k.lo[xx], k.n[xx] = xmin, xmax
	}
	return k
}

// clip8 is PIL's rounding of a fixed-point sum (which started at one half) to uint8.
func clip8(v int32) uint8 {
	switch {
	case v >= 1<<precision<<8:
		return 255
	case v <= 0:
		return 0
	}
	return uint8(v >> precision)
}

// horizontal resamples rows [y0, y0+h) of src to width len(k.lo).
func horizontal(src RGB, y0, h int, k kernel) RGB {
	w := len(k.lo)
	out := RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		row := src.Pix[3*(y0+y)*src.W:]
		dst := out.Pix[3*y*w:]
		for xx := range w {
			r, g, b := int32(1<<(precision-1)), int32(1<<(precision-1)), int32(1<<(precision-1))
			n := k.n[xx]
			wt := k.w[xx*k.size : xx*k.size+n]
			px := row[3*k.lo[xx] : 3*(k.lo[xx]+n)]
			for x, c := range wt {
				p := px[3*x : 3*x+3 : 3*x+3]
				r += int32(p[0]) * c
				g += int32(p[1]) * c
				b += int32(p[2]) * c
			}
			d := dst[3*xx : 3*xx+3 : 3*xx+3]
			d[0], d[1], d[2] = clip8(r), clip8(g), clip8(b)
		}
	}
	return out
}

// vertical resamples src to height len(k.lo), with k's row offsets shifted by -y0.
func vertical(src RGB, y0 int, k kernel) RGB {
	h := len(k.lo)
	out := RGB{W: src.W, H: h, Pix: make([]uint8, 3*src.W*h)}
	acc := make([]int32, 3*src.W)
	for yy := range h {
		for i := range acc {
			acc[i] = 1 << (precision - 1)
		}
		for y, c := range k.w[yy*k.size : yy*k.size+k.n[yy]] {
			row := src.Pix[3*(k.lo[yy]-y0+y)*src.W : 3*(k.lo[yy]-y0+y+1)*src.W]
			for i, p := range row {
				acc[i] += int32(p) * c
			}
		}
		dst := out.Pix[3*yy*src.W:]
		for i, v := range acc {
			dst[i] = clip8(v)
		}
	}
	return out
}

// Resize scales src to w×h exactly as PIL's Image.resize((w, h), Image.BICUBIC) does for an RGB
// image (ImagingResample): an antialiased bicubic filter whose support grows with the
// downscale factor, a horizontal pass over the rows the vertical pass needs, rounded to uint8,
// then a vertical pass. An axis whose size does not change is not resampled. It panics on a
// non-positive size (a programming error); an empty src is an error of its callers.
func Resize(src RGB, w, h int) RGB {
	if w <= 0 || h <= 0 {
		panic(fmt.Sprintf("imageprep.Resize to %dx%d", w, h))
	}
	out := src
	kv := newKernel(src.H, h)
	y0 := 0
	if w != src.W {
		first, last := kv.lo[0], kv.lo[h-1]+kv.n[h-1]
		out = horizontal(src, first, last-first, newKernel(src.W, w))
		y0 = first
	}
	if h != src.H {
		out = vertical(out, y0, kv)
	}
	if w == src.W && h == src.H {
		out = RGB{W: w, H: h, Pix: append([]uint8(nil), src.Pix...)}
	}
	return out
}

// Crop returns the w×h region of src at (left, top), which must lie inside it.
func Crop(src RGB, left, top, w, h int) RGB {
	out := RGB{W: w, H: h, Pix: make([]uint8, 3*w*h)}
	for y := range h {
		copy(out.Pix[3*y*w:3*(y+1)*w], src.Pix[3*((top+y)*src.W+left):])
	}
	return out
}

// CLIP is OpenAI CLIP's image preprocessing up to the tensor: torchvision's Resize(size,
// BICUBIC) on a PIL image (the short side becomes size, the long side int(size·long/short)),
// then CenterCrop(size), whose offsets are int(round((d − size)/2)) with Python's
// round-half-to-even. (Hugging Face's CLIPImageProcessor floors the offsets instead, so for an
// odd margin its crop is one pixel up or left of this one.)
func CLIP(src RGB, size int) (RGB, error) {
	if err := check(src); err != nil {
		return RGB{}, err
	}
	short, long := min(src.W, src.H), max(src.W, src.H)
	newLong := int(float64(size*long) / float64(short))
	w, h := newLong, size
	if src.W <= src.H {
		w, h = size, newLong
	}
	if w != src.W || h != src.H {
		src = Resize(src, w, h)
	}
	top := int(math.RoundToEven(float64(h-size) / 2))
	left := int(math.RoundToEven(float64(w-size) / 2))
	return Crop(src, left, top, size, size), nil
}

// Square is torchvision's Resize((size, size), BICUBIC) on a PIL image, DreamSim's
// preprocessing: both sides become size, the aspect ratio is not kept.
func Square(src RGB, size int) (RGB, error) {
	if err := check(src); err != nil {
		return RGB{}, err
	}
	return Resize(src, size, size), nil
}

func check(src RGB) error {
	if src.W <= 0 || src.H <= 0 {
		return fmt.Errorf("empty image (%dx%d)", src.W, src.H)
	}
	return nil
}

// Batch converts imgs with FromImage and then prep, on up to GOMAXPROCS goroutines, and
// returns the results in order. The first error (by image index) is returned as "image I: ...".
func Batch(imgs []image.Image, prep func(RGB) (RGB, error)) ([]RGB, error) {
	out := make([]RGB, len(imgs))
	errs := make([]error, len(imgs))
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(imgs)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(imgs); i = int(next.Add(1) - 1) {
				out[i], errs[i] = prep(FromImage(imgs[i]))
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
	}
	return out, nil
}

// Tensor writes imgs, which must all be w×h, into one float32 batch [N, 3, h, w] as
// torchvision's ToTensor (v/255) and, when std is not nil, Normalize ((x − mean)/std) do.
func Tensor(imgs []RGB, mean, std *[3]float32) ([]float32, error) {
	if len(imgs) == 0 {
		return nil, nil
	}
	w, h := imgs[0].W, imgs[0].H
	plane := w * h
	out := make([]float32, len(imgs)*3*plane)
	for n, m := range imgs {
		if m.W != w || m.H != h {
			return nil, fmt.Errorf("image %d is %dx%d, want %dx%d like image 0", n, m.W, m.H, w, h)
		}
		base := out[n*3*plane:]
		for c := range 3 {
			dst := base[c*plane : (c+1)*plane]
			for i := range dst {
				v := float32(m.Pix[3*i+c]) / 255
				if std != nil {
					v = (v - mean[c]) / std[c]
				}
				dst[i] = v
			}
		}
	}
	return out, nil
}
