// Package wordpiece is BERT's WordPiece tokenizer, read from the usual vocab.txt (one token a
// line, the line number its id), as Grounding DINO's text encoder (bert-base-uncased) uses it:
// the basic tokenizer (clean the text, space out CJK characters, lower-case, strip accents,
// split off punctuation) followed by greedy longest-match-first WordPiece with "##"
// continuation pieces, [UNK] for a word it cannot cover or longer than 100 characters, and
// [CLS] ... [SEP] around the ids.
package wordpiece

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"

	"github.com/cocoflow/cocoflow/models/text"
)

// VocabFile is the vocabulary's file name in a model folder.
const VocabFile = "vocab.txt"

// Special tokens of BERT vocabularies.
const (
	UNK = "[UNK]"
	CLS = "[CLS]"
	SEP = "[SEP]"
	PAD = "[PAD]"
)

// MaxWordChars is the longest word (in characters) WordPiece splits; longer words are [UNK]
// (BERT's max_input_chars_per_word).
const MaxWordChars = 100

// MaxLength is BERT's number of position embeddings, [CLS] and [SEP] included.
const MaxLength = 512

// Tokenizer is an uncased BERT WordPiece tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	ids                map[string]int32
	tokens             []string // by id; "" for ids no line defines
	unk, cls, sep, pad int32
}

// Load reads vocab.txt at path, or the vocab.txt in the folder path. Errors name the file.
func Load(path string) (*Tokenizer, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, VocabFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("wordpiece vocabulary: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a vocabulary in vocab.txt format from r; name stands for it in errors. As
// Hugging Face's load_vocab does, a token listed twice keeps its last line. The vocabulary must
// hold [UNK], [CLS], [SEP] and [PAD].
func Parse(r io.Reader, name string) (*Tokenizer, error) {
	t := &Tokenizer{ids: map[string]int32{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		tok := strings.TrimRight(sc.Text(), "\r\n")
		t.ids[tok] = int32(len(t.tokens))
		t.tokens = append(t.tokens, tok)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("wordpiece vocabulary %s: %w", name, err)
	}
	var missing []string
	for _, s := range []struct {
		tok string
		id  *int32
	}{{UNK, &t.unk}, {CLS, &t.cls}, {SEP, &t.sep}, {PAD, &t.pad}} {
		id, ok := t.ids[s.tok]
		if !ok {
			missing = append(missing, s.tok)
		}
		*s.id = id
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("wordpiece vocabulary %s (%d tokens): no %s line; is it a BERT vocab.txt?", name, len(t.tokens), strings.Join(missing, ", "))
	}
	return t, nil
}

// Words returns the basic tokenizer's words of s: the text cleaned of control characters, CJK
// characters spaced out, split at white space, lower-cased, accents stripped and punctuation
// split off as words of their own.
func Words(s string) []string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == 0 || r == unicode.ReplacementChar || isControl(r):
		case isSpace(r):
			b.WriteByte(' ')
		case isCJK(r):
			b.WriteByte(' ')
			b.WriteRune(r)
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	var words []string
	for _, w := range strings.Fields(norm.NFC.String(b.String())) {
		w = stripAccents(strings.ToLower(w))
		start := 0
		for i, r := range w {
			if isPunct(r) {
				if i > start {
					words = append(words, w[start:i])
				}
				n := len(string(r))
				words = append(words, w[i:i+n])
				start = i + n
			}
		}
		if start < len(w) {
			words = append(words, w[start:])
		}
	}
	return words
}

// pieces splits one basic word into WordPiece ids, longest vocabulary match first, "##" before
// every piece but the first; [UNK] for the whole word when some rest has no match or the word
// is longer than MaxWordChars.
func (t *Tokenizer) pieces(word string) []int32 {
	runes := []rune(word)
	if len(runes) > MaxWordChars {
		return []int32{t.unk}
	}
	var out []int32
	for start := 0; start < len(runes); {
		end, id := len(runes), int32(-1)
		for ; end > start; end-- {
			sub := string(runes[start:end])
			if start > 0 {
				sub = "##" + sub
			}
			if v, ok := t.ids[sub]; ok {
				id = v
				break
			}
		}
		if id < 0 {
			return []int32{t.unk}
		}
		out = append(out, id)
		start = end
	}
	return out
}

// Encode tokenizes s: [CLS], the WordPiece ids of every basic word, [SEP]. Words are the basic
// words; WordOf maps each id to its word (-1 for [CLS] and [SEP]). It is neither padded nor
// truncated.
func (t *Tokenizer) Encode(s string) text.Encoding {
	enc := text.Encoding{Words: Words(s), IDs: []int32{t.cls}, WordOf: []int{-1}}
	for i, w := range enc.Words {
		for _, id := range t.pieces(w) {
			enc.IDs = append(enc.IDs, id)
			enc.WordOf = append(enc.WordOf, i)
		}
	}
	enc.IDs = append(enc.IDs, t.sep)
	enc.WordOf = append(enc.WordOf, -1)
	return enc
}

// TokenID returns the id of a vocabulary token, and whether there is one.
func (t *Tokenizer) TokenID(token string) (int32, bool) {
	id, ok := t.ids[token]
	return id, ok
}

// Token returns the token with id, or "" when there is none.
func (t *Tokenizer) Token(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// BOS returns the id of [CLS].
func (t *Tokenizer) BOS() int32 { return t.cls }

// EOS returns the id of [SEP].
func (t *Tokenizer) EOS() int32 { return t.sep }

// Pad returns the id of [PAD].
func (t *Tokenizer) Pad() int32 { return t.pad }

// UNK returns the id of [UNK].
func (t *Tokenizer) UNK() int32 { return t.unk }

// MaxLength returns BERT's sequence length, 512.
func (t *Tokenizer) MaxLength() int { return MaxLength }

// VocabSize returns the number of ids (lines of vocab.txt).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

var _ text.Tokenizer = (*Tokenizer)(nil)

// isSpace is BERT's white space: space, tab, newline, carriage return and category Zs.
func isSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.Zs, r)
}

// isControl is BERT's control character: category C* (Cc, Cf, Co, Cs and unassigned code
// points), except tab, newline and carriage return, which count as white space.
func isControl(r rune) bool {
	if r == '\t' || r == '\n' || r == '\r' {
		return false
	}
	return unicode.Is(unicode.C, r) || !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z)
}

// isPunct is BERT's punctuation: every non-alphanumeric ASCII symbol ("$", "^", "`" count
// although Unicode calls them symbols) and category P*.
func isPunct(r rune) bool {
	if r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126 {
		return true
	}
	return unicode.IsPunct(r)
}

// isCJK reports whether r is in the CJK Unified Ideographs blocks BERT spaces out (not Hangul,
// Hiragana or Katakana, which are written with spaces).
func isCJK(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B820 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}

// stripAccents decomposes s (NFD) and drops the combining marks (category Mn).
func stripAccents(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}
