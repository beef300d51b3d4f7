package groundingdino

import (
	"errors"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

const fixture = "../testdata/grounding-dino"

func open(t *testing.T) *Detector {
	t.Helper()
	d, err := Open(fixture, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// testImage is a w x h gradient with a bright square, so that queries differ.
func testImage(w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.NRGBA{uint8(255 * x / w), uint8(255 * y / h), 90, 255}
			if x > w/3 && x < 2*w/3 && y > h/4 && y < 3*h/4 {
				c = color.NRGBA{240, 230, 220, 255}
			}
			img.Set(x, y, c)
		}
	}
	return img
}

func TestCaption(t *testing.T) {
	for in, want := range map[string][]string{
		"face .":       {"Face"},
		"man . face .": {" Man ", "face."},
		"":             {" ", "."},
	} {
		if got := Caption(want...); got != in {
			t.Errorf("Caption(%q) = %q, want %q", want, got, in)
		}
	}
}

// The masks and positions are worked out by hand from generate_masks_with_special_tokens_and_
// transfer_map on the fixture vocabulary ([CLS] 2, [SEP] 3, "." 5, "?" 7, a 11, of 14,
// photo 15, man 16, dog 22, face 23).
func TestTokenizeGolden(t *testing.T) {
	d := open(t)
	cases := []struct {
		caption   string
		ids       []int32
		positions []int64
		blocks    [][]int // tokens that attend to each other
		phrases   []string
		phrase    []int
	}{
		{"man . face .", []int32{2, 16, 5, 23, 5, 3}, []int64{0, 0, 1, 0, 1, 0},
			[][]int{{0}, {1, 2}, {3, 4}, {5}}, []string{"man", "face"}, []int{-1, 0, -1, 1, -1, -1}},
		{"a photo of a man .", []int32{2, 11, 15, 14, 11, 16, 5, 3}, []int64{0, 0, 1, 2, 3, 4, 5, 0},
			[][]int{{0}, {1, 2, 3, 4, 5, 6}, {7}}, []string{"a photo of a man"}, []int{-1, 0, 0, 0, 0, 0, -1, -1}},
		{"man? dog .", []int32{2, 16, 7, 22, 5, 3}, []int64{0, 0, 1, 0, 1, 0},
			[][]int{{0}, {1, 2}, {3, 4}, {5}}, []string{"man", "dog"}, []int{-1, 0, -1, 1, -1, -1}},
	}
	for _, c := range cases {
		text, err := d.Tokenize(c.caption)
		if err != nil {
			t.Fatal(err)
		}
		L := len(c.ids)
		want := make([]bool, L*L)
		for _, b := range c.blocks {
			for _, i := range b {
				for _, j := range b {
					want[i*L+j] = true
				}
			}
		}
		if !reflect.DeepEqual(text.IDs, c.ids) || !reflect.DeepEqual(text.Positions, c.positions) ||
			!reflect.DeepEqual(text.Mask, want) || !reflect.DeepEqual(text.Phrases, c.phrases) || !reflect.DeepEqual(text.Phrase, c.phrase) {
			t.Errorf("%q: ids %v positions %v phrases %q %v mask %v\nwant %v %v %q %v %v",
				c.caption, text.IDs, text.Positions, text.Phrases, text.Phrase, text.Mask, c.ids, c.positions, c.phrases, c.phrase, want)
		}
	}
	if _, err := d.Tokenize(strings.Repeat("man ", 300)); err == nil || !strings.Contains(err.Error(), "at most 256") {
		t.Errorf("long caption: err = %v", err)
	}
}

func TestResizeTo(t *testing.T) {
	for _, c := range []struct{ w, h, ow, oh int }{
		{640, 480, 1066, 800},
		{480, 640, 800, 1066},
		{2000, 500, 1332, 333}, // the long side caps the short one: round(1333*500/2000) = 333
		{800, 1000, 800, 1000},
		{64, 48, 1066, 800},
	} {
		if w, h := ResizeTo(c.w, c.h, ShortSide, MaxSide); w != c.ow || h != c.oh {
			t.Errorf("ResizeTo(%d, %d) = %d x %d, want %d x %d", c.w, c.h, w, h, c.ow, c.oh)
		}
	}
}

func TestDetect(t *testing.T) {
	d := open(t)
	img := testImage(64, 48)
	all, err := d.Detect(img, Thresholds{0, 0}, "man", "face")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 900 {
		t.Fatalf("thresholds 0: %d boxes, want all 900 queries", len(all))
	}
	for i, det := range all {
		b := det.Box
		if b.X0 < 0 || b.Y0 < 0 || b.X1 > 64 || b.Y1 > 48 || b.X0 > b.X1 || b.Y0 > b.Y1 {
			t.Fatalf("box %d %+v outside the 64x48 image", i, b)
		}
		if det.Phrase != "man" && det.Phrase != "face" {
			t.Fatalf("box %d phrase %q", i, det.Phrase)
		}
		if i > 0 && det.Score > all[i-1].Score {
			t.Fatalf("boxes not best first: %g after %g", det.Score, all[i-1].Score)
		}
	}
	t.Logf("scores: best %.4f, median %.4f, worst %.4f", all[0].Score, all[450].Score, all[899].Score)
	mid := Thresholds{Box: all[450].Score, Text: 0}
	some, err := d.Detect(img, mid, "man", "face")
	if err != nil {
		t.Fatal(err)
	}
	if len(some) == 0 || len(some) >= 900 {
		t.Errorf("box threshold %g: %d boxes, want fewer than 900 and some", mid.Box, len(some))
	}
	for _, det := range some {
		if det.Score <= mid.Box {
			t.Errorf("box with score %g passed threshold %g", det.Score, mid.Box)
		}
	}
	best, err := d.Best(img, DefaultThresholds, "man")
	if err != nil {
		t.Logf("default thresholds: %v", err)
	} else {
		t.Logf("default thresholds: best %+v", best)
	}
	_, err = d.Best(img, Thresholds{Box: 1, Text: 0.25}, "man")
	if !errors.Is(err, ErrNoBox) || !strings.Contains(err.Error(), `"man ."`) {
		t.Errorf("box threshold 1: err = %v, want ErrNoBox naming the caption", err)
	}
}

func TestOpenErrors(t *testing.T) {
	_, err := Open("../testdata/grounding-dino-image-only", ort.Options{})
	if err == nil || !strings.Contains(err.Error(), filepath.Join("grounding-dino-image-only", "groundingdino.onnx")) ||
		!strings.Contains(err.Error(), "no text inputs input_ids, attention_mask, token_type_ids") {
		t.Errorf("image-only model: err = %v", err)
	}
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(fixture, "groundingdino.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "gd.onnx")
	if err := os.WriteFile(model, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(model, ort.Options{}); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "vocab.txt")) {
		t.Errorf("no vocab.txt: err = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "other.onnx"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, ort.Options{}); err == nil || !strings.Contains(err.Error(), "exactly one .onnx") {
		t.Errorf("two models in the folder: err = %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing"), ort.Options{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("missing path: err = %v", err)
	}
}

// An export with a fixed text length gets the caption padded: [PAD] ids outside the attention
// mask, each attending to itself at position 0; the caption's detections do not change.
func TestFixedTextLengthPads(t *testing.T) {
	d := open(t)
	img := testImage(64, 48)
	want, err := d.Detect(img, Thresholds{}, "man", "face")
	if err != nil {
		t.Fatal(err)
	}
	in := d.inputs["input_ids"]
	in.Shape = []int64{1, 9}
	d.inputs["input_ids"] = in
	text, err := d.Tokenize("man . face .")
	if err != nil {
		t.Fatal(err)
	}
	feeds, err := d.feeds(img, text)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := ort.Data[int64](feeds["input_ids"])
	att, _ := ort.Data[bool](feeds["attention_mask"])
	pos, _ := ort.Data[int64](feeds["position_ids"])
	mask, _ := ort.Data[bool](feeds["text_token_mask"])
	if !reflect.DeepEqual(ids, []int64{2, 16, 5, 23, 5, 3, 0, 0, 0}) || !reflect.DeepEqual(att, []bool{true, true, true, true, true, true, false, false, false}) ||
		!reflect.DeepEqual(pos, []int64{0, 0, 1, 0, 1, 0, 0, 0, 0}) || !mask[1*9+2] || mask[5*9+6] || !mask[7*9+7] || mask[7*9+8] {
		t.Fatalf("padded inputs: ids %v attention %v positions %v", ids, att, pos)
	}
	got, err := d.Detect(img, Thresholds{}, "man", "face")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if got[i].Query != want[i].Query || got[i].Phrase != want[i].Phrase || math.Abs(got[i].Score-want[i].Score) > 1e-6 {
			t.Errorf("detection %d padded %+v, unpadded %+v", i, got[i], want[i])
		}
	}
	if _, err := d.Detect(img, Thresholds{}, "a photo of a man", "face"); err == nil || !strings.Contains(err.Error(), "fixed text length 9") {
		t.Errorf("caption over the fixed length: err = %v", err)
	}
}
