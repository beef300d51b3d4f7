package diffusion

import (
	"math"
	"strings"
	"testing"
)

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var m float64
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

func TestAddNoiseClosedForm(t *testing.T) {
	tests := []struct {
		name   string
		x, eps []float32
		abar   float64
		want   []float32
	}{
		{"abar 1 keeps x", []float32{1, -2, 3}, []float32{5, 5, 5}, 1, []float32{1, -2, 3}},
		{"abar 0 is noise", []float32{1, -2, 3}, []float32{0.5, 6, -1}, 0, []float32{0.5, 6, -1}},
		{"abar 0.36", []float32{1, 2}, []float32{1, -1}, 0.36, []float32{0.6 + 0.8, 1.2 - 0.8}},
		{"abar 0.25", []float32{4}, []float32{2}, 0.25, []float32{2 + float32(math.Sqrt(0.75)*2)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AddNoise(tc.x, tc.eps, tc.abar)
			if d := maxAbsDiff(got, tc.want); d > 1e-6 {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPredictionRoundTrips(t *testing.T) {
	x0 := GaussianNoise(1, 0, 64)
	eps := GaussianNoise(1, 1, 64)
	for _, abar := range []float64{0.999, 0.7, 0.25, 0.0047} {
		xt := AddNoise(x0, eps, abar)
		tol := 2e-6 / math.Sqrt(abar) * 4
		if d := maxAbsDiff(PredictX0(xt, eps, abar), x0); d > tol {
			t.Errorf("ᾱ=%g: PredictX0(AddNoise(x0, ε), ε) off by %g (tol %g)", abar, d, tol)
		}
		if d := maxAbsDiff(PredictEps(xt, x0, abar), eps); d > 2e-6/math.Sqrt(1-abar)*4 {
			t.Errorf("ᾱ=%g: PredictEps(AddNoise(x0, ε), x0) off by %g", abar, d)
		}
		v := Velocity(x0, eps, abar)
		if d := maxAbsDiff(VToEps(xt, v, abar), eps); d > 1e-5 {
			t.Errorf("ᾱ=%g: VToEps off by %g", abar, d)
		}
		if d := maxAbsDiff(VToX0(xt, v, abar), x0); d > 1e-5 {
			t.Errorf("ᾱ=%g: VToX0 off by %g", abar, d)
		}
	}
	// Velocity closed form: √ᾱ ε − √(1−ᾱ) x0 at ᾱ = 0.64.
	if got := Velocity([]float32{1}, []float32{2}, 0.64); math.Abs(float64(got[0])-(0.8*2-0.6*1)) > 1e-6 {
		t.Errorf("Velocity = %v, want 1.0", got)
	}
}

func TestInvalidInputsReturnNil(t *testing.T) {
	a, b := []float32{1, 2}, []float32{1}
	tests := []struct {
		name string
		got  []float32
	}{
		{"AddNoise lengths", AddNoise(a, b, 0.5)},
		{"AddNoise abar>1", AddNoise(a, a, 1.5)},
		{"AddNoise abar NaN", AddNoise(a, a, math.NaN())},
		{"PredictX0 lengths", PredictX0(a, b, 0.5)},
		{"PredictX0 abar 0", PredictX0(a, a, 0)},
		{"PredictEps abar 1", PredictEps(a, a, 1)},
		{"PredictEps lengths", PredictEps(b, a, 0.5)},
		{"Velocity lengths", Velocity(a, b, 0.5)},
		{"VToEps abar<0", VToEps(a, a, -0.1)},
		{"VToX0 lengths", VToX0(a, b, 0.5)},
		{"Guide lengths", Guide(a, b, 7.5)},
	}
	for _, tc := range tests {
		if tc.got != nil {
			t.Errorf("%s: got %v, want nil", tc.name, tc.got)
		}
	}
}

func TestAddNoiseBatch(t *testing.T) {
	x := GaussianNoise(3, 0, 12)
	eps := GaussianNoise(3, 1, 12)
	abar := []float64{0.9, 0.5, 0.1}
	got, err := AddNoiseBatch(x, eps, abar)
	if err != nil {
		t.Fatal(err)
	}
	for b, ab := range abar {
		want := AddNoise(x[b*4:(b+1)*4], eps[b*4:(b+1)*4], ab)
		if d := maxAbsDiff(got[b*4:(b+1)*4], want); d != 0 {
			t.Errorf("row %d differs from AddNoise by %g", b, d)
		}
	}
	errs := []struct {
		name    string
		x, eps  []float32
		abar    []float64
		wantErr string
	}{
		{"empty", x, eps, nil, "empty batch"},
		{"eps length", x, eps[:11], abar, "x has 12 values but eps has 11"},
		{"rows", x[:10], eps[:10], abar, "10 values do not split into 3 equal rows"},
		{"abar range", x, eps, []float64{0.5, 1.2, 0.1}, "row 1: want ᾱ in [0, 1], got 1.2"},
	}
	for _, tc := range errs {
		_, err := AddNoiseBatch(tc.x, tc.eps, tc.abar)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestGuide(t *testing.T) {
	tests := []struct {
		name  string
		u, c  []float32
		scale float64
		want  []float32
	}{
		{"scale 1 is cond", []float32{1, 2}, []float32{3, -4}, 1, []float32{3, -4}},
		{"scale 0 is uncond", []float32{1, 2}, []float32{3, -4}, 0, []float32{1, 2}},
		{"scale 7.5", []float32{1, 2}, []float32{3, -4}, 7.5, []float32{1 + 7.5*2, 2 + 7.5*-6}},
	}
	for _, tc := range tests {
		if d := maxAbsDiff(Guide(tc.u, tc.c, tc.scale), tc.want); d > 1e-6 {
			t.Errorf("%s: got %v, want %v", tc.name, Guide(tc.u, tc.c, tc.scale), tc.want)
		}
	}
}

func TestGaussianNoise(t *testing.T) {
	a := GaussianNoise(42, 7, 1000)
	if d := maxAbsDiff(a, GaussianNoise(42, 7, 1000)); d != 0 {
		t.Fatalf("same (seed, stream) differs by %g", d)
	}
	if d := maxAbsDiff(a[:10], GaussianNoise(42, 7, 10)); d != 0 {
		t.Errorf("shorter draw is not a prefix of the longer one (diff %g)", d)
	}
	if maxAbsDiff(a, GaussianNoise(42, 8, 1000)) == 0 || maxAbsDiff(a, GaussianNoise(43, 7, 1000)) == 0 {
		t.Errorf("different stream or seed gives the same noise")
	}
	var sum, sq float64
	big := GaussianNoise(1, 2, 20000)
	for _, v := range big {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	mean, variance := sum/20000, sq/20000-(sum/20000)*(sum/20000)
	if math.Abs(mean) > 0.05 || math.Abs(variance-1) > 0.05 {
		t.Errorf("mean %g variance %g, want about 0 and 1", mean, variance)
	}
	if got := GaussianNoise(1, 1, 0); got == nil || len(got) != 0 {
		t.Errorf("n=0: got %v, want empty non-nil slice", got)
	}
	if got := GaussianNoise(1, 1, -4); len(got) != 0 {
		t.Errorf("n=-4: got %d values, want 0", len(got))
	}
}
