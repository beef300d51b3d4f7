package dreamsim

import (
	"image"
	"image/color"
	"testing"
	"time"

	"github.com/cocoflow/cocoflow/models/judges/onnxjudge"
)

// BenchmarkDreamSim embeds 8 images of 1024x1024 (SDXL's size) with the fixture export and
// reports images/s and the share of the time inside ONNX Runtime (a floor: the fixture's
// backbones are tiny, the preprocessing is the real one).
func BenchmarkDreamSim(b *testing.B) {
	imgs := make([]image.Image, 8)
	for k := range imgs {
		img := image.NewRGBA(image.Rect(0, 0, 1024, 1024))
		for y := 0; y < 1024; y++ {
			for x := 0; x < 1024; x++ {
				img.SetRGBA(x, y, color.RGBA{uint8(x + k), uint8(y), uint8(x ^ y), 255})
			}
		}
		imgs[k] = img
	}
	m := open(b, "testdata", onnxjudge.Options{})
	b.ResetTimer()
	t0, spent := time.Now(), m.timer.Spent()
	for range b.N {
		if _, err := m.EmbedImages(imgs); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(t0)
	b.ReportMetric(float64(b.N*len(imgs))/el.Seconds(), "images/s")
	b.ReportMetric((m.timer.Spent()-spent).Seconds()/el.Seconds(), "ort-share")
}
