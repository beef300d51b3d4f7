package diffusion

import (
	"fmt"
	"math"
)

// Schedule kinds accepted by NewSchedule.
const (
	// ScaledLinear is Stable Diffusion's schedule: β = linspace(√β_start, √β_end, T)²
	// with β_start = 0.00085 and β_end = 0.012.
	ScaledLinear = "scaled_linear"
	// Linear is DDPM's schedule: β = linspace(β_start, β_end, T) with
	// β_start = 0.0001 and β_end = 0.02 (Ho et al. 2020).
	Linear = "linear"
	// Cosine is the schedule of Nichol & Dhariwal (2021):
	// ᾱ(u) = cos²((u+s)/(1+s)·π/2) with s = 0.008, β_t = min(1 - ᾱ((t+1)/T)/ᾱ(t/T), 0.999).
	Cosine = "cosine"
)

// Default β endpoints of the linear-family schedules.
const (
	SDBetaStart   = 0.00085 // Stable Diffusion / SDXL β_start for ScaledLinear
	SDBetaEnd     = 0.012   // Stable Diffusion / SDXL β_end for ScaledLinear
	DDPMBetaStart = 0.0001  // DDPM β_start for Linear
	DDPMBetaEnd   = 0.02    // DDPM β_end for Linear

	cosineS       = 0.008
	cosineMaxBeta = 0.999
)

// Schedule is a discrete noise schedule with T train timesteps: the variances
// β_t and the cumulative products ᾱ_t = ∏_{s≤t} (1-β_s), t = 0 … T-1.
// A Schedule is immutable and safe for concurrent use.
type Schedule struct {
	kind     string
	betas    []float64
	alphaBar []float64
}

// NewSchedule builds a schedule of the given kind (ScaledLinear, Linear or
// Cosine) with T train steps, using the default β endpoints of the kind.
// It returns an error for an unknown kind or T < 1.
func NewSchedule(kind string, T int) (*Schedule, error) {
	switch kind {
	case ScaledLinear:
		return NewScheduleRange(kind, T, SDBetaStart, SDBetaEnd)
	case Linear:
		return NewScheduleRange(kind, T, DDPMBetaStart, DDPMBetaEnd)
	case Cosine:
		if T < 1 {
			return nil, fmt.Errorf("diffusion: schedule %q: want T >= 1 train steps, got %d", kind, T)
		}
		betas := make([]float64, T)
		f := func(u float64) float64 {
			c := math.Cos((u + cosineS) / (1 + cosineS) * math.Pi / 2)
			return c * c
		}
		for i := range betas {
			b := 1 - f(float64(i+1)/float64(T))/f(float64(i)/float64(T))
			betas[i] = math.Min(b, cosineMaxBeta)
		}
		return fromBetas(kind, betas), nil
	default:
		return nil, fmt.Errorf("diffusion: unknown schedule kind %q: want %q, %q or %q", kind, ScaledLinear, Linear, Cosine)
	}
}

// NewScheduleRange builds a Linear or ScaledLinear schedule with T train steps
// and explicit β endpoints. It returns an error for another kind, T < 1, or
// endpoints outside 0 < β_start <= β_end < 1.
func NewScheduleRange(kind string, T int, betaStart, betaEnd float64) (*Schedule, error) {
	if kind != Linear && kind != ScaledLinear {
		return nil, fmt.Errorf("diffusion: schedule %q: β endpoints apply only to %q and %q", kind, Linear, ScaledLinear)
	}
	if T < 1 {
		return nil, fmt.Errorf("diffusion: schedule %q: want T >= 1 train steps, got %d", kind, T)
	}
	if !(betaStart > 0 && betaStart <= betaEnd && betaEnd < 1) {
		return nil, fmt.Errorf("diffusion: schedule %q: want 0 < beta_start <= beta_end < 1, got beta_start=%g beta_end=%g", kind, betaStart, betaEnd)
	}
	lo, hi := betaStart, betaEnd
	if kind == ScaledLinear {
		lo, hi = math.Sqrt(lo), math.Sqrt(hi)
	}
	betas := linspace(lo, hi, T)
	if kind == ScaledLinear {
		for i, b := range betas {
			betas[i] = b * b
		}
	}
	return fromBetas(kind, betas), nil
}

// linspace returns n evenly spaced values from lo to hi inclusive, like
// numpy.linspace (the last value is exactly hi).
func linspace(lo, hi float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = lo
		return out
	}
	step := (hi - lo) / float64(n-1)
	for i := range out {
		out[i] = lo + float64(i)*step
	}
	out[n-1] = hi
	return out
}

func fromBetas(kind string, betas []float64) *Schedule {
	ab := make([]float64, len(betas))
	p := 1.0
	for i, b := range betas {
		p *= 1 - b
		ab[i] = p
	}
	return &Schedule{kind: kind, betas: betas, alphaBar: ab}
}

// Kind returns the schedule kind the schedule was built with.
func (s *Schedule) Kind() string { return s.kind }

// T returns the number of train timesteps.
func (s *Schedule) T() int { return len(s.betas) }

// Beta returns β_t for 0 <= t < T, and NaN for t outside that range.
func (s *Schedule) Beta(t int) float64 {
	if t < 0 || t >= len(s.betas) {
		return math.NaN()
	}
	return s.betas[t]
}

// AlphaBar returns ᾱ_t = ∏_{s=0..t} (1-β_s) for 0 <= t < T, 1 for t = -1
// (no noise, the target of the final sampling step), and NaN for any other t.
func (s *Schedule) AlphaBar(t int) float64 {
	switch {
	case t == -1:
		return 1
	case t < -1 || t >= len(s.alphaBar):
		return math.NaN()
	}
	return s.alphaBar[t]
}

// Betas returns a copy of β_0 … β_{T-1}.
func (s *Schedule) Betas() []float64 { return append([]float64(nil), s.betas...) }

// AlphaBars returns a copy of ᾱ_0 … ᾱ_{T-1}.
func (s *Schedule) AlphaBars() []float64 { return append([]float64(nil), s.alphaBar...) }
