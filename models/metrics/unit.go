package metrics

import "math"

// Unit scales v in place to unit L2 norm and returns it; a zero vector stays zero (Cosine
// scores it 0). The norm is summed in float64, so a wide embedding loses no precision.
func Unit(v []float32) []float32 {
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	if ss == 0 {
		return v
	}
	inv := 1 / math.Sqrt(ss)
	for i, x := range v {
		v[i] = float32(float64(x) * inv)
	}
	return v
}
