package chart

import (
	"image"
	"image/color"
	"math"
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
