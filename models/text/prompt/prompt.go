// Package prompt inserts pseudo-words into token-embedding sequences, the
// insert(e, w, i) of CoCoIns (paper eq. 4): [.., e_{i-1}, w, e_i, ..].
//
// An insertion is computed once on the host as a Plan — for every output
// position, where its vector comes from — and then applied either in plain Go
// (Insert) or, in a computation graph, as a 0/1 matrix product (OneHot), which
// keeps the operation differentiable with respect to the inserted words.
package prompt

import "fmt"

// Plan maps every output position to its source: a token index of the original
// sequence (>= 0) or an inserted word (-1 - k for the k-th insertion, k in the
// order the positions were given to NewPlan).
type Plan struct {
	// Src holds the source of each output position; len(Src) is the output length.
	Src []int
	// EOS is the output index of the EOS token, the position the text encoder
	// pools at: the original index plus the number of insertions, or the last
	// index when the sequence was truncated.
	EOS int
	// Dropped counts the original non-EOS tokens cut off by truncation to the
	// encoder's maximum length (padding that makes room is not counted).
	Dropped int
}

// NewPlan plans inserting len(positions) words into a sequence of seqLen
// tokens whose EOS token sits at index eos (tokens after EOS are padding).
// Word k goes right before original token positions[k]; a position equal to
// eos puts the word just before EOS. Positions refer to the original
// sequence, so their order does not change the result. The output has
// min(seqLen+len(positions), maxLen) positions: padding after EOS is
// consumed first; if the content itself no longer fits, the last non-EOS
// entries are dropped and EOS stays last.
//
// It returns an error naming the offending argument if seqLen, eos or maxLen
// are inconsistent, a position is out of range, past EOS or repeated, or
// truncation would drop an inserted word or the token right after it (the
// concept word the pseudo-word describes).
func NewPlan(seqLen, eos int, positions []int, maxLen int) (Plan, error) {
	switch {
	case seqLen < 1:
		return Plan{}, fmt.Errorf("prompt: plan: want a sequence of at least 1 token, got %d", seqLen)
	case maxLen < seqLen:
		return Plan{}, fmt.Errorf("prompt: plan: sequence of %d tokens is longer than the encoder's max length %d", seqLen, maxLen)
	case eos < 0 || eos >= seqLen:
		return Plan{}, fmt.Errorf("prompt: plan: EOS index %d out of range [0, %d)", eos, seqLen)
	}
	wordAt := make(map[int]int, len(positions)) // original position -> word k
	for k, p := range positions {
		switch {
		case p < 0 || p >= seqLen:
			return Plan{}, fmt.Errorf("prompt: plan: position %d (insertion %d) out of range [0, %d)", p, k, seqLen)
		case p > eos:
			return Plan{}, fmt.Errorf("prompt: plan: position %d (insertion %d) is past EOS at %d", p, k, eos)
		}
		if j, dup := wordAt[p]; dup {
			return Plan{}, fmt.Errorf("prompt: plan: position %d given twice (insertions %d and %d)", p, j, k)
		}
		wordAt[p] = k
	}

	// The full sequence before truncation: content with words, then padding.
	full := make([]int, 0, seqLen+len(positions))
	for i := 0; i < seqLen; i++ {
		if k, ok := wordAt[i]; ok {
			full = append(full, -1-k)
		}
		full = append(full, i)
	}
	outLen := min(seqLen+len(positions), maxLen)
	content := eos + 1 + len(positions)
	if content <= outLen {
		return Plan{Src: full[:outLen:outLen], EOS: content - 1}, nil
	}

	// Truncate: keep the first maxLen-1 entries before EOS, then EOS.
	pre := full[:content-1]
	keep := maxLen - 1
	for at, src := range pre {
		if src >= 0 {
			continue
		}
		if at >= keep || (at+1 < len(pre) && at+1 >= keep) {
			return Plan{}, fmt.Errorf("prompt: plan: insertion %d at position %d does not fit: truncating %d tokens (with %d inserted) to %d would drop the word or the token after it",
				-1-src, positions[-1-src], eos+1, len(positions), maxLen)
		}
	}
	src := make([]int, 0, maxLen)
	src = append(src, pre[:keep]...)
	src = append(src, eos)
	return Plan{Src: src, EOS: maxLen - 1, Dropped: len(pre) - keep}, nil
}

