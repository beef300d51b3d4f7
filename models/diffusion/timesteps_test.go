package diffusion

import (
	"slices"
	"strings"
	"testing"
)

func TestTimesteps(t *testing.T) {
	// Expected lists come from diffusers' formulas evaluated with numpy.
	tests := []struct {
		T, n    int
		spacing string
		want    []int // full list, or nil when only head/tail are given
		head    []int
		tail    []int
	}{
		{T: 1000, n: 50, spacing: Leading, head: []int{981, 961, 941, 921}, tail: []int{41, 21, 1}},
		{T: 1000, n: 4, spacing: Trailing, want: []int{999, 749, 499, 249}},
		{T: 1000, n: 4, spacing: Leading, want: []int{751, 501, 251, 1}},
		{T: 1000, n: 4, spacing: Linspace, want: []int{999, 666, 333, 0}},
		{T: 1000, n: 3, spacing: Trailing, want: []int{999, 666, 332}},
		{T: 1000, n: 3, spacing: Leading, want: []int{667, 334, 1}},
		{T: 1000, n: 3, spacing: Linspace, want: []int{999, 500, 0}},
		{T: 1000, n: 7, spacing: Trailing, want: []int{999, 856, 713, 570, 428, 285, 142}},
		{T: 1000, n: 7, spacing: Leading, want: []int{853, 711, 569, 427, 285, 143, 1}},
		{T: 1000, n: 7, spacing: Linspace, want: []int{999, 832, 666, 500, 333, 166, 0}},
		// 937.5 → 938 and 812.5 → 812: numpy rounds half to even.
		{T: 1000, n: 16, spacing: Trailing, want: []int{999, 937, 874, 811, 749, 687, 624, 561, 499, 437, 374, 311, 249, 187, 124, 61}},
		{T: 1000, n: 16, spacing: Linspace, want: []int{999, 932, 866, 799, 733, 666, 599, 533, 466, 400, 333, 266, 200, 133, 67, 0}},
		{T: 1000, n: 50, spacing: Trailing, head: []int{999, 979, 959, 939}, tail: []int{59, 39, 19}},
		{T: 1000, n: 50, spacing: Linspace, head: []int{999, 979, 958, 938, 917}, tail: []int{41, 20, 0}},
		{T: 10, n: 4, spacing: Trailing, want: []int{9, 7, 4, 1}},
		{T: 10, n: 4, spacing: Linspace, want: []int{9, 6, 3, 0}},
		{T: 1000, n: 1, spacing: Leading, want: []int{1}},
		{T: 1000, n: 1, spacing: Trailing, want: []int{999}},
		{T: 1000, n: 1, spacing: Linspace, want: []int{0}},
		{T: 5, n: 5, spacing: Leading, want: []int{4, 3, 2, 1, 0}}, // offset would reach t = T
		{T: 5, n: 5, spacing: Trailing, want: []int{4, 3, 2, 1, 0}},
	}
	for _, tc := range tests {
		got, err := Timesteps(tc.T, tc.n, tc.spacing)
		if err != nil {
			t.Errorf("T=%d n=%d %s: %v", tc.T, tc.n, tc.spacing, err)
			continue
		}
		if len(got) != tc.n {
			t.Errorf("T=%d n=%d %s: got %d steps", tc.T, tc.n, tc.spacing, len(got))
			continue
		}
		ok := true
		if tc.want != nil {
			ok = slices.Equal(got, tc.want)
		} else {
			ok = slices.Equal(got[:len(tc.head)], tc.head) && slices.Equal(got[len(got)-len(tc.tail):], tc.tail)
		}
		if !ok {
			t.Errorf("T=%d n=%d %s: got %v", tc.T, tc.n, tc.spacing, got)
		}
	}
}

func TestTimestepsAlwaysValid(t *testing.T) {
	for _, T := range []int{1, 2, 7, 100, 1000} {
		for n := 1; n <= T; n++ {
			for _, sp := range []string{Leading, Trailing, Linspace} {
				ts, err := Timesteps(T, n, sp)
				if err != nil {
					t.Fatalf("T=%d n=%d %s: %v", T, n, sp, err)
				}
				for i, v := range ts {
					if v < 0 || v >= T || (i > 0 && v >= ts[i-1]) {
						t.Fatalf("T=%d n=%d %s: not strictly descending within [0, T): %v", T, n, sp, ts)
					}
				}
			}
		}
	}
}

func TestTimestepsErrors(t *testing.T) {
	tests := []struct {
		T, n    int
		spacing string
		wantErr string
	}{
		{1000, 0, Leading, "want 1 <= steps <= 1000 (train steps), got 0"},
		{1000, 1001, Trailing, "got 1001"},
		{1000, -5, Linspace, "got -5"},
		{0, 1, Leading, "want T >= 1"},
		{1000, 10, "karras", `unknown timestep spacing "karras"`},
	}
	for _, tc := range tests {
		_, err := Timesteps(tc.T, tc.n, tc.spacing)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("T=%d n=%d %q: got %v, want error containing %q", tc.T, tc.n, tc.spacing, err, tc.wantErr)
		}
	}
}
