package diffusion

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// EpsFunc predicts the noise ε̂ in a batch x_t at train timestep t (classifier-
// free guidance, if any, is applied inside it with Guide). It must return
// len(xt) values or an error. xt is reused by the sampler after the call
// returns, so the function must not keep it. v-prediction models convert with
// VToEps.
type EpsFunc func(xt []float32, t int) ([]float32, error)

// Sampler runs a whole DDIM sampling loop. The zero value is not usable:
// Schedule and Steps must be set. A Sampler holds no state between runs, so
// a run is a pure function of its fields, streams and the EpsFunc.
type Sampler struct {
	Schedule *Schedule // the model's train schedule
	Steps    int       // number of sampling steps n, 1 <= n <= T
	Spacing  string    // Leading (the default when empty), Trailing or Linspace
	Eta      float64   // DDIM η >= 0; 0 is deterministic
	Seed     uint64    // seed of every row's noise stream
}

// Timesteps returns the descending train timesteps the sampler visits, or an
// error if the Sampler's fields are invalid.
func (s Sampler) Timesteps() ([]int, error) {
	if s.Schedule == nil {
		return nil, fmt.Errorf("diffusion: sampler: no schedule set")
	}
	if !(s.Eta >= 0) || math.IsInf(s.Eta, 0) {
		return nil, fmt.Errorf("diffusion: sampler: want eta >= 0, got %g", s.Eta)
	}
	spacing := s.Spacing
	if spacing == "" {
		spacing = Leading
	}
	ts, err := Timesteps(s.Schedule.T(), s.Steps, spacing)
	if err != nil {
		return nil, fmt.Errorf("diffusion: sampler: %w", err)
	}
	return ts, nil
}

// Sample draws the initial latents x_T and denoises them. Row b of the batch
// (dim values) starts from GaussianNoise(Seed, streams[b], dim); with Eta > 0
// its per-step noise continues the same stream, so a row's result depends
// only on (Seed, streams[b]) and the model, never on how rows are batched.
// It returns the [len(streams), dim] result or an error naming the step.
func (s Sampler) Sample(streams []uint64, dim int, eps EpsFunc) ([]float32, error) {
	if len(streams) == 0 {
		return nil, fmt.Errorf("diffusion: sampler: no streams (empty batch)")
	}
	if dim < 1 {
		return nil, fmt.Errorf("diffusion: sampler: want dim >= 1, got %d", dim)
	}
	rngs := s.rngs(streams)
	x := make([]float32, len(streams)*dim)
	for b, r := range rngs {
		fillNormal(r, x[b*dim:(b+1)*dim])
	}
	return s.run(x, rngs, eps)
}

// Run denoises given initial latents xT, [len(streams), dim] row-major (xT is
// not modified). Per-step noise for row b (only drawn when Eta > 0) comes from
// the stream (Seed, streams[b]) from its start. It returns the result or an
// error naming the step.
func (s Sampler) Run(xT []float32, streams []uint64, eps EpsFunc) ([]float32, error) {
	if len(streams) == 0 {
		return nil, fmt.Errorf("diffusion: sampler: no streams (empty batch)")
	}
	if len(xT) == 0 || len(xT)%len(streams) != 0 {
		return nil, fmt.Errorf("diffusion: sampler: %d latent values do not split into %d equal rows", len(xT), len(streams))
	}
	return s.run(append([]float32(nil), xT...), s.rngs(streams), eps)
}

func (s Sampler) rngs(streams []uint64) []*rand.Rand {
	out := make([]*rand.Rand, len(streams))
	for i, st := range streams {
		out[i] = rand.New(rand.NewPCG(s.Seed, st))
	}
	return out
}

func (s Sampler) run(x []float32, rngs []*rand.Rand, eps EpsFunc) ([]float32, error) {
	ts, err := s.Timesteps()
	if err != nil {
		return nil, err
	}
	if eps == nil {
		return nil, fmt.Errorf("diffusion: sampler: no EpsFunc given")
	}
	dim := len(x) / len(rngs)
	var noise []float32
	if s.Eta > 0 {
		noise = make([]float32, len(x))
	}
	next := make([]float32, len(x))
	for k, t := range ts {
		tPrev := -1
		if k+1 < len(ts) {
			tPrev = ts[k+1]
		}
		e, err := eps(x, t)
		if err != nil {
			return nil, fmt.Errorf("diffusion: sampler: step %d/%d (t=%d): %w", k+1, len(ts), t, err)
		}
		if len(e) != len(x) {
			return nil, fmt.Errorf("diffusion: sampler: step %d/%d (t=%d): EpsFunc returned %d values, want %d", k+1, len(ts), t, len(e), len(x))
		}
		for i, v := range e {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("diffusion: sampler: step %d/%d (t=%d): EpsFunc returned %g at index %d (row %d)", k+1, len(ts), t, v, i, i/dim)
			}
		}
		if s.Eta > 0 && DDIMSigma(s.Schedule, t, tPrev, s.Eta) > 0 {
			for b, r := range rngs {
				fillNormal(r, noise[b*dim:(b+1)*dim])
			}
		}
		ddimStep(next, x, e, t, tPrev, s.Eta, noise, s.Schedule)
		x, next = next, x
	}
	return x, nil
}
