package prompt

import (
	"slices"
	"strings"
	"testing"
)

// Word sources in expected plans.
const (
	w0 = -1
	w1 = -2
)

var planCases = []struct {
	name        string
	seqLen, eos int
	positions   []int
	maxLen      int
	wantSrc     []int
	wantEOS     int
	wantDropped int
}{
	{"middle", 6, 5, []int{3}, 77, []int{0, 1, 2, w0, 3, 4, 5}, 6, 0},
	{"at position 1", 6, 5, []int{1}, 77, []int{0, w0, 1, 2, 3, 4, 5}, 6, 0},
	{"just before EOS", 6, 5, []int{5}, 77, []int{0, 1, 2, 3, 4, w0, 5}, 6, 0},
	{"no insertion", 4, 3, nil, 77, []int{0, 1, 2, 3}, 3, 0},
	{"unpadded grows to maxLen", 3, 2, []int{1}, 4, []int{0, w0, 1, 2}, 3, 0},
	{"padding stays padding", 8, 4, []int{2}, 8, []int{0, 1, w0, 2, 3, 4, 5, 6}, 5, 0},
	{"before EOS eats padding", 6, 4, []int{4}, 6, []int{0, 1, 2, 3, w0, 4}, 5, 0},
	{"truncation at maxLen", 6, 5, []int{2}, 6, []int{0, 1, w0, 2, 3, 5}, 5, 1},
	{"two insertions", 7, 6, []int{4, 2}, 77, []int{0, 1, w1, 2, 3, w0, 4, 5, 6}, 8, 0},
	{"two insertions other order", 7, 6, []int{2, 4}, 77, []int{0, 1, w0, 2, 3, w1, 4, 5, 6}, 8, 0},
	{"two insertions eat padding", 8, 5, []int{1, 3}, 8, []int{0, w0, 1, 2, w1, 3, 4, 5}, 7, 0},
	{"two insertions, one padding left", 9, 5, []int{3, 1}, 9, []int{0, w1, 1, 2, w0, 3, 4, 5, 6}, 7, 0},
	{"two insertions truncate one", 8, 6, []int{1, 3}, 8, []int{0, w0, 1, 2, w1, 3, 4, 6}, 7, 1},
	{"two insertions truncate two", 6, 5, []int{1, 2}, 6, []int{0, w0, 1, w1, 2, 5}, 5, 2},
}

func TestNewPlan(t *testing.T) {
	for _, tc := range planCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(tc.seqLen, tc.eos, tc.positions, tc.maxLen)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Src, tc.wantSrc) || p.EOS != tc.wantEOS || p.Dropped != tc.wantDropped {
				t.Fatalf("got Src=%v EOS=%d Dropped=%d, want Src=%v EOS=%d Dropped=%d",
					p.Src, p.EOS, p.Dropped, tc.wantSrc, tc.wantEOS, tc.wantDropped)
			}
			if p.Src[p.EOS] != tc.eos {
				t.Errorf("output EOS index %d holds source %d, want the original EOS %d", p.EOS, p.Src[p.EOS], tc.eos)
			}
			if p.Len() > tc.maxLen || p.NumWords() != len(tc.positions) {
				t.Errorf("Len=%d (max %d) NumWords=%d (want %d)", p.Len(), tc.maxLen, p.NumWords(), len(tc.positions))
			}
			if err := p.Validate(tc.seqLen, len(tc.positions)); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestNewPlanErrors(t *testing.T) {
	tests := []struct {
		name        string
		seqLen, eos int
		positions   []int
		maxLen      int
		wantErr     string
	}{
		{"negative position", 6, 5, []int{-1}, 77, "position -1 (insertion 0) out of range [0, 6)"},
		{"position past sequence", 6, 5, []int{2, 6}, 77, "position 6 (insertion 1) out of range [0, 6)"},
		{"position past EOS", 8, 4, []int{6}, 8, "position 6 (insertion 0) is past EOS at 4"},
		{"duplicate", 6, 5, []int{2, 3, 2}, 77, "position 2 given twice (insertions 0 and 2)"},
		{"EOS out of range", 6, 6, []int{2}, 77, "EOS index 6 out of range [0, 6)"},
		{"negative EOS", 6, -1, []int{2}, 77, "EOS index -1 out of range"},
		{"longer than maxLen", 80, 79, []int{2}, 77, "80 tokens is longer than the encoder's max length 77"},
		{"empty sequence", 0, 0, nil, 77, "at least 1 token"},
		{"word truncated", 6, 5, []int{5}, 6, "insertion 0 at position 5 does not fit"},
		{"concept truncated", 6, 5, []int{4}, 6, "insertion 0 at position 4 does not fit"},
		{"second word's concept truncated", 6, 5, []int{1, 4}, 6, "insertion 1 at position 4 does not fit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPlan(tc.seqLen, tc.eos, tc.positions, tc.maxLen)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

// testSeq makes a [seqLen, d] sequence whose token i is (i, i+0.5, …) and
// words whose k-th is (100+k, …), so every output row names its source.
func testSeq(seqLen, d, numWords int) ([]float32, [][]float32) {
	e := make([]float32, seqLen*d)
	for i := range seqLen {
		for j := range d {
			e[i*d+j] = float32(i) + float32(j)/2
		}
	}
	words := make([][]float32, numWords)
	for k := range words {
		words[k] = make([]float32, d)
		for j := range d {
			words[k][j] = float32(100+k) + float32(j)/2
		}
	}
	return e, words
}

func TestInsertMatchesPlanAndOneHot(t *testing.T) {
	const d = 3
	for _, tc := range planCases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPlan(tc.seqLen, tc.eos, tc.positions, tc.maxLen)
			if err != nil {
				t.Fatal(err)
			}
			e, words := testSeq(tc.seqLen, d, len(tc.positions))
			got, err := Insert(e, d, p, words...)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.wantSrc)*d {
				t.Fatalf("got %d values, want %d", len(got), len(tc.wantSrc)*d)
			}
			for o, s := range tc.wantSrc {
				want := e[max(s, 0)*d : (max(s, 0)+1)*d]
				if s < 0 {
					want = words[-1-s]
				}
				if !slices.Equal(got[o*d:(o+1)*d], want) {
					t.Errorf("output %d = %v, want %v (source %d)", o, got[o*d:(o+1)*d], want, s)
				}
			}

			// out = M · concat(e, w) must equal Insert.
			m := OneHot([]Plan{p}, tc.seqLen, len(tc.positions))
			cols := tc.seqLen + len(tc.positions)
			if len(m) != p.Len()*cols {
				t.Fatalf("OneHot has %d values, want %d", len(m), p.Len()*cols)
			}
			cat := slices.Clone(e)
			for _, w := range words {
				cat = append(cat, w...)
			}
			prod := make([]float32, p.Len()*d)
			for o := range p.Len() {
				for c := range cols {
					for j := range d {
						prod[o*d+j] += m[o*cols+c] * cat[c*d+j]
					}
				}
			}
			if !slices.Equal(prod, got) {
				t.Errorf("M·concat(e, w) = %v, Insert = %v", prod, got)
			}
		})
	}
}

