package insightface

import (
	"math"
	"testing"

	"github.com/cocoflow/cocoflow/models/judges/facedet"
)

// TestDecodeLevelPlantedAnchor plants one anchor in stride 8's outputs of a 32x48 input and
// checks the box and keypoints against hand-computed values.
func TestDecodeLevelPlantedAnchor(t *testing.T) {
	const stride, w, h = 8, 32, 48 // a 4-column, 6-row map: 48 anchors
	n := (w / stride) * (h / stride) * 2
	scores := make([]float32, n)
	boxes := make([]float32, 4*n)
	kps := make([]float32, 10*n)
	// Cell row 2, column 1, second anchor: row (2·4 + 1)·2 + 1 = 19; centre (8, 16).
	const k = 19
	scores[k] = 0.9
	copy(boxes[4*k:], []float32{1, 2, 3, 4})
	copy(kps[10*k:], []float32{0.5, -0.5, 1, 0, 0, 1, -1, 2, 1.5, 2.5})
	// An anchor exactly at the threshold is kept (scores >= threshold), one just under is not.
	scores[0] = 0.5
	scores[1] = 0.49999
	faces, err := DecodeLevel(scores, boxes, kps, stride, w, h, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if len(faces) != 2 {
		t.Fatalf("decoded %d faces, want 2 (the planted anchor and the one at the threshold)", len(faces))
	}
	f := faces[1]
	wantBox := [4]float32{8 - 8, 16 - 16, 8 + 24, 16 + 32}
	wantKps := [][2]float32{{12, 12}, {16, 16}, {8, 24}, {0, 32}, {20, 36}}
	if f.Score != 0.9 || f.Box != wantBox {
		t.Errorf("planted anchor: score %g box %v, want 0.9 %v", f.Score, f.Box, wantBox)
	}
	for i, p := range wantKps {
		if f.Landmarks[i] != p {
			t.Errorf("keypoint %d = %v, want %v", i, f.Landmarks[i], p)
		}
	}
	// Anchor 0 is cell (0, 0): centre (0, 0), zero distances.
	if g := faces[0]; g.Box != [4]float32{} || g.Score != 0.5 {
		t.Errorf("anchor 0: %+v, want a zero box at score 0.5", g)
	}
	if _, err := DecodeLevel(scores[:n-2], boxes, kps, stride, w, h, 0.5); err == nil {
		t.Error("outputs of the wrong length: no error")
	}
}

// similarity applies a rotation by theta, scale s and translation (tx, ty) to p.
func similarity(p [2]float64, s, theta, tx, ty float64) [2]float64 {
	c, sn := math.Cos(theta), math.Sin(theta)
	return [2]float64{s*(c*p[0]-sn*p[1]) + tx, s*(sn*p[0]+c*p[1]) + ty}
}

func TestSimilarityMapsLandmarksOntoTheTemplate(t *testing.T) {
	tmpl := ArcFaceTemplate[:]
	// Hand-computed: landmarks at twice the template plus (10, 20) need halving, then
	// (−5, −10).
	src := make([][2]float64, 5)
	for i, p := range tmpl {
		src[i] = [2]float64{2*p[0] + 10, 2*p[1] + 20}
	}
	got := Similarity(src, tmpl)
	want := facedet.Affine{0.5, 0, -5, 0, 0.5, -10}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Fatalf("Similarity = %v, want %v", got, want)
		}
	}
	// A face rotated by 25°, scaled by 2.7 and moved: its five points land on the template
	// within 1e-3 px.
	for i, p := range tmpl {
		src[i] = similarity(p, 2.7, 25*math.Pi/180, 140, -30)
	}
	m := Similarity(src, tmpl)
	for i, p := range src {
		x, y := m.Apply(p[0], p[1])
		if d := math.Hypot(x-tmpl[i][0], y-tmpl[i][1]); d > 1e-3 {
			t.Errorf("landmark %d maps to (%.4f, %.4f), template (%.4f, %.4f): %.2g px off", i, x, y, tmpl[i][0], tmpl[i][1], d)
		}
	}
	// Least squares: moving one point by (+1, 0) leaves a transform whose residuals sum to
	// zero (the translation absorbs the mean) and are smaller than the move itself.
	src[2][0]++
	m = Similarity(src, tmpl)
	var rx, ry float64
	for i, p := range src {
		x, y := m.Apply(p[0], p[1])
		rx += x - tmpl[i][0]
		ry += y - tmpl[i][1]
		if d := math.Hypot(x-tmpl[i][0], y-tmpl[i][1]); d >= 1/2.7 {
			t.Errorf("perturbed landmark %d is %.3f px off, more than the move", i, d)
		}
	}
	if math.Abs(rx) > 1e-9 || math.Abs(ry) > 1e-9 {
		t.Errorf("residuals sum to (%g, %g), want 0", rx, ry)
	}
}

