package synthfaces

import (
	"image"
	"math"
	"slices"
	"sync"
)

// This file is the rasterizer: a supersampled float canvas, affine frames and a
// small set of analytic shapes. Shapes are tested at the centre of every
// sub-pixel inside their bounding box; the canvas is box-filtered down to the
// output size at the end, which gives anti-aliased edges and a subject
// coverage from which the exact mask is thresholded.

// superSample is the number of sub-pixels per output pixel along each axis.
const superSample = 4

// rgb is a colour with channels in [0, 1].
type rgb struct{ r, g, b float32 }

// scale multiplies every channel by k (no clamping; the final conversion clamps).
func (c rgb) scale(k float32) rgb { return rgb{c.r * k, c.g * k, c.b * k} }

// mix returns (1-t)*c + t*d.
func (c rgb) mix(d rgb, t float32) rgb {
	return rgb{c.r + (d.r-c.r)*t, c.g + (d.g-c.g)*t, c.b + (d.b-c.b)*t}
}

// hex builds a colour from 0xRRGGBB.
func hex(v uint32) rgb {
	return rgb{float32(v>>16&0xff) / 255, float32(v>>8&0xff) / 255, float32(v&0xff) / 255}
}

// box is an axis-aligned rectangle in some frame's local coordinates.
type box struct{ x0, y0, x1, y1 float32 }

// shape is a region of a local frame: a bounding box and a point test.
type shape interface {
	bounds() box
	inside(x, y float32) bool
	// convex reports whether every line meets the shape in one segment, which
	// lets the painter stop a row once it has left the shape.
	convex() bool
}

// affine maps local coordinates to canvas sub-pixel coordinates:
// X = a*x + b*y + e, Y = c*x + d*y + f.
type affine struct{ a, b, c, d, e, f float32 }

// apply maps a local point to canvas coordinates.
func (t affine) apply(x, y float32) (float32, float32) {
	return t.a*x + t.b*y + t.e, t.c*x + t.d*y + t.f
}

// invert returns the inverse map; frames built here are never singular.
func (t affine) invert() affine {
	det := t.a*t.d - t.b*t.c
	ia, ib := t.d/det, -t.b/det
	ic, id := -t.c/det, t.a/det
	return affine{ia, ib, ic, id, -(ia*t.e + ib*t.f), -(ic*t.e + id*t.f)}
}

// frame builds the affine map of a frame whose origin sits at (cx, cy) in
// image fractions, whose unit is `unit` image heights and which is rotated by
// `angle` radians, for a canvas of side n sub-pixels.
func frame(n int, cx, cy, unit, angle float32) affine {
	s := float32(n) * unit
	cs := float32(math.Cos(float64(angle)))
	sn := float32(math.Sin(float64(angle)))
	return affine{s * cs, -s * sn, s * sn, s * cs, float32(n) * cx, float32(n) * cy}
}

// canvas is a square supersampled RGB buffer plus a per-sub-pixel subject flag.
type canvas struct {
	n    int       // side in sub-pixels
	pix  []float32 // 3 floats per sub-pixel, row-major
	subj []bool    // true where the subject was painted
}

var canvasPool = sync.Pool{New: func() any { return new(canvas) }}

// getCanvas returns a cleared canvas of side n from the pool.
func getCanvas(n int) *canvas {
	c := canvasPool.Get().(*canvas)
	if cap(c.pix) < 3*n*n {
		c.pix = make([]float32, 3*n*n)
		c.subj = make([]bool, n*n)
	}
	c.n = n
	c.pix = c.pix[:3*n*n]
	c.subj = c.subj[:n*n]
	clear(c.pix)
	clear(c.subj)
	return c
}

