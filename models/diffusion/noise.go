package diffusion

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// AddNoise returns x_t = √ᾱ·x + √(1-ᾱ)·ε (paper eqs. 1 and 6), element by
// element in float64. It returns nil if len(eps) != len(x) or ᾱ is outside [0, 1].
func AddNoise(x, eps []float32, abar float64) []float32 {
	if len(x) != len(eps) || !(abar >= 0 && abar <= 1) {
		return nil
	}
	out := make([]float32, len(x))
	addNoise(out, x, eps, abar)
	return out
}

func addNoise(out, x, eps []float32, abar float64) {
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	for i := range out {
		out[i] = float32(a*float64(x[i]) + b*float64(eps[i]))
	}
}

// AddNoiseBatch noises a batch: x and eps are [len(abar), n] row-major and row
// b gets ᾱ = abar[b]. It returns an error naming the problem if the batch is
// empty, the lengths do not split into len(abar) equal rows, or an ᾱ is
// outside [0, 1].
func AddNoiseBatch(x, eps []float32, abar []float64) ([]float32, error) {
	if len(abar) == 0 {
		return nil, fmt.Errorf("diffusion: AddNoiseBatch: empty batch (no ᾱ values)")
	}
	if len(x) != len(eps) {
		return nil, fmt.Errorf("diffusion: AddNoiseBatch: x has %d values but eps has %d", len(x), len(eps))
	}
	if len(x)%len(abar) != 0 {
		return nil, fmt.Errorf("diffusion: AddNoiseBatch: %d values do not split into %d equal rows", len(x), len(abar))
	}
	n := len(x) / len(abar)
	out := make([]float32, len(x))
	for b, ab := range abar {
		if !(ab >= 0 && ab <= 1) {
			return nil, fmt.Errorf("diffusion: AddNoiseBatch: row %d: want ᾱ in [0, 1], got %g", b, ab)
		}
		addNoise(out[b*n:(b+1)*n], x[b*n:(b+1)*n], eps[b*n:(b+1)*n], ab)
	}
	return out, nil
}

// PredictX0 returns the DDIM approximation x̂₀ = (x_t − √(1−ᾱ)·ε̂)/√ᾱ used by
// the CoCoIns losses (paper §3.3). It returns nil if the lengths differ or ᾱ
// is outside (0, 1].
func PredictX0(xt, epsHat []float32, abar float64) []float32 {
	if len(xt) != len(epsHat) || !(abar > 0 && abar <= 1) {
		return nil
	}
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	out := make([]float32, len(xt))
	for i := range out {
		out[i] = float32((float64(xt[i]) - b*float64(epsHat[i])) / a)
	}
	return out
}

// PredictEps is the inverse of PredictX0: ε̂ = (x_t − √ᾱ·x̂₀)/√(1−ᾱ). It
// returns nil if the lengths differ or ᾱ is outside [0, 1).
func PredictEps(xt, x0 []float32, abar float64) []float32 {
	if len(xt) != len(x0) || !(abar >= 0 && abar < 1) {
		return nil
	}
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	out := make([]float32, len(xt))
	for i := range out {
		out[i] = float32((float64(xt[i]) - a*float64(x0[i])) / b)
	}
	return out
}

// Velocity returns the v-prediction training target v = √ᾱ·ε − √(1−ᾱ)·x₀
// (Salimans & Ho 2022). It returns nil if the lengths differ or ᾱ is outside [0, 1].
func Velocity(x0, eps []float32, abar float64) []float32 {
	if len(x0) != len(eps) || !(abar >= 0 && abar <= 1) {
		return nil
	}
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	out := make([]float32, len(x0))
	for i := range out {
		out[i] = float32(a*float64(eps[i]) - b*float64(x0[i]))
	}
	return out
}

// VToEps converts a v-prediction into the noise prediction
// ε̂ = √(1−ᾱ)·x_t + √ᾱ·v̂. It returns nil if the lengths differ or ᾱ is
// outside [0, 1].
func VToEps(xt, v []float32, abar float64) []float32 {
	if len(xt) != len(v) || !(abar >= 0 && abar <= 1) {
		return nil
	}
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	out := make([]float32, len(xt))
	for i := range out {
		out[i] = float32(b*float64(xt[i]) + a*float64(v[i]))
	}
	return out
}

// VToX0 converts a v-prediction into x̂₀ = √ᾱ·x_t − √(1−ᾱ)·v̂. It returns nil
// if the lengths differ or ᾱ is outside [0, 1].
func VToX0(xt, v []float32, abar float64) []float32 {
	if len(xt) != len(v) || !(abar >= 0 && abar <= 1) {
		return nil
	}
	a, b := math.Sqrt(abar), math.Sqrt(1-abar)
	out := make([]float32, len(xt))
	for i := range out {
		out[i] = float32(a*float64(xt[i]) - b*float64(v[i]))
	}
	return out
}

// Guide applies classifier-free guidance: u + s·(c − u) for the unconditional
// prediction u and the conditional prediction c. Scale 1 gives c, scale 0
// gives u. It returns nil if the lengths differ.
func Guide(uncond, cond []float32, scale float64) []float32 {
	if len(uncond) != len(cond) {
		return nil
	}
	out := make([]float32, len(cond))
	for i := range out {
		u := float64(uncond[i])
		out[i] = float32(u + scale*(float64(cond[i])-u))
	}
	return out
}

// GaussianNoise returns n standard-normal float32 values drawn with
// math/rand/v2's PCG seeded by (seed, stream) and NormFloat64. The same
// (seed, stream) always gives the same values, and a longer n extends a
// shorter one, so a batch built from one stream per sample does not depend on
// how samples are batched. It returns an empty slice for n <= 0.
func GaussianNoise(seed, stream uint64, n int) []float32 {
	if n <= 0 {
		return []float32{}
	}
	out := make([]float32, n)
	fillNormal(rand.New(rand.NewPCG(seed, stream)), out)
	return out
}

func fillNormal(r *rand.Rand, out []float32) {
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
}
