package tiny

import (
	"math"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/synthfaces"
)

// TestDefaultLatentStatistics checks that DefaultLatent's constants are the per-colour pixel
// statistics of synthfaces, so latents have about zero mean and unit variance.
func TestDefaultLatentStatistics(t *testing.T) {
	w, err := synthfaces.New(synthfaces.Config{Seed: 7, Identities: 100, ImagesPerIdentity: 6})
	if err != nil {
		t.Fatal(err)
	}
	var sum, sq [3]float64
	n := 0.0
	for i := 0; i < w.Len(); i++ {
		s, err := w.At(i)
		if err != nil {
			t.Fatal(err)
		}
		for p := 0; p < len(s.Image.Pix); p += 4 {
			for c := 0; c < 3; c++ {
				v := float64(s.Image.Pix[p+c]) / 255
				sum[c] += v
				sq[c] += v * v
			}
			n++
		}
	}
	for c := 0; c < 3; c++ {
		mean := sum[c] / n
		std := math.Sqrt(sq[c]/n - mean*mean)
		t.Logf("colour %d: mean %.3f std %.3f", c, mean, std)
		if math.Abs(mean-float64(DefaultLatent.Mean[c])) > 0.02 || math.Abs(std-float64(DefaultLatent.Std[c])) > 0.02 {
			t.Errorf("colour %d: measured mean %.3f std %.3f, DefaultLatent has %.3f %.3f", c, mean, std, DefaultLatent.Mean[c], DefaultLatent.Std[c])
		}
	}
}

func TestLatentRoundTripAndMask(t *testing.T) {
	w, err := synthfaces.New(synthfaces.Config{Seed: 1, Identities: 2, ImagesPerIdentity: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := w.At(0)
	lat, shape, err := DefaultLatent.Encode(s.Image)
	if err != nil {
		t.Fatal(err)
	}
	if shape[0] != 8 || shape[1] != 8 || shape[2] != 48 || len(lat) != 8*8*48 {
		t.Fatalf("shape %v len %d", shape, len(lat))
	}
	back, err := DefaultLatent.Decode(lat, shape)
	if err != nil {
		t.Fatal(err)
	}
	for i := range s.Image.Pix {
		if d := int(s.Image.Pix[i]) - int(back.Pix[i]); d > 1 || d < -1 {
			t.Fatalf("pixel byte %d: %d after round trip, want %d", i, back.Pix[i], s.Image.Pix[i])
		}
	}
	m, mshape, err := DefaultLatent.Mask(s.Mask)
	if err != nil || mshape[0] != 8 || mshape[1] != 8 {
		t.Fatalf("mask shape %v err %v", mshape, err)
	}
	var cov float32
	for _, v := range m {
		if v < 0 || v > 1 {
			t.Fatalf("mask value %v outside [0,1]", v)
		}
		cov += v
	}
	if cov == 0 || cov == 64 {
		t.Fatalf("latent mask covers %v of 64 cells", cov)
	}
	if _, _, err := DefaultLatent.Encode(s.Image.SubImage(s.Image.Rect.Inset(1))); err == nil {
		t.Fatal("want an error for a 30x30 image")
	}
}