// paint fills shape s, given in the frame t, with colour col at opacity alpha.
// When subject is true the covered sub-pixels become part of the subject mask.
func (c *canvas) paint(t affine, s shape, col rgb, alpha float32, subject bool) {
	b := s.bounds()
	if b.x0 > b.x1 || b.y0 > b.y1 {
		return
	}
	xs := [4]float32{}
	ys := [4]float32{}
	xs[0], ys[0] = t.apply(b.x0, b.y0)
	xs[1], ys[1] = t.apply(b.x1, b.y0)
	xs[2], ys[2] = t.apply(b.x0, b.y1)
	xs[3], ys[3] = t.apply(b.x1, b.y1)
	minX, maxX, minY, maxY := xs[0], xs[0], ys[0], ys[0]
	for i := 1; i < 4; i++ {
		minX, maxX = min(minX, xs[i]), max(maxX, xs[i])
		minY, maxY = min(minY, ys[i]), max(maxY, ys[i])
	}
	x0, x1 := clampInt(int(math.Floor(float64(minX))), 0, c.n), clampInt(int(math.Ceil(float64(maxX))), 0, c.n)
	y0, y1 := clampInt(int(math.Floor(float64(minY))), 0, c.n), clampInt(int(math.Ceil(float64(maxY))), 0, c.n)
	if x0 >= x1 || y0 >= y1 {
		return
	}
	inv := t.invert()
	opaque := alpha >= 1
	convex := s.convex()
	last := float32(x1 - x0 - 1)
	for py := y0; py < y1; py++ {
		X, Y := float32(x0)+0.5, float32(py)+0.5
		lx0 := inv.a*X + inv.b*Y + inv.e
		ly0 := inv.c*X + inv.d*Y + inv.f
		// Clip the row to the part whose local coordinates fall in the box.
		lo, hi, ok := clipSpan(lx0, inv.a, b.x0, b.x1, 0, last)
		if ok {
			lo, hi, ok = clipSpan(ly0, inv.c, b.y0, b.y1, lo, hi)
		}
		if !ok {
			continue
		}
		entered := false
		for k := int(lo); k <= int(hi); k++ {
			kf := float32(k)
			if !s.inside(lx0+inv.a*kf, ly0+inv.c*kf) {
				if entered && convex {
					break
				}
				continue
			}
			entered = true
			i := py*c.n + x0 + k
			p := c.pix[3*i : 3*i+3 : 3*i+3]
			if opaque {
				p[0], p[1], p[2] = col.r, col.g, col.b
			} else {
				p[0] += (col.r - p[0]) * alpha
				p[1] += (col.g - p[1]) * alpha
				p[2] += (col.b - p[2]) * alpha
			}
			if subject {
				c.subj[i] = true
			}
		}
	}
}

// clipSpan narrows the step range [lo, hi] to the steps k where v0 + dv*k
// lies in [vlo, vhi]; ok is false when nothing is left.
func clipSpan(v0, dv, vlo, vhi, lo, hi float32) (float32, float32, bool) {
	if dv == 0 {
		return lo, hi, v0 >= vlo && v0 <= vhi
	}
	t1, t2 := (vlo-v0)/dv, (vhi-v0)/dv
	if t1 > t2 {
		t1, t2 = t2, t1
	}
	lo = max(lo, float32(math.Ceil(float64(t1))))
	hi = min(hi, float32(math.Floor(float64(t2))))
	return lo, hi, lo <= hi
}

// vgradient fills the rows between image fractions y0 and y1 (full width) with
// a vertical gradient from top to bottom. It never touches the subject mask.
func (c *canvas) vgradient(y0, y1 float32, top, bottom rgb) {
	r0 := clampInt(int(math.Floor(float64(y0*float32(c.n)))), 0, c.n)
	r1 := clampInt(int(math.Ceil(float64(y1*float32(c.n)))), 0, c.n)
	for py := r0; py < r1; py++ {
		t := (float32(py) + 0.5) / float32(c.n)
		if y1 > y0 {
			t = (t - y0) / (y1 - y0)
		}
		col := top.mix(bottom, min(max(t, 0), 1))
		row := c.pix[3*py*c.n : 3*(py+1)*c.n]
		for i := 0; i < len(row); i += 3 {
			row[i], row[i+1], row[i+2] = col.r, col.g, col.b
		}
	}
}

// downsample box-filters the canvas into img and mask (side n/superSample),
// applying the lighting field light(x, y) (x, y in image fractions) to colours.
// A pixel belongs to the mask when at least half its sub-pixels are subject.
func (c *canvas) downsample(img *image.NRGBA, mask *image.Gray, light func(x, y float32) rgb) {
	size := c.n / superSample
	const area = superSample * superSample
	inv := float32(1) / area
	for oy := 0; oy < size; oy++ {
		for ox := 0; ox < size; ox++ {
			var r, g, b float32
			cover := 0
			for sy := 0; sy < superSample; sy++ {
				i := (oy*superSample+sy)*c.n + ox*superSample
				for sx := 0; sx < superSample; sx++ {
					p := c.pix[3*(i+sx) : 3*(i+sx)+3 : 3*(i+sx)+3]
					r += p[0]
					g += p[1]
					b += p[2]
					if c.subj[i+sx] {
						cover++
					}
				}
			}
			l := light((float32(ox)+0.5)/float32(size), (float32(oy)+0.5)/float32(size))
			o := img.PixOffset(ox, oy)
			img.Pix[o] = toByte(r * inv * l.r)
			img.Pix[o+1] = toByte(g * inv * l.g)
			img.Pix[o+2] = toByte(b * inv * l.b)
			img.Pix[o+3] = 255
			if 2*cover >= area {
				mask.Pix[mask.PixOffset(ox, oy)] = 255
			} else {
				mask.Pix[mask.PixOffset(ox, oy)] = 0
			}
		}
	}
}

