package facedet

import (
	"image"
	"image/color"
	"math"
	"testing"
)

func TestNMS(t *testing.T) {
	faces := []Face{
		{Box: [4]float32{0, 0, 10, 10}, Score: 0.9},
		// With insightface's +1: intersection 10·10 over union 121+121−100: IoU 0.70 > 0.4.
		{Box: [4]float32{1, 1, 11, 11}, Score: 0.8},
		{Box: [4]float32{20, 20, 30, 30}, Score: 0.7},
		// Overlaps the third: intersection 6·11 = 66, union 121+121−66 = 176: IoU 0.375, kept.
		{Box: [4]float32{25, 20, 35, 30}, Score: 0.6},
	}
	got := NMS(faces, 0.4, InsightFaceOverlap)
	if len(got) != 3 || got[0].Score != 0.9 || got[1].Score != 0.7 || got[2].Score != 0.6 {
		t.Fatalf("NMS kept %v, want the faces scoring 0.9, 0.7, 0.6", got)
	}
	// Without the +1 the last pair overlaps 5·10 = 50 over 150 (+1e-5): IoU just under 1/3;
	// a threshold of 1/3 keeps it (both references drop only IoU > threshold), 0.33 drops it.
	pair := faces[2:]
	if n := len(NMS(pair, 1.0/3, UltraFaceOverlap)); n != 2 {
		t.Errorf("IoU exactly at the threshold: kept %d, want 2", n)
	}
	if n := len(NMS(pair, 0.33, UltraFaceOverlap)); n != 1 {
		t.Errorf("IoU above the threshold: kept %d, want 1", n)
	}
	// An inverted box neither suppresses nor is suppressed.
	inv := []Face{{Box: [4]float32{5, 5, 1, 1}, Score: 0.9}, {Box: [4]float32{0, 0, 6, 6}, Score: 0.8}}
	for _, o := range []Overlap{InsightFaceOverlap, UltraFaceOverlap} {
		if n := len(NMS(inv, 0.1, o)); n != 2 {
			t.Errorf("%+v: an inverted box changed NMS (kept %d of 2)", o, n)
		}
	}
	if got := NMS(nil, 0.4, InsightFaceOverlap); len(got) != 0 {
		t.Errorf("NMS(nil) = %v", got)
	}
}

func TestSelect(t *testing.T) {
	faces := []Face{
		{Box: [4]float32{0, 0, 40, 40}, Score: 0.9},     // area 1600, centre (20, 20)
		{Box: [4]float32{80, 80, 110, 110}, Score: 0.8}, // area 900, centre (95, 95)
	}
	// A 200x200 image: centre (100, 100). Central: 1600 − 2·(80²+80²) < 900 − 2·(5²+5²).
	if got := Select(faces, 200, 200, Largest); got != 0 {
		t.Errorf("Largest picked %d, want 0", got)
	}
	if got := Select(faces, 200, 200, Central); got != 1 {
		t.Errorf("Central picked %d, want 1", got)
	}
	if got := Select(nil, 200, 200, Largest); got != -1 {
		t.Errorf("Select(no faces) = %d, want -1", got)
	}
	if _, err := ParseSelection("biggest"); err == nil {
		t.Error("ParseSelection(biggest): no error")
	}
}

func row(vals ...float32) *RGB {
	m := NewRGB(len(vals), 1)
	for i, v := range vals {
		m.Pix[3*i], m.Pix[3*i+1], m.Pix[3*i+2] = v, v/2, 0
	}
	return m
}

func reds(m *RGB) []float32 {
	out := make([]float32, m.W*m.H)
	for i := range out {
		out[i] = m.Pix[3*i]
	}
	return out
}

func TestResizeIsOpenCVLinear(t *testing.T) {
	// cv2.resize(INTER_LINEAR): source x = (x+0.5)·scale − 0.5, edges repeated.
	cases := []struct {
		in   *RGB
		w    int
		want []float32
	}{
		{row(0, 100), 4, []float32{0, 25, 75, 100}},
		{row(0, 10, 20, 30), 2, []float32{5, 25}},
		{row(0, 10, 20), 3, []float32{0, 10, 20}},
	}
	for _, c := range cases {
		got := c.in.Resize(c.w, 1)
		for i, v := range reds(got) {
			if math.Abs(float64(v-c.want[i])) > 1e-5 || got.Pix[3*i+1] != v/2 {
				t.Fatalf("Resize(%v -> %d) = %v, want %v", reds(c.in), c.w, reds(got), c.want)
			}
		}
	}
}

