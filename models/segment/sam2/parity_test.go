package sam2

import (
	"encoding/json"
	"image"
	"image/color"
	"math"
	"os"
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/segment"
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

// Logits on the reference image are torch's (tools/segment_fixtures.py, sam2_reference): the
// encoder's input, the box prompt, the choice by IoU and the resize to image size all match.
// The fixture's image term is 0.5 tanh(features); swapping R and B moves the logits by 0.017.
func TestLogitsMatchTorch(t *testing.T) {
	data, err := os.ReadFile("../testdata/sam2-reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Image  []int     `json:"image"`
		Box    []float64 `json:"box"`
		IoU    float64   `json:"iou"`
		Logits []float64 `json:"logits"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	p, err := Open("../testdata/sam2", ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	box := segment.Box{X0: ref.Box[0], Y0: ref.Box[1], X1: ref.Box[2], Y1: ref.Box[3]}
	logits, iou, err := p.Logits(referenceImage(ref.Image[0], ref.Image[1]), box)
	if err != nil {
		t.Fatal(err)
	}
	if len(logits) != len(ref.Logits) || math.Abs(iou-ref.IoU) > 1e-5 {
		t.Fatalf("%d logits, iou %g; torch %d, %g", len(logits), iou, len(ref.Logits), ref.IoU)
	}
	worst := 0.0
	for i, want := range ref.Logits {
		worst = max(worst, math.Abs(float64(logits[i])-want))
	}
	if worst > 2e-4 {
		t.Errorf("logits differ from torch by up to %g", worst)
	}
	t.Logf("largest difference from torch %.2g", worst)
}