func TestInsertOrderIndependent(t *testing.T) {
	const d = 2
	e, words := testSeq(7, d, 2)
	a, err := NewPlan(7, 6, []int{4, 2}, 77)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPlan(7, 6, []int{2, 4}, 77)
	if err != nil {
		t.Fatal(err)
	}
	outA, errA := Insert(e, d, a, words[0], words[1])
	outB, errB := Insert(e, d, b, words[1], words[0])
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if !slices.Equal(outA, outB) {
		t.Errorf("same (position, word) pairs in another order differ:\n%v\n%v", outA, outB)
	}
}

func TestInsertErrors(t *testing.T) {
	p, err := NewPlan(5, 4, []int{2}, 77)
	if err != nil {
		t.Fatal(err)
	}
	e, words := testSeq(5, 4, 2)
	tests := []struct {
		name    string
		e       []float32
		d       int
		plan    Plan
		words   [][]float32
		wantErr string
	}{
		{"zero d", e, 0, p, words[:1], "want embedding width d >= 1"},
		{"e not multiple of d", e[:19], 4, p, words[:1], "embedding has 19 values, want a non-zero multiple of d=4"},
		{"empty e", nil, 4, p, words[:1], "embedding has 0 values"},
		{"too many words", e, 4, p, words, "plan places 1 words, got 2"},
		{"no words", e, 4, p, nil, "plan places 1 words, got 0"},
		{"word width", e, 4, p, [][]float32{words[0][:3]}, "word 0 has 3 values, want d=4"},
		{"plan longer than e", e[:12], 4, p, words[:1], "output 4 reads token 3, but the sequence has 3 tokens"},
		{"bad EOS", e, 4, Plan{Src: []int{0, -1, 1}, EOS: 3}, words[:1], "EOS index 3 out of range [0, 3)"},
		{"word placed twice", e, 4, Plan{Src: []int{0, -1, -1}, EOS: 0}, words, "word 0 is placed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Insert(tc.e, tc.d, tc.plan, tc.words...)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestOneHotBatch(t *testing.T) {
	var plans []Plan
	for _, a := range []struct {
		eos       int
		positions []int
	}{
		{3, []int{2}},    // 0 1 W0 2 3 4: one pad token kept
		{3, []int{3, 1}}, // 0 W1 1 2 W0 3: padding used up
		{5, nil},         // identity, uses no word
	} {
		p, err := NewPlan(6, a.eos, a.positions, 6)
		if err != nil {
			t.Fatal(err)
		}
		plans = append(plans, p)
	}
	p1, p2, p0 := plans[0], plans[1], plans[2]
	if !slices.Equal(p2.Src, []int{0, w1, 1, 2, w0, 3}) || p2.EOS != 5 {
		t.Fatalf("p2 = %+v", p2)
	}
	m := OneHot([]Plan{p1, p2, p0}, 6, 2)
	const cols = 8
	if len(m) != 3*6*cols {
		t.Fatalf("got %d values, want %d", len(m), 3*6*cols)
	}
	for b, p := range []Plan{p1, p2, p0} {
		for o := range 6 {
			row := m[(b*6+o)*cols : (b*6+o+1)*cols]
			want := p.Src[o]
			if want < 0 {
				want = 6 + (-1 - want)
			}
			for c, v := range row {
				if (c == want) != (v == 1) || (v != 0 && v != 1) {
					t.Fatalf("plan %d output %d: row %v, want a single 1 at column %d", b, o, row, want)
				}
			}
		}
	}

	long, _ := NewPlan(6, 5, []int{2}, 77) // 7 positions
	nilCases := []struct {
		name  string
		plans []Plan
		seq   int
		words int
	}{
		{"empty batch", nil, 6, 1},
		{"different lengths", []Plan{p1, long}, 6, 1},
		{"too few word columns", []Plan{p2}, 6, 1},
		{"token past seqLen", []Plan{p1}, 3, 1},
	}
	for _, tc := range nilCases {
		if got := OneHot(tc.plans, tc.seq, tc.words); got != nil {
			t.Errorf("%s: got %d values, want nil", tc.name, len(got))
		}
	}
}
