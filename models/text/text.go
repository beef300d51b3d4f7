// Package text is cocoflow's tokenizer vocabulary: the Encoding a tokenizer produces, the
// Tokenizer interface every generator family implements, and helpers that stages use to find a
// concept word in a prompt and to fit token ids to a text encoder's fixed length.
package text

import (
	"strings"
	"unicode"
)

// Encoding is a tokenized text: IDs include BOS and EOS, unpadded, untruncated.
type Encoding struct {
	IDs    []int32
	Words  []string // the pre-tokenized, cleaned words of the text (lower-cased)
	WordOf []int    // for each ID the index into Words it came from; -1 for BOS/EOS
}

// Tokenizer turns text into token ids. Implementations are safe for concurrent use.
type Tokenizer interface {
	// Encode tokenizes text; it never fails (unknown pieces map to an unknown token or to bytes).
	Encode(text string) Encoding
	// BOS returns the id of the begin-of-sequence token.
	BOS() int32
	// EOS returns the id of the end-of-sequence token.
	EOS() int32
	// Pad returns the id used to pad sequences to MaxLength.
	Pad() int32
	// MaxLength returns the text encoder's sequence length, BOS and EOS included (77 for CLIP).
	MaxLength() int
	// VocabSize returns the number of ids, specials included.
	VocabSize() int
}

// ConceptIndex returns the token position of the first token of the first occurrence of word
// (case-insensitive, compared with the cleaned words) in enc, or -1 when word does not occur or
// is empty. A word made of several space-separated words ("teddy bear") matches consecutive
// cleaned words.
func ConceptIndex(enc Encoding, word string) int {
	want := strings.FieldsFunc(strings.ToLower(word), unicode.IsSpace)
	if len(want) == 0 {
		return -1
	}
	first := -1
	for i := 0; i+len(want) <= len(enc.Words) && first < 0; i++ {
		match := true
		for k, w := range want {
			if strings.ToLower(enc.Words[i+k]) != w {
				match = false
				break
			}
		}
		if match {
			first = i
		}
	}
	if first < 0 {
		return -1
	}
	for pos, w := range enc.WordOf {
		if w == first {
			return pos
		}
	}
	return -1
}

// Fit pads ids with pad up to maxLen, or truncates them to maxLen keeping EOS as the last
// token; returns the fitted ids, the index of EOS in them, and whether tokens were dropped.
// The EOS index is the last position of the unpadded part when that token is eos (the first
// eos when pad equals eos, as HF CLIP's argmax pooling picks), and -1 when ids do not end with
// eos and nothing was truncated. A maxLen below 1 gives an empty result. ids is not modified.
func Fit(ids []int32, maxLen int, eos, pad int32) (fitted []int32, eosIndex int, truncated bool) {
	if maxLen < 1 {
		return []int32{}, -1, len(ids) > 0
	}
	fitted = make([]int32, maxLen)
	if len(ids) > maxLen {
		copy(fitted, ids[:maxLen-1])
		fitted[maxLen-1] = eos
		return fitted, maxLen - 1, true
	}
	n := copy(fitted, ids)
	for i := n; i < maxLen; i++ {
		fitted[i] = pad
	}
	eosIndex = -1
	if n > 0 && ids[n-1] == eos {
		eosIndex = n - 1
	}
	return fitted, eosIndex, false
}
