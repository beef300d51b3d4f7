package metrics

import (
	"math"
	"testing"
)

func TestUnit(t *testing.T) {
	v := Unit([]float32{3, 0, -4})
	if want := []float32{0.6, 0, -0.8}; math.Abs(float64(v[0]-want[0])) > 1e-7 || v[1] != 0 || math.Abs(float64(v[2]-want[2])) > 1e-7 {
		t.Errorf("Unit(3, 0, -4) = %v, want %v", v, want)
	}
	if z := Unit([]float32{0, 0}); z[0] != 0 || z[1] != 0 {
		t.Errorf("Unit(0, 0) = %v, want zeros", z)
	}
}