// toByte converts a channel in [0, 1] (clamped) to 0..255 with rounding.
func toByte(v float32) uint8 {
	if v <= 0 {
		return 0
	}
	if v >= 1 {
		return 255
	}
	return uint8(v*255 + 0.5)
}

func clampInt(v, lo, hi int) int { return min(max(v, lo), hi) }

// ---- shapes ----

// ellipse is an axis-aligned ellipse.
type ellipse struct{ cx, cy, rx, ry float32 }

func (ellipse) convex() bool  { return true }
func (e ellipse) bounds() box { return box{e.cx - e.rx, e.cy - e.ry, e.cx + e.rx, e.cy + e.ry} }
func (e ellipse) inside(x, y float32) bool {
	u, v := (x-e.cx)/e.rx, (y-e.cy)/e.ry
	return u*u+v*v <= 1
}

// circle returns an ellipse with equal radii.
func circle(cx, cy, r float32) ellipse { return ellipse{cx, cy, r, r} }

// rotEllipse is an ellipse rotated by an angle whose cosine and sine are given.
type rotEllipse struct{ cx, cy, rx, ry, cs, sn float32 }

func newRotEllipse(cx, cy, rx, ry, angle float32) rotEllipse {
	return rotEllipse{cx, cy, rx, ry, float32(math.Cos(float64(angle))), float32(math.Sin(float64(angle)))}
}

func (rotEllipse) convex() bool { return true }
func (e rotEllipse) bounds() box {
	r := max(e.rx, e.ry)
	return box{e.cx - r, e.cy - r, e.cx + r, e.cy + r}
}
func (e rotEllipse) inside(x, y float32) bool {
	dx, dy := x-e.cx, y-e.cy
	u := (dx*e.cs + dy*e.sn) / e.rx
	v := (-dx*e.sn + dy*e.cs) / e.ry
	return u*u+v*v <= 1
}

// ring is the band between an ellipse and the same ellipse shrunk by width.
type ring struct {
	e     ellipse
	width float32
}

func (ring) convex() bool  { return false }
func (r ring) bounds() box { return r.e.bounds() }
func (r ring) inside(x, y float32) bool {
	if !r.e.inside(x, y) {
		return false
	}
	in := ellipse{r.e.cx, r.e.cy, r.e.rx - r.width, r.e.ry - r.width}
	return in.rx <= 0 || in.ry <= 0 || !in.inside(x, y)
}

// rect is an axis-aligned rectangle.
type rect box

func (rect) convex() bool  { return true }
func (r rect) bounds() box { return box(r) }
func (r rect) inside(x, y float32) bool {
	return x >= r.x0 && x <= r.x1 && y >= r.y0 && y <= r.y1
}

// roundRect is a rectangle with corners rounded by radius rad.
type roundRect struct {
	box
	rad float32
}

func (roundRect) convex() bool  { return true }
func (r roundRect) bounds() box { return r.box }
func (r roundRect) inside(x, y float32) bool {
	if x < r.x0 || x > r.x1 || y < r.y0 || y > r.y1 {
		return false
	}
	dx := max(r.x0+r.rad-x, x-(r.x1-r.rad), 0)
	dy := max(r.y0+r.rad-y, y-(r.y1-r.rad), 0)
	return dx*dx+dy*dy <= r.rad*r.rad
}

// poly is a convex polygon given in either winding order.
type poly []pt

type pt struct{ x, y float32 }

func (poly) convex() bool { return true }
func (p poly) bounds() box {
	b := box{p[0].x, p[0].y, p[0].x, p[0].y}
	for _, q := range p[1:] {
		b.x0, b.x1 = min(b.x0, q.x), max(b.x1, q.x)
		b.y0, b.y1 = min(b.y0, q.y), max(b.y1, q.y)
	}
	return b
}
func (p poly) inside(x, y float32) bool {
	var pos, neg bool
	for i := range p {
		a, b := p[i], p[(i+1)%len(p)]
		cr := (b.x-a.x)*(y-a.y) - (b.y-a.y)*(x-a.x)
		if cr > 0 {
			pos = true
		} else if cr < 0 {
			neg = true
		}
		if pos && neg {
			return false
		}
	}
	return true
}

// capsule is the set of points within r of the segment a-b.
type capsule struct{ ax, ay, bx, by, r float32 }

