package diffusion

import (
	"math"
	"strings"
	"testing"
)

func relErr(got, want float64) float64 {
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

// scaledLinearAlphaBar computes ᾱ_t of the scaled-linear schedule straight
// from the formula, summing logs instead of multiplying.
func scaledLinearAlphaBar(t, T int, start, end float64) float64 {
	lo, hi := math.Sqrt(start), math.Sqrt(end)
	var logSum float64
	for s := 0; s <= t; s++ {
		r := lo + (hi-lo)*float64(s)/float64(T-1)
		logSum += math.Log1p(-r * r)
	}
	return math.Exp(logSum)
}

func cosineF(u float64) float64 {
	c := math.Cos((u + 0.008) / 1.008 * math.Pi / 2)
	return c * c
}

func TestScheduleValues(t *testing.T) {
	tests := []struct {
		name string
		kind string
		T    int
		fn   func(s *Schedule) float64
		want float64
		tol  float64 // relative
	}{
		{"scaled β_0", ScaledLinear, 1000, func(s *Schedule) float64 { return s.Beta(0) }, 0.00085, 1e-12},
		{"scaled β_T", ScaledLinear, 1000, func(s *Schedule) float64 { return s.Beta(999) }, 0.012, 1e-12},
		{"scaled ᾱ_1", ScaledLinear, 1000, func(s *Schedule) float64 { return s.AlphaBar(0) }, 1 - 0.00085, 1e-12},
		{"scaled ᾱ_500", ScaledLinear, 1000, func(s *Schedule) float64 { return s.AlphaBar(499) }, scaledLinearAlphaBar(499, 1000, 0.00085, 0.012), 1e-6},
		{"scaled ᾱ_T", ScaledLinear, 1000, func(s *Schedule) float64 { return s.AlphaBar(999) }, scaledLinearAlphaBar(999, 1000, 0.00085, 0.012), 1e-6},
		// numpy: np.cumprod(1 - np.linspace(0.00085**.5, 0.012**.5, 1000)**2)[-1]
		{"scaled ᾱ_T numpy", ScaledLinear, 1000, func(s *Schedule) float64 { return s.AlphaBar(999) }, 0.004660098513077238, 1e-9},
		{"linear β_0", Linear, 1000, func(s *Schedule) float64 { return s.Beta(0) }, 0.0001, 1e-12},
		{"linear β_T", Linear, 1000, func(s *Schedule) float64 { return s.Beta(999) }, 0.02, 1e-12},
		{"linear β_mid", Linear, 11, func(s *Schedule) float64 { return s.Beta(5) }, (0.0001 + 0.02) / 2, 1e-12},
		{"linear ᾱ_T numpy", Linear, 1000, func(s *Schedule) float64 { return s.AlphaBar(999) }, 4.035829765375676e-05, 1e-8},
		{"cosine ᾱ_1", Cosine, 1000, func(s *Schedule) float64 { return s.AlphaBar(0) }, cosineF(0.001) / cosineF(0), 1e-9},
		{"cosine ᾱ_500", Cosine, 1000, func(s *Schedule) float64 { return s.AlphaBar(499) }, cosineF(0.5) / cosineF(0), 1e-9},
		{"cosine β_T clipped", Cosine, 1000, func(s *Schedule) float64 { return s.Beta(999) }, 0.999, 1e-12},
		{"cosine ᾱ_T numpy", Cosine, 1000, func(s *Schedule) float64 { return s.AlphaBar(999) }, 2.4287669070348567e-09, 1e-6},
		{"T=1 scaled", ScaledLinear, 1, func(s *Schedule) float64 { return s.AlphaBar(0) }, 1 - 0.00085, 1e-12},
		{"ᾱ at t=-1", ScaledLinear, 10, func(s *Schedule) float64 { return s.AlphaBar(-1) }, 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewSchedule(tc.kind, tc.T)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.fn(s); relErr(got, tc.want) > tc.tol {
				t.Errorf("got %.17g, want %.17g (rel err %.3g > %.3g)", got, tc.want, relErr(got, tc.want), tc.tol)
			}
		})
	}
}

func TestScheduleShape(t *testing.T) {
	for _, kind := range []string{ScaledLinear, Linear, Cosine} {
		s, err := NewSchedule(kind, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if s.T() != 1000 || s.Kind() != kind || len(s.Betas()) != 1000 || len(s.AlphaBars()) != 1000 {
			t.Fatalf("%s: T=%d kind=%q betas=%d", kind, s.T(), s.Kind(), len(s.Betas()))
		}
		prev := 1.0
		for i := 0; i < s.T(); i++ {
			a := s.AlphaBar(i)
			if !(a > 0 && a < prev) {
				t.Fatalf("%s: ᾱ_%d = %g not in (0, %g): want a decreasing sequence in (0, 1)", kind, i, a, prev)
			}
			prev = a
		}
		for _, bad := range []int{-2, 1000, 5000} {
			if !math.IsNaN(s.AlphaBar(bad)) || !math.IsNaN(s.Beta(bad)) {
				t.Errorf("%s: AlphaBar/Beta(%d) = %g/%g, want NaN", kind, bad, s.AlphaBar(bad), s.Beta(bad))
			}
		}
		// Copies must not alias the schedule.
		s.Betas()[0] = 7
		s.AlphaBars()[0] = 7
		if s.Beta(0) == 7 || s.AlphaBar(0) == 7 {
			t.Errorf("%s: Betas/AlphaBars return aliases of the schedule", kind)
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	tests := []struct {
		name    string
		build   func() (*Schedule, error)
		wantErr string
	}{
		{"unknown kind", func() (*Schedule, error) { return NewSchedule("quadratic", 1000) }, `unknown schedule kind "quadratic"`},
		{"zero T", func() (*Schedule, error) { return NewSchedule(ScaledLinear, 0) }, "want T >= 1"},
		{"negative T cosine", func() (*Schedule, error) { return NewSchedule(Cosine, -3) }, "want T >= 1"},
		{"range on cosine", func() (*Schedule, error) { return NewScheduleRange(Cosine, 10, 0.1, 0.2) }, "β endpoints apply only"},
		{"start > end", func() (*Schedule, error) { return NewScheduleRange(Linear, 10, 0.2, 0.1) }, "beta_start=0.2 beta_end=0.1"},
		{"end >= 1", func() (*Schedule, error) { return NewScheduleRange(ScaledLinear, 10, 0.1, 1) }, "want 0 < beta_start <= beta_end < 1"},
		{"zero start", func() (*Schedule, error) { return NewScheduleRange(Linear, 10, 0, 0.1) }, "want 0 < beta_start"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := tc.build()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got (%v, %v), want error containing %q", s, err, tc.wantErr)
			}
		})
	}
}

func TestNewScheduleRange(t *testing.T) {
	s, err := NewScheduleRange(ScaledLinear, 5, 0.01, 0.04)
	if err != nil {
		t.Fatal(err)
	}
	// √β = linspace(0.1, 0.2, 5) = 0.1, 0.125, 0.15, 0.175, 0.2
	want := []float64{0.01, 0.015625, 0.0225, 0.030625, 0.04}
	for i, w := range want {
		if relErr(s.Beta(i), w) > 1e-12 {
			t.Errorf("β_%d = %g, want %g", i, s.Beta(i), w)
		}
	}
	if got, w := s.AlphaBar(4), 0.99*0.984375*0.9775*0.969375*0.96; relErr(got, w) > 1e-12 {
		t.Errorf("ᾱ_4 = %g, want %g", got, w)
	}
}
