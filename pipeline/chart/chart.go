// Package chart draws the figures stages write next to their outputs: line plots of training
// curves and contact sheets of images with captions, as PNG, with the standard library and a
// bitmap font only.
package chart

import (
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/inconsolata"
	"golang.org/x/image/math/fixed"
)

// Series is one named curve.
type Series struct {
	Name string
	X, Y []float64
}

// Plot describes a line plot.
type Plot struct {
	Title         string
	XLabel        string
	Width, Height int  // pixels; 0 means 720 x 420
	LogY          bool // logarithmic y axis (non-positive values are skipped)
	Smooth        int  // moving-average window over points (0 or 1: raw)
	Series        []Series
}

var palette = []color.RGBA{
	{31, 119, 180, 255}, {214, 39, 40, 255}, {44, 160, 44, 255}, {255, 127, 14, 255},
	{148, 103, 189, 255}, {140, 86, 75, 255}, {23, 190, 207, 255}, {127, 127, 127, 255},
}

var face = inconsolata.Regular8x16

// Draw renders the plot.
func (p Plot) Draw() *image.RGBA {
	w, h := p.Width, p.Height
	if w == 0 {
		w, h = 720, 420
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	left, right, top, bottom := 70, 16, 28, 44
	pw, ph := w-left-right, h-top-bottom
	tf := func(v float64) float64 {
		if p.LogY {
			return math.Log10(v)
		}
		return v
	}
	xmin, xmax, ymin, ymax := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	series := make([]Series, len(p.Series))
	for i, s := range p.Series {
		s.Y = smooth(s.Y, p.Smooth)
		series[i] = s
		for k := range s.X {
			if p.LogY && s.Y[k] <= 0 || math.IsNaN(s.Y[k]) || math.IsInf(s.Y[k], 0) {
				continue
			}
			xmin, xmax = math.Min(xmin, s.X[k]), math.Max(xmax, s.X[k])
			ymin, ymax = math.Min(ymin, tf(s.Y[k])), math.Max(ymax, tf(s.Y[k]))
		}
	}
	if math.IsInf(xmin, 1) {
		xmin, xmax, ymin, ymax = 0, 1, 0, 1
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	if ymax == ymin {
		ymax, ymin = ymax+0.5, ymin-0.5
	}
	pad := (ymax - ymin) * 0.05
	ymin, ymax = ymin-pad, ymax+pad
	// Headroom for the legend in the top right, so that no curve runs through it.
	if legend := 16*len(p.Series) + 6; legend < ph/2 {
		ymax += (ymax - ymin) * float64(legend) / float64(ph-legend)
	}
	px := func(x float64) int { return left + int(float64(pw)*(x-xmin)/(xmax-xmin)) }
	py := func(y float64) int { return top + ph - int(float64(ph)*(tf(y)-ymin)/(ymax-ymin)) }
	grid := color.RGBA{225, 225, 225, 255}
	axis := color.RGBA{60, 60, 60, 255}
	yticks := linearTicks(ymin, ymax, false)
	if p.LogY {
		yticks = logTicks(ymin, ymax)
	}
	for _, v := range yticks {
		y := py(v)
		hline(img, left, left+pw, y, grid)
		label := tickLabel(v)
		Text(img, max(2, left-6-8*len(label)), y+5, label, axis)
	}
	for _, v := range linearTicks(xmin, xmax, integral(series)) {
		x := px(v)
		vline(img, x, top, top+ph, grid)
		label := tickLabel(v)
		Text(img, x-4*len(label), top+ph+16, label, axis)
	}
	hline(img, left, left+pw, top+ph, axis)
	vline(img, left, top, top+ph, axis)
	Text(img, left, 18, p.Title, axis)
	Text(img, left+pw/2-4*len(p.XLabel), h-6, p.XLabel, axis)
	for i, s := range series {
		c := palette[i%len(palette)]
		prevOK := false
		var x0, y0 int
		for k := range s.X {
			if p.LogY && s.Y[k] <= 0 || math.IsNaN(s.Y[k]) || math.IsInf(s.Y[k], 0) {
				prevOK = false
				continue
			}
			x1, y1 := px(s.X[k]), py(s.Y[k])
			if prevOK {
				line(img, x0, y0, x1, y1, c)
			}
			x0, y0, prevOK = x1, y1, true
		}
		lx := left + pw - 8*maxLen(series) - 24
		ly := top + 14 + 16*i
		hline(img, lx, lx+16, ly-4, c)
		hline(img, lx, lx+16, ly-5, c)
		Text(img, lx+20, ly, s.Name, axis)
	}
	return img
}

// Axis ticks are "nice" numbers a reader can interpolate between: on a linear axis multiples of
// 1, 2 or 5 times a power of ten (integers only when the data are, such as training steps), on
// a logarithmic one 1, 2 and 5 in each decade, or every decade when there are many.
const (
	minTicks = 3
	maxTicks = 8
)

// linearTicks returns the nice values in [lo, hi]: the step is the smallest of 1, 2, 5 x 10^k
// that gives at most maxTicks of them, and at least 1 when integer.
func linearTicks(lo, hi float64, integer bool) []float64 {
	if !(hi > lo) {
		return []float64{lo}
	}
	raw := (hi - lo) / float64(maxTicks-1)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	if integer {
		step = math.Max(step, 1)
	}
	var ticks []float64
	for k := math.Ceil(lo / step); k*step <= hi+step*1e-9; k++ {
		v := k * step
		if math.Abs(v) < step*1e-9 {
			v = 0
		}
		ticks = append(ticks, v)
	}
	return ticks
}

// logTicks returns, for an axis from 10^lo to 10^hi, the values 1, 2, 5 x 10^k inside it; every
// decade (or every n-th) when those are more than maxTicks; and 1..9 x 10^k when the axis spans
// too little for minTicks of them (evenly spaced values when even those are too few).
func logTicks(lo, hi float64) []float64 {
	in := func(mantissas []float64, every int) []float64 {
		var out []float64
		for e := math.Floor(lo); e <= math.Ceil(hi); e++ {
			if int(e)%every != 0 {
				continue
			}
			for _, m := range mantissas {
				if v := math.Log10(m) + e; v >= lo-1e-12 && v <= hi+1e-12 {
					out = append(out, m*math.Pow(10, e))
				}
			}
		}
		return out
	}
	if t := in([]float64{1, 2, 5}, 1); len(t) > maxTicks {
		for every := 1; ; every++ {
			if t := in([]float64{1}, every); len(t) <= maxTicks {
				return t
			}
		}
	} else if len(t) >= minTicks {
		return t
	}
	if t := in([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1); len(t) >= minTicks {
		return t
	}
	return linearTicks(math.Pow(10, lo), math.Pow(10, hi), false) // a narrow range is nearly linear
}

// tickLabel writes a tick value briefly: 0.0002, 150, 1e-05.
func tickLabel(v float64) string {
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// integral reports whether every x value is a whole number (training steps, epochs).
func integral(series []Series) bool {
	for _, s := range series {
		for _, x := range s.X {
			if x != math.Trunc(x) {
				return false
			}
		}
	}
	return true
}

func maxLen(ss []Series) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s.Name))
	}
	return n
}

