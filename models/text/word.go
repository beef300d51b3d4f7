package text

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The special tokens of a word vocabulary, in the order of their ids 0..3.
const (
	PadToken = "<pad>"
	BOSToken = "<bos>"
	EOSToken = "<eos>"
	UnkToken = "<unk>"
)

var specials = [...]string{PadToken, BOSToken, EOSToken, UnkToken}

// punctuation is the set of characters SplitWords turns into tokens of their own.
const punctuation = ".,;:!?"

// SplitWords is the text cleanup of WordTokenizer: it lower-cases text, splits it on
// whitespace and makes each of the punctuation marks . , ; : ! ? a word of its own; apostrophes
// and other characters stay inside words. It returns nil for text without words.
func SplitWords(text string) []string {
	var words []string
	for _, field := range strings.FieldsFunc(strings.ToLower(text), unicode.IsSpace) {
		start := 0
		for i, r := range field {
			if !strings.ContainsRune(punctuation, r) {
				continue
			}
			if start < i {
				words = append(words, field[start:i])
			}
			words = append(words, field[i:i+utf8.RuneLen(r)])
			start = i + utf8.RuneLen(r)
		}
		if start < len(field) {
			words = append(words, field[start:])
		}
	}
	return words
}

// WordTokenizer is the word-level tokenizer of the tiny model family: one id per word of a
// small vocabulary, ids 0..3 are <pad>, <bos>, <eos>, <unk>. It is safe for concurrent use.
type WordTokenizer struct {
	words  []string
	index  map[string]int32
	maxLen int
}

// NewWordTokenizer returns a tokenizer whose vocabulary is the four specials followed by words
// (ids 4, 5, ...), with sequences of at most maxLen tokens. It returns an error naming the word
// when a word is empty, contains whitespace, is not lower-case, mixes punctuation with other
// characters (Encode could never produce it), or is repeated, and when maxLen is below 2.
func NewWordTokenizer(words []string, maxLen int) (*WordTokenizer, error) {
	if maxLen < 2 {
		return nil, fmt.Errorf("word tokenizer: max length %d: want at least 2 (BOS and EOS)", maxLen)
	}
	t := &WordTokenizer{maxLen: maxLen, index: make(map[string]int32, len(words)+len(specials))}
	for _, s := range specials {
		t.add(s)
	}
	for i, w := range words {
		if err := checkWord(w); err != nil {
			return nil, fmt.Errorf("word tokenizer: word %d: %w", i, err)
		}
		if id, dup := t.index[w]; dup {
			return nil, fmt.Errorf("word tokenizer: word %d %q: duplicate of id %d", i, w, id)
		}
		t.add(w)
	}
	return t, nil
}

// LoadWordTokenizer reads a vocabulary file (UTF-8, one token per line, the first four lines
// <pad>, <bos>, <eos>, <unk>) and returns a tokenizer with sequences of at most maxLen tokens.
// Errors name the file and line: empty file, missing or misplaced specials, empty, invalid or
// unreachable tokens, and duplicates (with the line of the first occurrence).
func LoadWordTokenizer(path string, maxLen int) (*WordTokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("word vocabulary: %w", err)
	}
	return parseWordVocab(path, data, maxLen)
}

func parseWordVocab(path string, data []byte, maxLen int) (*WordTokenizer, error) {
	if maxLen < 2 {
		return nil, fmt.Errorf("%s: max length %d: want at least 2 (BOS and EOS)", path, maxLen)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: empty file: want the specials %s on lines 1-4, then one word a line",
			path, strings.Join(specials[:], ", "))
	}
	lines := strings.Split(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1] // final newline
	}
	if len(lines) < len(specials) {
		return nil, fmt.Errorf("%s: missing specials: want %s on lines 1-4, file has %d lines",
			path, strings.Join(specials[:], ", "), len(lines))
	}
	t := &WordTokenizer{maxLen: maxLen, index: make(map[string]int32, len(lines))}
	for i, line := range lines {
		n := i + 1
		w := strings.TrimSuffix(line, "\r")
		if !utf8.ValidString(w) {
			return nil, fmt.Errorf("%s:%d: token is not valid UTF-8", path, n)
		}
		if i < len(specials) {
			if w != specials[i] {
				return nil, fmt.Errorf("%s:%d: missing special: want %q, got %q", path, n, specials[i], w)
			}
			t.add(w)
			continue
		}
		if err := checkWord(w); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		if id, dup := t.index[w]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate word %q (first on line %d)", path, n, w, id+1)
		}
		t.add(w)
	}
	return t, nil
}

