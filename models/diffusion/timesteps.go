package diffusion

import (
	"fmt"
	"math"
)

// Timestep spacings accepted by Timesteps; they follow diffusers'
// "timestep_spacing" options.
const (
	// Leading spaces steps by T/n from 0 upwards and adds steps_offset = 1,
	// diffusers' default for SD and SDXL: T=1000, n=50 gives 981, 961, …, 1.
	Leading = "leading"
	// Trailing spaces steps by T/n down from T and subtracts 1:
	// T=1000, n=4 gives 999, 749, 499, 249.
	Trailing = "trailing"
	// Linspace rounds n evenly spaced values from T-1 down to 0 inclusive.
	Linspace = "linspace"
)

// Timesteps returns the n train timesteps an n-step sampler visits for a
// schedule with T train steps, in descending order, computed as diffusers
// does (rounding half to even, like numpy). For Leading with n = T the offset
// would reach t = T, so it returns T-1 … 0 instead. It returns an error for
// T < 1, n < 1, n > T or an unknown spacing.
func Timesteps(T, n int, spacing string) ([]int, error) {
	if T < 1 {
		return nil, fmt.Errorf("diffusion: timesteps: want T >= 1 train steps, got %d", T)
	}
	if n < 1 || n > T {
		return nil, fmt.Errorf("diffusion: timesteps: want 1 <= steps <= %d (train steps), got %d", T, n)
	}
	out := make([]int, n)
	switch spacing {
	case Leading:
		ratio := T / n
		offset := 1
		if (n-1)*ratio+offset > T-1 {
			offset = 0
		}
		for i := range out {
			out[n-1-i] = i*ratio + offset
		}
	case Trailing:
		// numpy.arange(T, 0, -T/n): start + i·delta with delta taken from the
		// first two values, then rounded half to even, minus 1.
		start := float64(T)
		delta := (start - start/float64(n)) - start
		for i := range out {
			out[i] = int(math.RoundToEven(start+float64(i)*delta)) - 1
		}
	case Linspace:
		v := linspace(0, float64(T-1), n)
		for i := range out {
			out[n-1-i] = int(math.RoundToEven(v[i]))
		}
	default:
		return nil, fmt.Errorf("diffusion: unknown timestep spacing %q: want %q, %q or %q", spacing, Leading, Trailing, Linspace)
	}
	return out, nil
}