func smooth(y []float64, win int) []float64 {
	if win <= 1 {
		return y
	}
	out := make([]float64, len(y))
	sum, n := 0.0, 0
	for i, v := range y {
		sum += v
		n++
		if i >= win {
			sum -= y[i-win]
			n--
		}
		out[i] = sum / float64(n)
	}
	return out
}

func hline(img *image.RGBA, x0, x1, y int, c color.Color) {
	for x := x0; x <= x1; x++ {
		img.Set(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.Color) {
	for y := y0; y <= y1; y++ {
		img.Set(x, y, c)
	}
}

// line draws a straight segment (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		img.Set(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// Text draws s with its baseline at (x, y).
func Text(img draw.Image, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// Cell is one image of a contact sheet with its caption lines.
type Cell struct {
	Image   image.Image
	Caption string
}

// Sheet lays out rows of cells, each image scaled by an integer factor (nearest neighbour, so
// small images stay crisp), with captions wrapped under the images and optional row labels.
type Sheet struct {
	Title     string
	Scale     int      // image magnification; 0 means 4
	RowLabels []string // drawn left of each row; optional
	Rows      [][]Cell
	WrapAt    int // caption characters per line; 0 means what fits under the image
}

// Draw renders the sheet.
func (s Sheet) Draw() *image.RGBA {
	scale := s.Scale
	if scale == 0 {
		scale = 4
	}
	cw, chh := 0, 0
	cols := 0
	for _, r := range s.Rows {
		cols = max(cols, len(r))
		for _, c := range r {
			if c.Image != nil {
				b := c.Image.Bounds()
				cw, chh = max(cw, b.Dx()*scale), max(chh, b.Dy()*scale)
			}
		}
	}
	wrap := s.WrapAt
	if wrap == 0 {
		wrap = max(8, cw/8)
	}
	capLines := 0
	for _, r := range s.Rows {
		for _, c := range r {
			capLines = max(capLines, len(wrapText(c.Caption, wrap)))
		}
	}
	labelW := 0
	for _, l := range s.RowLabels {
		labelW = max(labelW, 8*len(l)+12)
	}
	gap := 6
	cellW := max(cw, 8*wrap) + gap
	cellH := chh + 16*capLines + gap
	titleH := 0
	if s.Title != "" {
		titleH = 24
	}
	img := image.NewRGBA(image.Rect(0, 0, labelW+cols*cellW+gap, titleH+len(s.Rows)*cellH+gap))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	ink := color.RGBA{30, 30, 30, 255}
	if s.Title != "" {
		Text(img, gap, 17, s.Title, ink)
	}
	for ri, r := range s.Rows {
		y := titleH + gap + ri*cellH
		if ri < len(s.RowLabels) {
			Text(img, 4, y+chh/2+4, s.RowLabels[ri], ink)
		}
		for ci, c := range r {
			x := labelW + gap + ci*cellW
			if c.Image != nil {
				b := c.Image.Bounds()
				for yy := 0; yy < b.Dy()*scale; yy++ {
					for xx := 0; xx < b.Dx()*scale; xx++ {
						img.Set(x+xx, y+yy, c.Image.At(b.Min.X+xx/scale, b.Min.Y+yy/scale))
					}
				}
			}
			for li, l := range wrapText(c.Caption, wrap) {
				Text(img, x, y+chh+14+16*li, l, ink)
			}
		}
	}
	return img
}

// wrapText splits s into lines of at most n characters at spaces.
func wrapText(s string, n int) []string {
	if s == "" {
		return nil
	}
	var lines []string
	cur := ""
	for _, w := range strings.Fields(s) {
		if cur != "" && len(cur)+1+len(w) > n {
			lines = append(lines, cur)
			cur = ""
		}
		if cur != "" {
			cur += " "
		}
		cur += w
	}
	return append(lines, cur)
}

// Stack places images one below the other, left-aligned, on white.
func Stack(imgs ...*image.RGBA) *image.RGBA {
	w, h := 0, 0
	for _, im := range imgs {
		w = max(w, im.Bounds().Dx())
		h += im.Bounds().Dy()
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(out, out.Bounds(), image.White, image.Point{}, draw.Src)
	y := 0
	for _, im := range imgs {
		r := im.Bounds()
		draw.Draw(out, image.Rect(0, y, r.Dx(), y+r.Dy()), im, r.Min, draw.Src)
		y += r.Dy()
	}
	return out
}
