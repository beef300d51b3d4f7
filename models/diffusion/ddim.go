package diffusion

import "math"

// DDIMSigma returns the DDIM noise scale between train steps t and tPrev
// (Song et al. 2021, eq. 16):
// σ = η·√((1−ᾱ_prev)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_prev). η = 0 is deterministic DDIM,
// η = 1 matches DDPM's posterior variance. It returns NaN for steps outside
// the schedule (see DDIMStep).
func DDIMSigma(s *Schedule, t, tPrev int, eta float64) float64 {
	if s == nil || t < 0 || t >= s.T() || tPrev < -1 || tPrev >= t {
		return math.NaN()
	}
	at, ap := s.AlphaBar(t), s.AlphaBar(tPrev)
	v := (1 - ap) / (1 - at) * (1 - at/ap)
	return eta * math.Sqrt(math.Max(v, 0))
}

// DDIMStep moves x_t to x_{tPrev} with the noise prediction ε̂ (Song et al.
// 2021, eq. 12):
//
//	x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t
//	x_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev−σ²)·ε̂ + σ·z
//
// with σ from DDIMSigma. tPrev = -1 is the final step to ᾱ = 1, which returns
// x̂₀. noise (z) is read only when eta > 0 and must then have len(xt) values.
// It returns nil if s is nil, 0 <= tPrev < t < T (or tPrev = -1) does not
// hold, eta < 0, len(epsHat) != len(xt), or eta > 0 and len(noise) != len(xt).
func DDIMStep(xt, epsHat []float32, t, tPrev int, eta float64, noise []float32, s *Schedule) []float32 {
	if s == nil || t < 0 || t >= s.T() || tPrev < -1 || tPrev >= t || !(eta >= 0) || len(epsHat) != len(xt) {
		return nil
	}
	if eta > 0 && len(noise) != len(xt) {
		return nil
	}
	out := make([]float32, len(xt))
	ddimStep(out, xt, epsHat, t, tPrev, eta, noise, s)
	return out
}

func ddimStep(out, xt, epsHat []float32, t, tPrev int, eta float64, noise []float32, s *Schedule) {
	at, ap := s.AlphaBar(t), s.AlphaBar(tPrev)
	sqA, sqB := math.Sqrt(at), math.Sqrt(1-at)
	sigma := DDIMSigma(s, t, tPrev, eta)
	cx0 := math.Sqrt(ap)
	ceps := math.Sqrt(math.Max(1-ap-sigma*sigma, 0))
	for i := range out {
		e := float64(epsHat[i])
		x0 := (float64(xt[i]) - sqB*e) / sqA
		v := cx0*x0 + ceps*e
		if eta > 0 {
			v += sigma * float64(noise[i])
		}
		out[i] = float32(v)
	}
}
