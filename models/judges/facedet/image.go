package facedet

import (
	"fmt"
	"image"
	"image/color"
	"math"
)

// RGB is an 8-bit-range colour image held as float32, interleaved R, G, B per pixel, row by
// row: the layout the preprocessing of the face models works on.
type RGB struct {
	W, H int
	Pix  []float32 // len 3·W·H, values 0..255
}

// NewRGB returns a black w×h image.
func NewRGB(w, h int) *RGB { return &RGB{W: w, H: h, Pix: make([]float32, 3*w*h)} }

// FromImage converts img (any colour model, any bounds origin) to RGB; alpha is dropped after
// un-premultiplying, as a decoded PNG's colours are what a model sees.
func FromImage(img image.Image) *RGB {
	b := img.Bounds()
	m := NewRGB(b.Dx(), b.Dy())
	switch src := img.(type) {
	case *image.NRGBA:
		for y := range m.H {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			out := m.Pix[3*y*m.W:]
			for x := range m.W {
				out[3*x], out[3*x+1], out[3*x+2] = float32(row[4*x]), float32(row[4*x+1]), float32(row[4*x+2])
			}
		}
	case *image.RGBA:
		for y := range m.H {
			row := src.Pix[src.PixOffset(b.Min.X, b.Min.Y+y):]
			out := m.Pix[3*y*m.W:]
			for x := range m.W {
				r, g, bl, a := row[4*x], row[4*x+1], row[4*x+2], row[4*x+3]
				if a != 255 && a != 0 {
					c := color.NRGBAModel.Convert(color.RGBA{r, g, bl, a}).(color.NRGBA)
					r, g, bl = c.R, c.G, c.B
				}
				out[3*x], out[3*x+1], out[3*x+2] = float32(r), float32(g), float32(bl)
			}
		}
	default:
		for y := range m.H {
			for x := range m.W {
				c := color.NRGBAModel.Convert(img.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				i := 3 * (y*m.W + x)
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = float32(c.R), float32(c.G), float32(c.B)
			}
		}
	}
	return m
}

// Resize scales m to w×h bilinearly as cv2.resize's INTER_LINEAR does: a destination pixel
// centre maps to source (x+0.5)·W/w − 0.5, neighbours beyond the edge repeat the edge.
func (m *RGB) Resize(w, h int) *RGB {
	out := NewRGB(w, h)
	m.ResizeInto(out, w, h)
	return out
}

// ResizeInto writes m resized to w×h (as Resize) into the top-left corner of dst, which must
// be at least that large; the rest of dst is left as it is.
func (m *RGB) ResizeInto(dst *RGB, w, h int) {
	if w > dst.W || h > dst.H {
		panic(fmt.Sprintf("facedet: resize to %dx%d into a %dx%d image", w, h, dst.W, dst.H))
	}
	xs := linearTaps(w, m.W)
	ys := linearTaps(h, m.H)
	// Separable: each source row is interpolated horizontally once, when first needed (rows
	// are visited in order), then destination rows blend two of them vertically.
	rows := [2][]float32{make([]float32, 3*w), make([]float32, 3*w)}
	rowOf := [2]int{-1, -1}
	horizontal := func(src int) []float32 {
		for k := range rowOf {
			if rowOf[k] == src {
				return rows[k]
			}
		}
		// Evict the older row (empty slots hold −1): the row still needed is never the smaller.
		k := 0
		if rowOf[1] < rowOf[0] {
			k = 1
		}
		r := m.Pix[3*src*m.W:]
		o := rows[k]
		for x, tx := range xs {
			a, b := 3*tx.i0, 3*tx.i1
			o[3*x] = r[a] + tx.f*(r[b]-r[a])
			o[3*x+1] = r[a+1] + tx.f*(r[b+1]-r[a+1])
			o[3*x+2] = r[a+2] + tx.f*(r[b+2]-r[a+2])
		}
		rowOf[k] = src
		return o
	}
	for y, ty := range ys {
		top := horizontal(ty.i0)
		bot := horizontal(ty.i1)
		o := dst.Pix[3*y*dst.W : 3*y*dst.W+3*w]
		for i := range o {
			o[i] = top[i] + ty.f*(bot[i]-top[i])
		}
	}
}

// tap is one destination coordinate's two source neighbours and the weight of the second.
type tap struct {
	i0, i1 int
	f      float32
}

func linearTaps(dst, src int) []tap {
	taps := make([]tap, dst)
	scale := float64(src) / float64(dst)
	for i := range taps {
		s := (float64(i)+0.5)*scale - 0.5
		i0 := int(math.Floor(s))
		f := s - float64(i0)
		switch {
		case i0 < 0:
			i0, f = 0, 0
		case i0 >= src-1:
			i0, f = src-1, 0
		}
		taps[i] = tap{i0: i0, i1: min(i0+1, src-1), f: float32(f)}
	}
	return taps
}

// Affine is a 2×3 matrix mapping source pixel coordinates to destination ones:
// (x', y') = (A[0]x + A[1]y + A[2], A[3]x + A[4]y + A[5]).
type Affine [6]float64

// Apply maps the point (x, y).
func (a Affine) Apply(x, y float64) (float64, float64) {
	return a[0]*x + a[1]*y + a[2], a[3]*x + a[4]*y + a[5]
}

// Invert returns the inverse map; a singular matrix gives NaNs.
func (a Affine) Invert() Affine {
	det := a[0]*a[4] - a[1]*a[3]
	i0, i1, i3, i4 := a[4]/det, -a[1]/det, -a[3]/det, a[0]/det
	return Affine{i0, i1, -(i0*a[2] + i1*a[5]), i3, i4, -(i3*a[2] + i4*a[5])}
}

// Warp returns the w×h image whose pixel (x, y) is m sampled bilinearly at the source point
// t maps onto (x, y), as cv2.warpAffine(m, t, (w, h), borderValue=0): source pixels outside
// m count as black.
func (m *RGB) Warp(t Affine, w, h int) *RGB {
	out := NewRGB(w, h)
	inv := t.Invert()
	for y := range h {
		for x := range w {
			sx, sy := inv.Apply(float64(x), float64(y))
			m.sample(sx, sy, out.Pix[3*(y*w+x):3*(y*w+x)+3])
		}
	}
	return out
}

// sample writes the bilinear sample of m at (x, y) into dst[0:3], black outside.
func (m *RGB) sample(x, y float64, dst []float32) {
	if math.IsNaN(x) || math.IsNaN(y) || x <= -1 || y <= -1 || x >= float64(m.W) || y >= float64(m.H) {
		dst[0], dst[1], dst[2] = 0, 0, 0
		return
	}
	x0, y0 := int(math.Floor(x)), int(math.Floor(y))
	fx, fy := float32(x-float64(x0)), float32(y-float64(y0))
	w := [4]float32{(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy}
	var acc [3]float32
	for k, p := range [4][2]int{{x0, y0}, {x0 + 1, y0}, {x0, y0 + 1}, {x0 + 1, y0 + 1}} {
		if p[0] < 0 || p[1] < 0 || p[0] >= m.W || p[1] >= m.H || w[k] == 0 {
			continue
		}
		i := 3 * (p[1]*m.W + p[0])
		acc[0] += w[k] * m.Pix[i]
		acc[1] += w[k] * m.Pix[i+1]
		acc[2] += w[k] * m.Pix[i+2]
	}
	copy(dst, acc[:])
}

// Planar writes m into dst (len ≥ 3·W·H) as channel planes R, G, B, each value v as
// (v − mean)·scale: the CHW blob of cv2.dnn.blobFromImage(img, scale, size, mean, swapRB)
// for an RGB image.
func (m *RGB) Planar(dst []float32, mean, scale float32) {
	n := m.W * m.H
	r, g, b := dst[:n], dst[n:2*n], dst[2*n:3*n]
	for i := range n {
		r[i] = (m.Pix[3*i] - mean) * scale
		g[i] = (m.Pix[3*i+1] - mean) * scale
		b[i] = (m.Pix[3*i+2] - mean) * scale
	}
}

// Quantize rounds every value to the nearest integer in 0..255, in place: the 8-bit image
// OpenCV returns when it resizes or warps one (the references run cv2 on uint8 images, so
// their networks see whole pixel values). It returns m.
func (m *RGB) Quantize() *RGB {
	for i, v := range m.Pix {
		m.Pix[i] = float32(math.RoundToEven(float64(min(max(v, 0), 255))))
	}
	return m
}