func (t *WordTokenizer) add(w string) {
	t.index[w] = int32(len(t.words))
	t.words = append(t.words, w)
}

// checkWord reports why w can not be a vocabulary word, or nil.
func checkWord(w string) error {
	switch {
	case w == "":
		return errors.New("empty token")
	case !utf8.ValidString(w):
		return fmt.Errorf("token %q is not valid UTF-8", w)
	case strings.IndexFunc(w, unicode.IsSpace) >= 0:
		return fmt.Errorf("token %q contains whitespace", w)
	case strings.ToLower(w) != w:
		return fmt.Errorf("token %q is not lower-case (Encode lower-cases text, so it would never occur)", w)
	case len(w) > 1 && strings.ContainsAny(w, punctuation):
		return fmt.Errorf("token %q mixes punctuation %s with other characters (Encode splits them apart)", w, punctuation)
	}
	return nil
}

// Encode splits text with SplitWords and returns BOS, one id per word (<unk> for words outside
// the vocabulary, specials written in the text included), and EOS.
func (t *WordTokenizer) Encode(text string) Encoding {
	words := SplitWords(text)
	enc := Encoding{
		IDs:    make([]int32, 0, len(words)+2),
		Words:  words,
		WordOf: make([]int, 0, len(words)+2),
	}
	enc.IDs = append(enc.IDs, t.BOS())
	enc.WordOf = append(enc.WordOf, -1)
	for i, w := range words {
		id, ok := t.index[w]
		if !ok || int(id) < len(specials) {
			id = t.Unk()
		}
		enc.IDs = append(enc.IDs, id)
		enc.WordOf = append(enc.WordOf, i)
	}
	enc.IDs = append(enc.IDs, t.EOS())
	enc.WordOf = append(enc.WordOf, -1)
	return enc
}

// Decode returns the words of ids joined by spaces, with punctuation attached to the word before
// it; <pad>, <bos> and <eos> are left out and ids outside the vocabulary read as <unk>.
func (t *WordTokenizer) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		if id == t.Pad() || id == t.BOS() || id == t.EOS() {
			continue
		}
		w := UnkToken
		if id >= 0 && int(id) < len(t.words) {
			w = t.words[id]
		}
		if b.Len() > 0 && !(len(w) == 1 && strings.Contains(punctuation, w)) {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	return b.String()
}

// WriteVocab writes the vocabulary to path, one token per line, specials first, in the format
// LoadWordTokenizer reads. It writes a temporary file beside path and renames it into place, so
// path is never left half-written; it returns the first I/O error, naming path.
func (t *WordTokenizer) WriteVocab(path string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write vocabulary %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.WriteString(strings.Join(t.words, "\n") + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write vocabulary %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write vocabulary %s: %w", path, err)
	}
	return nil
}

// ID returns the id of word (compared exactly, no cleanup) and whether it is in the vocabulary.
func (t *WordTokenizer) ID(word string) (int32, bool) {
	id, ok := t.index[word]
	return id, ok
}

// Vocab returns a copy of the vocabulary in id order, specials first.
func (t *WordTokenizer) Vocab() []string { return append([]string(nil), t.words...) }

// BOS returns the id of <bos> (1).
func (t *WordTokenizer) BOS() int32 { return 1 }

// EOS returns the id of <eos> (2).
func (t *WordTokenizer) EOS() int32 { return 2 }

// Pad returns the id of <pad> (0).
func (t *WordTokenizer) Pad() int32 { return 0 }

// Unk returns the id of <unk> (3), which Encode gives words outside the vocabulary.
func (t *WordTokenizer) Unk() int32 { return 3 }

// MaxLength returns the sequence length the tokenizer was made with, BOS and EOS included.
func (t *WordTokenizer) MaxLength() int { return t.maxLen }

// VocabSize returns the number of words, the four specials included.
func (t *WordTokenizer) VocabSize() int { return len(t.words) }