// Len returns the output sequence length.
func (p Plan) Len() int { return len(p.Src) }

// NumWords returns how many inserted words the plan places.
func (p Plan) NumWords() int {
	n := 0
	for _, s := range p.Src {
		if s < 0 {
			n++
		}
	}
	return n
}

// Validate checks that the plan fits a sequence of seqLen tokens and at most
// numWords words: every source in range, each word used at most once, EOS
// inside the output. It returns an error naming the first bad entry.
func (p Plan) Validate(seqLen, numWords int) error {
	if len(p.Src) == 0 {
		return fmt.Errorf("prompt: plan is empty")
	}
	if p.EOS < 0 || p.EOS >= len(p.Src) {
		return fmt.Errorf("prompt: plan: EOS index %d out of range [0, %d)", p.EOS, len(p.Src))
	}
	used := make([]bool, numWords)
	for o, s := range p.Src {
		switch {
		case s >= seqLen:
			return fmt.Errorf("prompt: plan: output %d reads token %d, but the sequence has %d tokens", o, s, seqLen)
		case s < 0 && -1-s >= numWords:
			return fmt.Errorf("prompt: plan: output %d reads word %d, but %d words are given", o, -1-s, numWords)
		case s < 0 && used[-1-s]:
			return fmt.Errorf("prompt: plan: word %d is placed twice (again at output %d)", -1-s, o)
		case s < 0:
			used[-1-s] = true
		}
	}
	return nil
}

// Insert applies the plan to e, a [seqLen, d] row-major embedding sequence,
// with words[k] as the k-th inserted word (d values each), and returns the
// [plan.Len(), d] result. It returns an error if d < 1, len(e) is not a
// multiple of d, a word does not have d values, the number of words differs
// from the plan's, or the plan does not fit e (see Validate).
func Insert(e []float32, d int, plan Plan, words ...[]float32) ([]float32, error) {
	if d < 1 {
		return nil, fmt.Errorf("prompt: insert: want embedding width d >= 1, got %d", d)
	}
	if len(e) == 0 || len(e)%d != 0 {
		return nil, fmt.Errorf("prompt: insert: embedding has %d values, want a non-zero multiple of d=%d", len(e), d)
	}
	if n := plan.NumWords(); n != len(words) {
		return nil, fmt.Errorf("prompt: insert: plan places %d words, got %d", n, len(words))
	}
	for k, w := range words {
		if len(w) != d {
			return nil, fmt.Errorf("prompt: insert: word %d has %d values, want d=%d", k, len(w), d)
		}
	}
	if err := plan.Validate(len(e)/d, len(words)); err != nil {
		return nil, fmt.Errorf("prompt: insert: %w", err)
	}
	out := make([]float32, 0, len(plan.Src)*d)
	for _, s := range plan.Src {
		if s >= 0 {
			out = append(out, e[s*d:(s+1)*d]...)
		} else {
			out = append(out, words[-1-s]...)
		}
	}
	return out, nil
}

// OneHot returns, for a batch of plans, the [len(plans), outLen, seqLen+numWords]
// 0/1 matrix M with out = M · concat(e, w): column s < seqLen selects token s
// of e and column seqLen+k selects word k. A plan may use fewer than numWords
// words (the extra columns stay zero). It returns nil if plans is empty, the
// plans differ in output length, or a plan fails Validate(seqLen, numWords).
func OneHot(plans []Plan, seqLen, numWords int) []float32 {
	if len(plans) == 0 || seqLen < 1 || numWords < 0 {
		return nil
	}
	outLen := plans[0].Len()
	for _, p := range plans {
		if p.Len() != outLen || p.Validate(seqLen, numWords) != nil {
			return nil
		}
	}
	cols := seqLen + numWords
	m := make([]float32, len(plans)*outLen*cols)
	for b, p := range plans {
		for o, s := range p.Src {
			c := s
			if s < 0 {
				c = seqLen + (-1 - s)
			}
			m[(b*outLen+o)*cols+c] = 1
		}
	}
	return m
}
