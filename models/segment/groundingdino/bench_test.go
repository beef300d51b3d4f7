package groundingdino

import (
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// BenchmarkDetect runs the fixture detector on a 178x218 image (CelebA's aligned size, resized
// to 800x979): the cost around the model, which the fixture keeps small.
func BenchmarkDetect(b *testing.B) {
	d, err := Open(fixture, ort.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	img := testImage(178, 218)
	for b.Loop() {
		if _, err := d.Detect(img, DefaultThresholds, "face"); err != nil {
			b.Fatal(err)
		}
	}
}
