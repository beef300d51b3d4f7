package sam2

import (
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/segment"
)

// BenchmarkMask runs the fixture encoder and decoder on a 178x218 image (CelebA's aligned
// size): the 1024 resize, the feature tensors and the mask resize around the models.
func BenchmarkMask(b *testing.B) {
	p, err := Open("../testdata/sam2", ort.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	img := testImage(178, 218)
	box := segment.Box{X0: 30, Y0: 40, X1: 150, Y1: 200}
	for b.Loop() {
		if _, _, err := p.Mask(img, box); err != nil {
			b.Fatal(err)
		}
	}
}
