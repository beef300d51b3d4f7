// Package captioner writes the captions of training images: at least two different
// descriptions per image, each naming the image's concept word (man, woman, boy, girl, person,
// cat, dog) and saying where that word sits, as CoCoIns' triplets need (paper §3.3,
// "Constructing Triplets": two captions P1 ≠ P2 of one image with concept positions i and j).
//
// Two captioners share one interface: Template writes deterministic attribute captions for the
// tiny world (synthfaces), CelebA and attribute-less datasets such as AFHQ; OpenAI asks a
// vision-language model (LLaVA-NeXT served by vLLM, llama.cpp or Ollama) through the
// OpenAI-compatible chat completions API.
package captioner

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Request is one image to caption.
type Request struct {
	ID         string            // image id, for error messages
	Image      []byte            // PNG or JPEG bytes (the template captioner does not read them)
	Class      string            // concept word the caption must contain (may be "" for a VLM)
	Scene      string            // synthetic scene name or ""
	Attributes map[string]string // dataset attributes: synthfaces keys or the 40 CelebA names
	Seed       uint64            // per-image seed: the same seed gives the same template captions
	N          int               // captions wanted; 0 means the captioner's default
}

// Caption is one description of an image with the position of its concept word.
type Caption struct {
	Text         string
	Concept      string // the concept word found in Text, spelled as the candidate (lower-case)
	ConceptStart int    // byte offset of the concept word in Text
}

// Captioner describes images. Implementations are safe for concurrent use.
type Captioner interface {
	// Caption returns the captions of r, or an error naming r.ID.
	Caption(ctx context.Context, r Request) ([]Caption, error)
}

// FindConcept looks for the candidates as whole words of text, ignoring case, and returns the
// one that occurs first in text (where two candidates start at the same offset, the earlier
// candidate wins), spelled as in candidates, with its byte offset in text. A whole word is
// bounded by the text's ends or by characters that are neither letters nor digits, so "man"
// matches "a man's hat" but neither "woman" nor "manhood". It returns ok == false when no
// candidate occurs; empty candidates never match.
func FindConcept(text string, candidates []string) (word string, start int, ok bool) {
	prevWord := false // whether the rune before i is a word character
	for i, r := range text {
		if !prevWord {
			for _, c := range candidates {
				if c != "" && matchAt(text, i, c) {
					return c, i, true
				}
			}
		}
		prevWord = isWordRune(r)
	}
	return "", -1, false
}

// matchAt reports whether candidate c occurs at byte offset i of text, ignoring case, and ends
// at a word boundary.
func matchAt(text string, i int, c string) bool {
	rest := text[i:]
	n := 0 // bytes of rest consumed
	for _, cr := range c {
		if n >= len(rest) {
			return false
		}
		tr, size := utf8.DecodeRuneInString(rest[n:])
		if tr != cr && unicode.ToLower(tr) != unicode.ToLower(cr) {
			return false
		}
		n += size
	}
	if n == len(rest) {
		return true
	}
	next, _ := utf8.DecodeRuneInString(rest[n:])
	return !isWordRune(next)
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// cleanText trims s, collapses runs of whitespace to one space and strips quotes that enclose
// the whole text ("…", '…', “…”, ‘…’, `…`), repeatedly.
func cleanText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	for {
		stripped := false
		for _, q := range [][2]string{{`"`, `"`}, {`'`, `'`}, {"“", "”"}, {"‘", "’"}, {"`", "`"}, {"«", "»"}} {
			if len(s) >= len(q[0])+len(q[1]) && strings.HasPrefix(s, q[0]) && strings.HasSuffix(s, q[1]) {
				s = strings.TrimSpace(s[len(q[0]) : len(s)-len(q[1])])
				stripped = true
				break
			}
		}
		if !stripped {
			return s
		}
	}
}
