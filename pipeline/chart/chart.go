// Package chart draws the figures stages write next to their outputs: line plots of training
// curves and contact sheets of images with captions, as PNG, with the standard library and a
// bitmap font only.
package chart

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
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
	for k := 0; k <= 4; k++ {
		yv := ymin + (ymax-ymin)*float64(k)/4
		y := top + ph - ph*k/4
		hline(img, left, left+pw, y, grid)
		label := fmt.Sprintf("%.3g", yv)
		if p.LogY {
			label = fmt.Sprintf("%.2g", math.Pow(10, yv))
		}
		Text(img, 4, y+4, label, axis)
		xv := xmin + (xmax-xmin)*float64(k)/4
		x := left + pw*k/4
		vline(img, x, top, top+ph, grid)
		Text(img, x-12, top+ph+16, fmt.Sprintf("%.4g", xv), axis)
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
