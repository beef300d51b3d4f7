package diffusion

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func mustSchedule(t *testing.T, kind string, T int) *Schedule {
	t.Helper()
	s, err := NewSchedule(kind, T)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// oracle returns an EpsFunc that knows the clean batch x0 and answers with the
// exact noise ε = (x_t − √ᾱ_t x0)/√(1−ᾱ_t).
func oracle(s *Schedule, x0 []float32) EpsFunc {
	return func(xt []float32, t int) ([]float32, error) {
		return PredictEps(xt, x0, s.AlphaBar(t)), nil
	}
}

func TestDDIMStepKeepsX0AndEps(t *testing.T) {
	// With η = 0, one DDIM step from AddNoise(x0, ε, ᾱ_t) with the true ε lands
	// exactly on AddNoise(x0, ε, ᾱ_prev).
	s := mustSchedule(t, ScaledLinear, 1000)
	x0 := GaussianNoise(5, 0, 32)
	eps := GaussianNoise(5, 1, 32)
	for _, step := range [][2]int{{999, 979}, {981, 961}, {500, 0}, {21, 1}, {1, -1}, {999, -1}} {
		xt := AddNoise(x0, eps, s.AlphaBar(step[0]))
		got := DDIMStep(xt, eps, step[0], step[1], 0, nil, s)
		want := AddNoise(x0, eps, s.AlphaBar(step[1]))
		if d := maxAbsDiff(got, want); d > 2e-5 {
			t.Errorf("t=%d→%d: off by %g", step[0], step[1], d)
		}
	}
}

func TestDDIMSigma(t *testing.T) {
	s := mustSchedule(t, Linear, 1000)
	for _, tt := range []int{1, 10, 500, 999} {
		// η = 1 between consecutive steps is DDPM's posterior variance
		// β̃_t = (1−ᾱ_{t−1})/(1−ᾱ_t)·β_t.
		want := (1 - s.AlphaBar(tt-1)) / (1 - s.AlphaBar(tt)) * s.Beta(tt)
		if got := DDIMSigma(s, tt, tt-1, 1); relErr(got*got, want) > 1e-9 {
			t.Errorf("t=%d: σ² = %g, want %g", tt, got*got, want)
		}
		if got := DDIMSigma(s, tt, tt-1, 0); got != 0 {
			t.Errorf("t=%d: η=0 gives σ = %g, want 0", tt, got)
		}
	}
	if got := DDIMSigma(s, 500, -1, 1); got != 0 {
		t.Errorf("final step to ᾱ=1: σ = %g, want 0", got)
	}
	for _, bad := range [][2]int{{1000, 10}, {10, 10}, {10, 20}, {10, -2}, {-1, -1}} {
		if got := DDIMSigma(s, bad[0], bad[1], 1); !math.IsNaN(got) {
			t.Errorf("t=%d tPrev=%d: got %g, want NaN", bad[0], bad[1], got)
		}
	}
}

func TestDDIMStepNoise(t *testing.T) {
	s := mustSchedule(t, ScaledLinear, 1000)
	xt := GaussianNoise(1, 0, 16)
	eps := GaussianNoise(1, 1, 16)
	z := GaussianNoise(1, 2, 16)
	det := DDIMStep(xt, eps, 501, 481, 0, nil, s)
	if d := maxAbsDiff(det, DDIMStep(xt, eps, 501, 481, 0, z, s)); d != 0 {
		t.Errorf("η=0 must ignore noise, differs by %g", d)
	}
	sto := DDIMStep(xt, eps, 501, 481, 1, z, s)
	sigma := DDIMSigma(s, 501, 481, 1)
	ap := s.AlphaBar(481)
	for i := range xt {
		x0 := (float64(xt[i]) - math.Sqrt(1-s.AlphaBar(501))*float64(eps[i])) / math.Sqrt(s.AlphaBar(501))
		want := math.Sqrt(ap)*x0 + math.Sqrt(1-ap-sigma*sigma)*float64(eps[i]) + sigma*float64(z[i])
		if math.Abs(float64(sto[i])-want) > 1e-5 {
			t.Fatalf("η=1 element %d: got %g, want %g", i, sto[i], want)
		}
	}
}

func TestDDIMStepInvalid(t *testing.T) {
	s := mustSchedule(t, ScaledLinear, 100)
	x := []float32{1, 2}
	tests := []struct {
		name string
		got  []float32
	}{
		{"nil schedule", DDIMStep(x, x, 10, 5, 0, nil, nil)},
		{"t past T", DDIMStep(x, x, 100, 5, 0, nil, s)},
		{"tPrev >= t", DDIMStep(x, x, 10, 10, 0, nil, s)},
		{"tPrev < -1", DDIMStep(x, x, 10, -2, 0, nil, s)},
		{"eps length", DDIMStep(x, x[:1], 10, 5, 0, nil, s)},
		{"eta < 0", DDIMStep(x, x, 10, 5, -1, x, s)},
		{"eta > 0 without noise", DDIMStep(x, x, 10, 5, 0.5, nil, s)},
	}
	for _, tc := range tests {
		if tc.got != nil {
			t.Errorf("%s: got %v, want nil", tc.name, tc.got)
		}
	}
}

func TestSamplerOracleRecoversX0(t *testing.T) {
	// A perfect ε oracle makes DDIM land on x0 for any schedule, spacing and η.
	const dim = 24
	streams := []uint64{3, 9}
	x0 := GaussianNoise(77, 0, dim*len(streams))
	for _, kind := range []string{ScaledLinear, Linear, Cosine} {
		s := mustSchedule(t, kind, 1000)
		for _, sp := range []string{Leading, Trailing, Linspace} {
			for _, eta := range []float64{0, 1} {
				for _, n := range []int{1, 4, 50} {
					smp := Sampler{Schedule: s, Steps: n, Spacing: sp, Eta: eta, Seed: 11}
					got, err := smp.Sample(streams, dim, oracle(s, x0))
					if err != nil {
						t.Fatal(err)
					}
					// float32 rounding of ε̂ (≈1e-7 of |ε|) is amplified by
					// 1/√ᾱ at the first step: large for the cosine ᾱ_T ≈ 2e-9.
					ts, _ := smp.Timesteps()
					tol := 1e-5 + 2e-7/math.Sqrt(s.AlphaBar(ts[0]))
					if d := maxAbsDiff(got, x0); d > tol {
						t.Errorf("%s %s η=%g n=%d: off x0 by %g", kind, sp, eta, n, d)
					}
				}
			}
		}
	}
}

func TestSamplerDDIMLoopByHand(t *testing.T) {
	// Run must equal chaining DDIMStep over Timesteps with tPrev = next step.
	s := mustSchedule(t, ScaledLinear, 1000)
	eps := func(xt []float32, t int) ([]float32, error) {
		out := make([]float32, len(xt))
		for i, v := range xt {
			out[i] = 0.9*v + float32(t)/1000
		}
		return out, nil
	}
	xT := GaussianNoise(4, 4, 10)
	smp := Sampler{Schedule: s, Steps: 5}
	got, err := smp.Run(xT, []uint64{0}, eps)
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := Timesteps(1000, 5, Leading)
	x := xT
	for k, tt := range ts {
		tPrev := -1
		if k+1 < len(ts) {
			tPrev = ts[k+1]
		}
		e, _ := eps(x, tt)
		x = DDIMStep(x, e, tt, tPrev, 0, nil, s)
	}
	if d := maxAbsDiff(got, x); d != 0 {
		t.Errorf("Run differs from chained DDIMStep by %g", d)
	}
	if d := maxAbsDiff(xT, GaussianNoise(4, 4, 10)); d != 0 {
		t.Errorf("Run modified xT")
	}
}

// rowwise is a batch-independent fake model: each value depends only on its
// own row.
func rowwise(dim int) EpsFunc {
	return func(xt []float32, t int) ([]float32, error) {
		out := make([]float32, len(xt))
		for b := 0; b < len(xt)/dim; b++ {
			row := xt[b*dim : (b+1)*dim]
			var m float32
			for _, v := range row {
				m += v
			}
			m /= float32(dim)
			for i, v := range row {
				out[b*dim+i] = 0.5*v + 0.3*m + float32(t%7)/10
			}
		}
		return out, nil
	}
}

func TestSamplerDeterministicAndBatchIndependent(t *testing.T) {
	s := mustSchedule(t, ScaledLinear, 1000)
	const dim = 8
	for _, eta := range []float64{0, 0.7} {
		smp := Sampler{Schedule: s, Steps: 10, Eta: eta, Seed: 2024}
		batch, err := smp.Sample([]uint64{5, 1, 9}, dim, rowwise(dim))
		if err != nil {
			t.Fatal(err)
		}
		again, _ := smp.Sample([]uint64{5, 1, 9}, dim, rowwise(dim))
		if d := maxAbsDiff(batch, again); d != 0 {
			t.Errorf("η=%g: same seed differs by %g", eta, d)
		}
		for b, st := range []uint64{5, 1, 9} {
			single, err := smp.Sample([]uint64{st}, dim, rowwise(dim))
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(batch[b*dim:(b+1)*dim], single); d != 0 {
				t.Errorf("η=%g stream %d: batched row differs from single run by %g", eta, st, d)
			}
		}
		other := smp
		other.Seed = 2025
		diff, _ := other.Sample([]uint64{5, 1, 9}, dim, rowwise(dim))
		if maxAbsDiff(batch, diff) == 0 {
			t.Errorf("η=%g: another seed gives the same samples", eta)
		}
	}
	// η > 0 must actually inject noise: two streams with the same x_T differ.
	smp := Sampler{Schedule: s, Steps: 10, Eta: 1, Seed: 1}
	xT := append(GaussianNoise(0, 0, dim), GaussianNoise(0, 0, dim)...)
	out, err := smp.Run(xT, []uint64{1, 2}, rowwise(dim))
	if err != nil {
		t.Fatal(err)
	}
	if maxAbsDiff(out[:dim], out[dim:]) == 0 {
		t.Errorf("η=1: rows with equal x_T and different streams did not diverge")
	}
}

func TestSamplerInitialNoise(t *testing.T) {
	s := mustSchedule(t, Linear, 1000)
	var first []float32
	eps := func(xt []float32, t int) ([]float32, error) {
		if first == nil {
			first = append([]float32(nil), xt...)
		}
		return make([]float32, len(xt)), nil
	}
	smp := Sampler{Schedule: s, Steps: 3, Seed: 99}
	if _, err := smp.Sample([]uint64{4, 6}, 5, eps); err != nil {
		t.Fatal(err)
	}
	want := append(GaussianNoise(99, 4, 5), GaussianNoise(99, 6, 5)...)
	if d := maxAbsDiff(first, want); d != 0 {
		t.Errorf("x_T is not GaussianNoise(seed, stream, dim) per row (diff %g)", d)
	}
}

func TestSamplerErrors(t *testing.T) {
	s := mustSchedule(t, ScaledLinear, 1000)
	ok := func(xt []float32, t int) ([]float32, error) { return make([]float32, len(xt)), nil }
	boom := errors.New("out of memory")
	tests := []struct {
		name    string
		smp     Sampler
		streams []uint64
		dim     int
		eps     EpsFunc
		wantErr string
	}{
		{"no schedule", Sampler{Steps: 10}, []uint64{0}, 4, ok, "no schedule"},
		{"zero steps", Sampler{Schedule: s}, []uint64{0}, 4, ok, "want 1 <= steps <= 1000"},
		{"negative eta", Sampler{Schedule: s, Steps: 5, Eta: -0.5}, []uint64{0}, 4, ok, "want eta >= 0"},
		{"bad spacing", Sampler{Schedule: s, Steps: 5, Spacing: "karras"}, []uint64{0}, 4, ok, `unknown timestep spacing "karras"`},
		{"no streams", Sampler{Schedule: s, Steps: 5}, nil, 4, ok, "no streams"},
		{"zero dim", Sampler{Schedule: s, Steps: 5}, []uint64{0}, 0, ok, "want dim >= 1"},
		{"nil eps", Sampler{Schedule: s, Steps: 5}, []uint64{0}, 4, nil, "no EpsFunc"},
		{"eps error", Sampler{Schedule: s, Steps: 5}, []uint64{0}, 4,
			func(xt []float32, t int) ([]float32, error) {
				if t < 500 {
					return nil, boom
				}
				return ok(xt, t)
			}, "step 3/5 (t=401): out of memory"},
		{"eps length", Sampler{Schedule: s, Steps: 5}, []uint64{0}, 4,
			func(xt []float32, t int) ([]float32, error) { return make([]float32, 3), nil },
			"step 1/5 (t=801): EpsFunc returned 3 values, want 4"},
		{"eps NaN", Sampler{Schedule: s, Steps: 5}, []uint64{0, 1}, 4,
			func(xt []float32, t int) ([]float32, error) {
				out := make([]float32, len(xt))
				out[6] = float32(math.NaN())
				return out, nil
			}, "returned NaN at index 6 (row 1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.smp.Sample(tc.streams, tc.dim, tc.eps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
			if tc.name == "eps error" && !errors.Is(err, boom) {
				t.Errorf("error does not wrap the EpsFunc's error")
			}
		})
	}
	if _, err := (Sampler{Schedule: s, Steps: 5}).Run(make([]float32, 7), []uint64{0, 1}, ok); err == nil ||
		!strings.Contains(err.Error(), "7 latent values do not split into 2 equal rows") {
		t.Errorf("Run with ragged rows: got %v", err)
	}
	ts, err := (Sampler{Schedule: s, Steps: 4, Spacing: Trailing}).Timesteps()
	if err != nil || !slices.Equal(ts, []int{999, 749, 499, 249}) {
		t.Errorf("Sampler.Timesteps = %v, %v", ts, err)
	}
}

// BenchmarkDDIMStep times one step on an SDXL-sized latent (4×128×128).
func BenchmarkDDIMStep(b *testing.B) {
	s, _ := NewSchedule(ScaledLinear, 1000)
	xt := GaussianNoise(1, 0, 4*128*128)
	eps := GaussianNoise(1, 1, 4*128*128)
	for b.Loop() {
		DDIMStep(xt, eps, 981, 961, 0, nil, s)
	}
}

// BenchmarkGaussianNoise times drawing an SDXL-sized latent of noise.
func BenchmarkGaussianNoise(b *testing.B) {
	for b.Loop() {
		GaussianNoise(1, 0, 4*128*128)
	}
}
