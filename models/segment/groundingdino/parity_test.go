package groundingdino

import (
	"encoding/json"
	"image"
	"image/color"
	"math"
	"os"
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// referenceImage is tools/segment_fixtures.py's reference_image.
func referenceImage(w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x * 6 % 256), uint8(y * 8 % 256), uint8(x * y % 256), 255})
		}
	}
	return img
}

// Detect on the reference image gives torch's top detections: the same queries, scores, phrases
// and pixel boxes, so the resize, the channel order and normalisation, the text inputs and the
// box decoding all match the Python side (tools/segment_fixtures.py, reference()).
func TestDetectMatchesTorch(t *testing.T) {
	data, err := os.ReadFile("../testdata/grounding-dino-reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Image []int `json:"image"`
		Top   []struct {
			Query  int       `json:"query"`
			Score  float64   `json:"score"`
			Phrase string    `json:"phrase"`
			Box    []float64 `json:"box"`
		} `json:"top"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	d, err := Open(fixture, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	dets, err := d.Detect(referenceImage(ref.Image[0], ref.Image[1]), Thresholds{}, "man", "face")
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range ref.Top {
		got := dets[i]
		b := []float64{got.Box.X0, got.Box.Y0, got.Box.X1, got.Box.Y1}
		ok := got.Query == want.Query && got.Phrase == want.Phrase && math.Abs(got.Score-want.Score) < 1e-5
		for k := range b {
			ok = ok && math.Abs(b[k]-want.Box[k]) < 0.02
		}
		if !ok {
			t.Errorf("detection %d: query %d %q score %.7f box %.3f\n  torch: query %d %q score %.7f box %.3f",
				i, got.Query, got.Phrase, got.Score, b, want.Query, want.Phrase, want.Score, want.Box)
		}
	}
}
