// Package clip is a pure-Go implementation of the CLIP byte-level BPE tokenizer, the one
// Stable Diffusion and SDXL use for their text encoders. It loads OpenAI's
// bpe_simple_vocab_16e6.txt.gz or a Hugging Face vocab.json + merges.txt pair and produces the
// same ids as OpenAI's SimpleTokenizer (without ftfy).
package clip

import (
	"strings"
	"sync"

	"github.com/cocoflow/cocoflow/models/text"
)

// MaxLength is the sequence length of CLIP's text encoders, BOS and EOS included.
const MaxLength = 77

// cacheLimit bounds the BPE cache; it is emptied when it reaches this many words.
const cacheLimit = 1 << 16

// pair is two adjacent symbol ids.
type pair struct{ a, b int32 }

// merge is what a pair becomes: its rank (lower merges first) and the id of the merged symbol.
type merge struct{ rank, id int32 }

// vocab is the immutable part of a tokenizer plus its cache, shared by WithPad copies.
type vocab struct {
	encoder   map[string]int32
	decoder   []string // id -> token; "" where no token has the id
	merges    map[pair]merge
	byteID    [256]int32 // the symbol of each byte inside a word
	byteEndID [256]int32 // the symbol of each byte ending a word (with "</w>")
	byteOf    map[rune]byte
	bos, eos  int32

	mu    sync.RWMutex
	cache map[string][]int32
}

// Tokenizer is the CLIP BPE tokenizer. It implements text.Tokenizer and is safe for concurrent
// use. Make one with Load; the zero value is not usable.
type Tokenizer struct {
	*vocab
	pad int32
}

var _ text.Tokenizer = (*Tokenizer)(nil)

// Encode cleans text as OpenAI's CLIP tokenizer does (HTML unescape, whitespace collapse, strip,
// lower-case; ftfy is not applied), splits it with CLIP's pre-tokenizer regex and returns BOS,
// the BPE ids of every piece, and EOS. The pieces are the Encoding's Words; <|startoftext|> and
// <|endoftext|> written in the text become their special ids.
func (t *Tokenizer) Encode(s string) text.Encoding {
	words := preTokenize(cleanText(s))
	enc := text.Encoding{
		IDs:    make([]int32, 1, len(words)+8),
		Words:  words,
		WordOf: make([]int, 1, len(words)+8),
	}
	enc.IDs[0], enc.WordOf[0] = t.bos, -1
	for i, w := range words {
		for _, id := range t.bpe(w) {
			enc.IDs = append(enc.IDs, id)
			enc.WordOf = append(enc.WordOf, i)
		}
	}
	enc.IDs = append(enc.IDs, t.eos)
	enc.WordOf = append(enc.WordOf, -1)
	return enc
}

// bpe returns the ids of one pre-tokenized piece, from the cache when it was seen before.
func (v *vocab) bpe(word string) []int32 {
	switch word {
	case StartOfText:
		return []int32{v.bos}
	case EndOfText:
		return []int32{v.eos}
	}
	v.mu.RLock()
	ids, ok := v.cache[word]
	v.mu.RUnlock()
	if ok {
		return ids
	}
	ids = v.merge(word)
	v.mu.Lock()
	if len(v.cache) >= cacheLimit {
		v.cache = make(map[string][]int32)
	}
	v.cache[word] = ids
	v.mu.Unlock()
	return ids
}

// merge runs byte-level BPE on word: one symbol per UTF-8 byte, the last one marked as the end
// of the word, then the adjacent pair of lowest rank merges everywhere (left to right, without
// overlap) until no pair has a rank.
func (v *vocab) merge(word string) []int32 {
	n := len(word)
	syms := make([]int32, n)
	for i := 0; i < n; i++ {
		syms[i] = v.byteID[word[i]]
	}
	syms[n-1] = v.byteEndID[word[n-1]]
	for len(syms) > 1 {
		best := merge{rank: -1}
		var bp pair
		for i := 0; i+1 < len(syms); i++ {
			p := pair{syms[i], syms[i+1]}
			if m, ok := v.merges[p]; ok && (best.rank < 0 || m.rank < best.rank) {
				best, bp = m, p
			}
		}
		if best.rank < 0 {
			break
		}
		j := 0
		for i := 0; i < len(syms); j++ {
			if i+1 < len(syms) && syms[i] == bp.a && syms[i+1] == bp.b {
				syms[j] = best.id
				i += 2
			} else {
				syms[j] = syms[i]
				i++
			}
		}
		syms = syms[:j]
	}
	return syms
}

// Decode returns the text of ids: tokens are joined, end-of-word marks become spaces, the byte
// characters turn back into bytes (invalid UTF-8 reads as U+FFFD) and the ends are trimmed.
// BOS, EOS and ids outside the vocabulary are left out; a pad id other than EOS (SDXL's "!")
// decodes like any token, so pass unpadded ids.
func (t *Tokenizer) Decode(ids []int32) string {
	var buf []byte
	for _, id := range ids {
		if id == t.bos || id == t.eos || id < 0 || int(id) >= len(t.decoder) {
			continue
		}
		for _, r := range t.decoder[id] {
			if b, ok := t.byteOf[r]; ok {
				buf = append(buf, b)
			}
		}
	}
	s := strings.ReplaceAll(string(buf), "</w>", " ")
	return strings.TrimSpace(strings.ToValidUTF8(s, "\uFFFD"))
}

// WithPad returns a tokenizer that shares t's vocabulary and cache and pads with id (SDXL's
// first tokenizer pads with <|endoftext|> 49407, its second with "!" 0).
func (t *Tokenizer) WithPad(id int32) *Tokenizer {
	return &Tokenizer{vocab: t.vocab, pad: id}
}

// TokenID returns the id of a vocabulary token as spelled in vocab.json ("cat</w>", "!",
// "<|endoftext|>") and whether it exists.
func (t *Tokenizer) TokenID(token string) (int32, bool) {
	id, ok := t.encoder[token]
	return id, ok
}

// BOS returns the id of <|startoftext|> (49406 in CLIP's vocabulary).
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the id of <|endoftext|> (49407 in CLIP's vocabulary).
func (t *Tokenizer) EOS() int32 { return t.eos }

// Pad returns the padding id: from special_tokens_map.json when Load found one, set by
// WithPad, or else EOS.
func (t *Tokenizer) Pad() int32 { return t.pad }

// MaxLength returns 77, the sequence length of CLIP's text encoders.
func (t *Tokenizer) MaxLength() int { return MaxLength }

// VocabSize returns the number of ids, one more than the largest id (49408 for CLIP).
func (t *Tokenizer) VocabSize() int { return len(t.decoder) }