func (capsule) convex() bool { return true }
func (c capsule) bounds() box {
	return box{min(c.ax, c.bx) - c.r, min(c.ay, c.by) - c.r, max(c.ax, c.bx) + c.r, max(c.ay, c.by) + c.r}
}
func (c capsule) inside(x, y float32) bool {
	dx, dy := c.bx-c.ax, c.by-c.ay
	px, py := x-c.ax, y-c.ay
	l2 := dx*dx + dy*dy
	t := float32(0)
	if l2 > 0 {
		t = min(max((px*dx+py*dy)/l2, 0), 1)
	}
	ex, ey := px-t*dx, py-t*dy
	return ex*ex+ey*ey <= c.r*c.r
}

// curve is a parabolic stroke: centre line y = y0 + bend*(1-u²) with
// u = (x-cx)/hw in [-1, 1], half-thickness thick at the middle narrowing to
// thick*(1-taper) at the ends. bend > 0 sags downwards (a smile).
type curve struct{ cx, y0, hw, bend, thick, taper float32 }

func (curve) convex() bool { return false }
func (c curve) bounds() box {
	lo, hi := min(c.y0, c.y0+c.bend), max(c.y0, c.y0+c.bend)
	return box{c.cx - c.hw, lo - c.thick, c.cx + c.hw, hi + c.thick}
}
func (c curve) inside(x, y float32) bool {
	u := (x - c.cx) / c.hw
	if u < -1 || u > 1 {
		return false
	}
	w := 1 - u*u
	d := y - (c.y0 + c.bend*w)
	th := c.thick * (1 - c.taper*u*u)
	return d <= th && d >= -th
}

// head is the outline of a face: a blend between an ellipse and a
// superellipse (squareness sq in [0, 1]) whose half-width narrows below the
// centre by taper (a pointed chin). Half-height is h, centred at (0, cy).
type head struct{ w, h, cy, sq, taper float32 }

func (head) convex() bool   { return true }
func (hd head) bounds() box { return box{-hd.w, hd.cy - hd.h, hd.w, hd.cy + hd.h} }
func (hd head) inside(x, y float32) bool {
	v := (y - hd.cy) / hd.h
	ww := hd.w
	if v > 0 {
		ww *= 1 - hd.taper*v
	}
	u := x / ww
	q := u*u + v*v
	if hd.sq == 0 {
		return q <= 1
	}
	q4 := u*u*u*u + v*v*v*v
	return (1-hd.sq)*q+hd.sq*q4 <= 1
}

// and is the intersection of two shapes.
type and struct{ a, b shape }

func (s and) bounds() box {
	a, b := s.a.bounds(), s.b.bounds()
	return box{max(a.x0, b.x0), max(a.y0, b.y0), min(a.x1, b.x1), min(a.y1, b.y1)}
}
func (s and) convex() bool             { return s.a.convex() && s.b.convex() }
func (s and) inside(x, y float32) bool { return s.a.inside(x, y) && s.b.inside(x, y) }

// union is the union of several shapes; build it with unionOf.
type union struct {
	parts []shape
	boxes []box
	all   box
}

// unionOf returns the union of shapes (at least one).
func unionOf(shapes ...shape) union {
	u := union{parts: shapes, boxes: make([]box, len(shapes))}
	for i, s := range shapes {
		u.boxes[i] = s.bounds()
	}
	u.all = u.boxes[0]
	for _, o := range u.boxes[1:] {
		u.all = box{min(u.all.x0, o.x0), min(u.all.y0, o.y0), max(u.all.x1, o.x1), max(u.all.y1, o.y1)}
	}
	return u
}

// add returns u with s added.
func (u union) add(s shape) union { return unionOf(append(slices.Clip(u.parts), s)...) }

func (u union) convex() bool { return false }
func (u union) bounds() box  { return u.all }
func (u union) inside(x, y float32) bool {
	for i, s := range u.parts {
		b := &u.boxes[i]
		if x >= b.x0 && x <= b.x1 && y >= b.y0 && y <= b.y1 && s.inside(x, y) {
			return true
		}
	}
	return false
}

// fn is a shape given by a predicate over a bounding box.
type fn struct {
	b box
	f func(x, y float32) bool
}

func (fn) convex() bool               { return false }
func (s fn) bounds() box              { return s.b }
func (s fn) inside(x, y float32) bool { return s.f(x, y) }

func sin32(a float32) float32 { return float32(math.Sin(float64(a))) }
func cos32(a float32) float32 { return float32(math.Cos(float64(a))) }
func abs(a float32) float32 {
	if a < 0 {
		return -a
	}
	return a
}