// TestResizeMatchesDirectBilinear checks the separable resize against the bilinear formula
// evaluated per pixel, up and down, in both axes.
func TestResizeMatchesDirectBilinear(t *testing.T) {
	src := NewRGB(7, 5)
	for i := range src.Pix {
		src.Pix[i] = float32((i*37)%101) + 0.25
	}
	for _, sz := range [][2]int{{20, 13}, {3, 2}, {7, 5}, {16, 4}, {1, 9}} {
		w, h := sz[0], sz[1]
		got := src.Resize(w, h)
		xs, ys := linearTaps(w, src.W), linearTaps(h, src.H)
		for y, ty := range ys {
			for x, tx := range xs {
				for c := range 3 {
					p := func(xx, yy int) float32 { return src.Pix[3*(yy*src.W+xx)+c] }
					top := p(tx.i0, ty.i0) + tx.f*(p(tx.i1, ty.i0)-p(tx.i0, ty.i0))
					bot := p(tx.i0, ty.i1) + tx.f*(p(tx.i1, ty.i1)-p(tx.i0, ty.i1))
					if want := top + ty.f*(bot-top); got.Pix[3*(y*w+x)+c] != want {
						t.Fatalf("%dx%d: pixel (%d, %d, %d) = %g, want %g", w, h, x, y, c, got.Pix[3*(y*w+x)+c], want)
					}
				}
			}
		}
	}
	// Into a larger canvas: the rest stays untouched.
	canvas := NewRGB(10, 10)
	for i := range canvas.Pix {
		canvas.Pix[i] = -1
	}
	src.ResizeInto(canvas, 4, 3)
	if canvas.Pix[3*(3*10)] != -1 || canvas.Pix[3*4] != -1 || canvas.Pix[0] == -1 {
		t.Error("ResizeInto wrote outside its corner or not in it")
	}
}

func TestWarp(t *testing.T) {
	// A linear ramp is reproduced exactly by bilinear sampling; outside the image is black.
	src := NewRGB(8, 8)
	for y := range 8 {
		for x := range 8 {
			src.Pix[3*(y*8+x)] = float32(10*x + y)
		}
	}
	// Shift right by half a pixel and down by one: dst(x, y) = src(x − 0.5, y − 1).
	got := src.Warp(Affine{1, 0, 0.5, 0, 1, 1}, 8, 8)
	for y := range 8 {
		for x := range 8 {
			v := got.Pix[3*(y*8+x)]
			var want float32
			switch {
			case y == 0:
				want = 0 // source row −1
			case x == 0:
				want = 0.5 * float32(10*0+y-1) // half of pixel 0, half black border
			default:
				want = float32(10*(float64(x)-0.5) + float64(y-1))
			}
			if math.Abs(float64(v-want)) > 1e-4 {
				t.Fatalf("warp (%d, %d) = %g, want %g", x, y, v, want)
			}
		}
	}
	a := Affine{0.8, -0.6, 3, 0.6, 0.8, -2}
	x, y := a.Invert().Apply(a.Apply(1.5, -4))
	if math.Abs(x-1.5) > 1e-12 || math.Abs(y+4) > 1e-12 {
		t.Errorf("Invert∘Apply(1.5, -4) = (%g, %g)", x, y)
	}
}

func TestFromImageAndPlanar(t *testing.T) {
	img := image.NewNRGBA(image.Rect(5, 5, 7, 6)) // bounds not at the origin
	img.SetNRGBA(5, 5, color.NRGBA{255, 0, 10, 255})
	img.SetNRGBA(6, 5, color.NRGBA{0, 128, 20, 255})
	m := FromImage(img)
	if m.W != 2 || m.H != 1 || m.Pix[0] != 255 || m.Pix[4] != 128 || m.Pix[5] != 20 {
		t.Fatalf("FromImage: %+v", m)
	}
	gray := image.NewGray(image.Rect(0, 0, 1, 1))
	gray.SetGray(0, 0, color.Gray{7})
	if g := FromImage(gray); g.Pix[0] != 7 || g.Pix[1] != 7 || g.Pix[2] != 7 {
		t.Fatalf("FromImage(gray) = %v", g.Pix)
	}
	blob := make([]float32, 6)
	m.Planar(blob, 127.5, 1.0/128)
	want := []float32{127.5 / 128, -127.5 / 128, -127.5 / 128, 0.5 / 128, -117.5 / 128, -107.5 / 128}
	for i := range want {
		if math.Abs(float64(blob[i]-want[i])) > 1e-6 {
			t.Fatalf("Planar = %v, want %v (planes R, G, B)", blob, want)
		}
	}
}

func TestQuantize(t *testing.T) {
	m := &RGB{W: 2, H: 1, Pix: []float32{-3, 0.4, 0.5, 1.5, 254.6, 300}}
	want := []float32{0, 0, 0, 2, 255, 255}
	m.Quantize()
	for i := range want {
		if m.Pix[i] != want[i] {
			t.Fatalf("Quantize = %v, want %v", m.Pix, want)
		}
	}
}
