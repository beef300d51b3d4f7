package chart

import (
	"image"
	"image/color"
	"math"
	"strings"
	"testing"
)

func TestPlotDrawsSeriesInTheirColours(t *testing.T) {
	var xs, a, b []float64
	for i := 0; i < 100; i++ {
		xs = append(xs, float64(i))
		a = append(a, math.Exp(-float64(i)/30))
		b = append(b, 0.5)
	}
	img := Plot{Title: "loss", XLabel: "step", LogY: true, Smooth: 5, Series: []Series{{"pos", xs, a}, {"neg", xs, b}}}.Draw()
	if img.Bounds().Dx() != 720 || img.Bounds().Dy() != 420 {
		t.Fatalf("size %v", img.Bounds())
	}
	count := map[color.RGBA]int{}
	for y := 0; y < 420; y++ {
		for x := 0; x < 720; x++ {
			count[img.RGBAAt(x, y)]++
		}
	}
	for i := 0; i < 2; i++ {
		if count[palette[i]] < 100 {
			t.Errorf("series %d drew %d pixels in its colour", i, count[palette[i]])
		}
	}
}

func TestSheetLayout(t *testing.T) {
	tile := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range tile.Pix {
		tile.Pix[i] = 200
	}
	s := Sheet{Title: "t", Scale: 2, RowLabels: []string{"code 1", "code 2"}, Rows: [][]Cell{
		{{tile, "a man in a park"}, {tile, "a man"}},
		{{tile, "a woman at the beach with long words wrapping"}, {nil, ""}},
	}}
	img := s.Draw()
	if img.Bounds().Dx() < 2*16 || img.Bounds().Dy() < 2*16 {
		t.Fatalf("sheet too small: %v", img.Bounds())
	}
	if got := wrapText("a woman at the beach", 8); len(got) != 3 {
		t.Fatalf("wrap: %q", got)
	}
}

func TestStack(t *testing.T) {
	a := image.NewRGBA(image.Rect(0, 0, 4, 2))
	b := image.NewRGBA(image.Rect(10, 10, 16, 13)) // not at the origin
	a.Set(3, 1, color.RGBA{255, 0, 0, 255})
	b.Set(10, 10, color.RGBA{0, 0, 255, 255})
	s := Stack(a, b)
	if got := s.Bounds(); got != image.Rect(0, 0, 6, 5) {
		t.Fatalf("bounds %v, want 6x5", got)
	}
	if got := s.RGBAAt(3, 1); got != (color.RGBA{255, 0, 0, 255}) {
		t.Errorf("first image's pixel: %v", got)
	}
	if got := s.RGBAAt(0, 2); got != (color.RGBA{0, 0, 255, 255}) {
		t.Errorf("second image's first pixel, placed below the first: %v", got)
	}
	if got := s.RGBAAt(5, 0); got != (color.RGBA{255, 255, 255, 255}) {
		t.Errorf("uncovered pixel %v, want white", got)
	}
}

// Ticks are numbers a reader can interpolate between: 1, 2, 5 x 10^k on a log axis, whole
// multiples of 1, 2, 5 x 10^k (integers for steps) on a linear one.
func TestTicksAreRoundNumbers(t *testing.T) {
	labels := func(v []float64) string {
		var s []string
		for _, x := range v {
			s = append(s, tickLabel(x))
		}
		return strings.Join(s, " ")
	}
	lg := math.Log10
	cases := []struct {
		name string
		got  []float64
		want string
	}{
		{"training steps 1..300", linearTicks(1, 300, true), "50 100 150 200 250 300"},
		{"training steps 0..299", linearTicks(0, 299, true), "0 50 100 150 200 250"},
		{"four steps", linearTicks(0, 3, true), "0 1 2 3"},
		{"steps never fractional", linearTicks(0, 2, true), "0 1 2"},
		{"a loss from -0.013 to 0.27", linearTicks(-0.013, 0.27, false), "0 0.05 0.1 0.15 0.2 0.25"},
		{"log 0.00014 to 1.5: decades", logTicks(lg(0.00014), lg(1.5)), "0.001 0.01 0.1 1"},
		{"log 0.0031 to 0.069: 1-2-5", logTicks(lg(0.0031), lg(0.069)), "0.005 0.01 0.02 0.05"},
		{"log 0.002 to 0.006: 1..9", logTicks(lg(0.002), lg(0.006)), "0.002 0.003 0.004 0.005 0.006"},
		{"log 1e-12 to 1e3: every other decade", logTicks(-12, 3), "1e-12 1e-10 1e-08 1e-06 0.0001 0.01 1 100"},
		{"log 0.9 to 0.96: nearly linear", logTicks(lg(0.9), lg(0.96)), "0.9 0.91 0.92 0.93 0.94 0.95 0.96"},
	}
	for _, c := range cases {
		if got := labels(c.got); got != c.want {
			t.Errorf("%s: ticks %q, want %q", c.name, got, c.want)
		}
	}
}
