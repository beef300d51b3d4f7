package clipvit

import (
	"fmt"
	"image"
	"image/color"
	"testing"
	"time"
)

// benchImages are n generated-size (1024x1024, SDXL's) images with a little structure.
func benchImages(n int) []image.Image {
	imgs := make([]image.Image, n)
	for k := range imgs {
		img := image.NewRGBA(image.Rect(0, 0, 1024, 1024))
		for y := 0; y < 1024; y++ {
			for x := 0; x < 1024; x++ {
				img.SetRGBA(x, y, color.RGBA{uint8(x + k), uint8(y), uint8(x ^ y), 255})
			}
		}
		imgs[k] = img
	}
	return imgs
}

// BenchmarkCLIPT scores 8 images of 1024x1024 against their 8 prompts (the CLIP-T chain:
// preprocessing, both towers, normalisation) on each fixture layout; it reports images/s and
// the share of the time spent inside ONNX Runtime. On the tiny fixtures the towers cost almost
// nothing, so the share is a floor: with ViT-L/14 ONNX Runtime's part grows by orders of
// magnitude while the preprocessing stays the same.
func BenchmarkCLIPT(b *testing.B) {
	imgs := benchImages(8)
	prompts := make([]string, len(imgs))
	for i := range prompts {
		prompts[i] = fmt.Sprintf("a photo of a cat %d", i)
	}
	for _, dir := range []string{"testdata/towers", "testdata/joint"} {
		b.Run(dir[len("testdata/"):], func(b *testing.B) {
			m := open(b, dir, Options{})
			b.ResetTimer()
			t0, spent := time.Now(), m.timer.Spent()
			for range b.N {
				if _, err := m.EmbedImages(imgs); err != nil {
					b.Fatal(err)
				}
				if _, err := m.EmbedTexts(prompts); err != nil {
					b.Fatal(err)
				}
			}
			el := time.Since(t0)
			b.ReportMetric(float64(b.N*len(imgs))/el.Seconds(), "images/s")
			b.ReportMetric((m.timer.Spent()-spent).Seconds()/el.Seconds(), "ort-share")
		})
	}
}