func TestNormCropWarpsOntoTheTemplate(t *testing.T) {
	// The source is a linear ramp, which bilinear sampling reproduces exactly, so every crop
	// pixel must equal the ramp at the source point it came from, up to the 8-bit rounding.
	const W, H = 340, 260
	img := facedet.NewRGB(W, H)
	ramp := func(x, y float64) float64 { return 0.5*x + 0.25*y + 3 }
	for y := range H {
		for x := range W {
			img.Pix[3*(y*W+x)] = float32(ramp(float64(x), float64(y)))
		}
	}
	lm := make([][2]float32, 5)
	for i, p := range ArcFaceTemplate {
		q := similarity(p, 1.8, -15*math.Pi/180, 60, 80)
		lm[i] = [2]float32{float32(q[0]), float32(q[1])}
	}
	crop, err := NormCrop(img, lm, 112)
	if err != nil {
		t.Fatal(err)
	}
	src := make([][2]float64, 5)
	for i, p := range lm {
		src[i] = [2]float64{float64(p[0]), float64(p[1])}
	}
	inv := Similarity(src, ArcFaceTemplate[:]).Invert()
	for _, uv := range [][2]int{{0, 0}, {56, 56}, {38, 52}, {111, 111}, {70, 92}} {
		x, y := inv.Apply(float64(uv[0]), float64(uv[1]))
		got := crop.Pix[3*(uv[1]*112+uv[0])]
		if want := ramp(x, y); math.Abs(float64(got)-want) > 0.5+1e-3 { // rounded to 8 bits
			t.Errorf("crop (%d, %d) = %g, want the source's %g at (%.2f, %.2f)", uv[0], uv[1], got, want, x, y)
		}
	}
	if _, err := NormCrop(img, lm[:4], 112); err == nil {
		t.Error("four landmarks: no error")
	}
	if tm, err := Template(128); err != nil || math.Abs(tm[0][0]-(38.2946*128/128+8)) > 1e-9 {
		t.Errorf("Template(128) = %v, %v; want arcface_dst shifted by 8", tm, err)
	}
	if _, err := Template(100); err == nil {
		t.Error("Template(100): no error")
	}
}

func TestBoxCrop(t *testing.T) {
	img := facedet.NewRGB(100, 100)
	for i := range img.Pix {
		img.Pix[i] = 200
	}
	// A 20x40 box centred at (50, 50): the crop is its 40x40 square, all inside the image.
	c := BoxCrop(img, [4]float32{40, 30, 60, 70}, 112)
	for _, v := range c.Pix {
		if math.Abs(float64(v)-200) > 1e-3 {
			t.Fatalf("crop of an inside square has value %g, want 200", v)
		}
	}
	// A box at the corner: the part beyond the image is black.
	c = BoxCrop(img, [4]float32{-20, -20, 20, 20}, 112)
	if c.Pix[0] != 0 || c.Pix[3*(111*112+111)] != 200 {
		t.Errorf("corner crop: top-left %g (want 0), bottom-right %g (want 200)", c.Pix[0], c.Pix[3*(111*112+111)])
	}
}

func TestFit(t *testing.T) {
	cases := []struct {
		w, h, inW, inH, nw, nh int
		scale                  float32
	}{
		{1000, 500, 640, 640, 640, 320, 0.64},
		{300, 600, 640, 640, 320, 640, 640.0 / 600},
		{1023, 767, 640, 640, 640, 479, 479.0 / 767}, // int() truncates 479.87
		{640, 640, 640, 640, 640, 640, 1},
	}
	for _, c := range cases {
		nw, nh, s := fit(c.w, c.h, c.inW, c.inH)
		if nw != c.nw || nh != c.nh || s != c.scale {
			t.Errorf("fit(%dx%d into %dx%d) = %dx%d scale %g, want %dx%d scale %g", c.w, c.h, c.inW, c.inH, nw, nh, s, c.nw, c.nh, c.scale)
		}
	}
}
