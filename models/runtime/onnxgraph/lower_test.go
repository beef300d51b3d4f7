package onnxgraph

import "testing"

// TestNearestRepeats pins which Resize coordinate modes upsample by repetition.
func TestNearestRepeats(t *testing.T) {
	for _, c := range []struct {
		ctm, rounding string
		r             int
		want          bool
	}{
		{"asymmetric", "floor", 2, true}, {"asymmetric", "floor", 3, true},
		{"asymmetric", "round_prefer_floor", 2, true}, {"asymmetric", "round_prefer_floor", 3, false},
		{"asymmetric", "round_prefer_ceil", 2, false}, {"asymmetric", "ceil", 2, false},
		{"half_pixel", "round_prefer_floor", 2, true}, {"half_pixel", "round_prefer_ceil", 3, true},
		{"pytorch_half_pixel", "round_prefer_floor", 4, true}, {"half_pixel", "floor", 2, false},
		{"align_corners", "round_prefer_floor", 2, false}, {"tf_half_pixel_for_nn", "floor", 2, false},
		{"asymmetric", "floor", 1, true},
	} {
		if got := nearestRepeats(c.ctm, c.rounding, c.r); got != c.want {
			t.Errorf("nearestRepeats(%s, %s, %d) = %v, want %v", c.ctm, c.rounding, c.r, got, c.want)
		}
	}
}
