// Package prompts holds the evaluation prompt sets of the paper's §4.2 (Portraits and Scenes),
// their analogs for the tiny world, and small two-subject sets, as embedded TSV files; it also
// reads and writes user prompt sets in the same format.
//
// A prompt set file is UTF-8 TSV with the header "subject\tsetting\tprompt" and one prompt a
// row. The subject column is the concept word the pipeline instantiates ("man"); a prompt with
// several subjects lists them in order of appearance joined by "+" ("man+woman"). The setting
// column says what kind of situation the prompt describes: "portrait" for the portrait
// templates, "daily", "professional", "cultural" or "outdoor" for scenes.
//
// The embedded files in data/ are written by gen.go; regenerate them with
//
//	go test ./datasets/prompts -run TestDataUpToDate -update
package prompts

import (
	"bufio"
	"bytes"
	"embed"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode"
)

// Prompt is one evaluation prompt.
type Prompt struct {
	Subject string // concept word(s) of the prompt, "+"-joined in order of appearance
	Setting string // "portrait", "daily", "professional", "cultural", "outdoor", or a user's label
	Text    string // the prompt itself
}

// Concepts returns the concept words of p: Subject split at "+".
func (p Prompt) Concepts() []string { return strings.Split(p.Subject, "+") }

// Subjects are the subject (concept) words of the human prompt sets, in the paper's order.
var Subjects = []string{"man", "woman", "boy", "girl", "person"}

// Settings are the four situation kinds of the Scenes sets, in the paper's order: daily life,
// professional environments, cultural or recreational occasions, outdoor activities.
var Settings = []string{"daily", "professional", "cultural", "outdoor"}

// SettingPortrait is the setting of every prompt of the portrait sets.
const SettingPortrait = "portrait"

// Header is the first line of a prompt set file, without its newline.
const Header = "subject\tsetting\tprompt"

// names are the embedded sets in the order Names returns them.
var names = []string{"portraits", "scenes", "tiny-portraits", "tiny-scenes", "multi", "tiny-multi"}

//go:embed data/*.tsv
var data embed.FS

// Names returns the names of the embedded prompt sets, as a fresh slice: portraits, scenes
// (the paper's sets, 1000 prompts each), tiny-portraits, tiny-scenes (their tiny-world analogs
// in the tiny vocabulary), multi and tiny-multi (about ten two-subject prompts each).
func Names() []string { return append([]string(nil), names...) }

// Load returns the embedded prompt set name (one of Names) as a fresh slice. It returns an error
// for an unknown name.
func Load(name string) ([]Prompt, error) {
	known := false
	for _, n := range names {
		known = known || n == name
	}
	if !known {
		return nil, fmt.Errorf("prompts: unknown set %q: want one of %s", name, strings.Join(names, ", "))
	}
	file := "data/" + name + ".tsv"
	b, err := data.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("prompts: set %q: %w", name, err)
	}
	return parse(file, b)
}

// ReadFile reads a prompt set file in the format of the embedded sets (see the package comment).
// Errors name the file and line: a missing or wrong header, a row without exactly three
// tab-separated fields, an empty subject, concept word or prompt, a concept word that is not
// one lower-case word, a concept word that does not occur as a whole word in its prompt, and a
// file without prompts.
func ReadFile(path string) ([]Prompt, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("prompts: %w", err)
	}
	return parse(path, b)
}

// parse reads the TSV text b of the file named name.
func parse(name string, b []byte) ([]Prompt, error) {
	b = bytes.TrimPrefix(b, []byte("\uFEFF"))
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	var out []Prompt
	line := 0
	for sc.Scan() {
		line++
		row := strings.TrimSuffix(sc.Text(), "\r")
		if line == 1 {
			if row != Header {
				return nil, fmt.Errorf("%s:1: want header %q, got %q", name, Header, row)
			}
			continue
		}
		if strings.TrimSpace(row) == "" {
			continue
		}
		p, err := parseRow(row)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if line == 0 {
		return nil, fmt.Errorf("%s: empty file: want header %q and one prompt a row", name, Header)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no prompts after the header", name)
	}
	return out, nil
}

// parseRow reads and checks one data row.
func parseRow(row string) (Prompt, error) {
	f := strings.Split(row, "\t")
	if len(f) != 3 {
		return Prompt{}, fmt.Errorf("want 3 tab-separated fields (subject, setting, prompt), got %d", len(f))
	}
	p := Prompt{Subject: strings.TrimSpace(f[0]), Setting: strings.TrimSpace(f[1]), Text: strings.TrimSpace(f[2])}
	if p.Subject == "" {
		return Prompt{}, fmt.Errorf("subject: want a concept word (man, woman, ...), got an empty field")
	}
	if p.Text == "" {
		return Prompt{}, fmt.Errorf("prompt: want text, got an empty field")
	}
	for i, c := range p.Concepts() {
		if err := checkConcept(c); err != nil {
			return Prompt{}, fmt.Errorf("subject %q, concept %d: %w", p.Subject, i+1, err)
		}
		if countWord(p.Text, c) == 0 {
			return Prompt{}, fmt.Errorf("subject %q: concept %q does not occur as a word in prompt %q", p.Subject, c, p.Text)
		}
	}
	return p, nil
}

// checkConcept reports why c can not be a concept word, or nil.
func checkConcept(c string) error {
	switch {
	case c == "":
		return fmt.Errorf("want a word, got an empty one (stray \"+\"?)")
	case strings.ToLower(c) != c:
		return fmt.Errorf("want a lower-case word, got %q", c)
	case strings.IndexFunc(c, func(r rune) bool { return !isWordRune(r) }) >= 0:
		return fmt.Errorf("want one word of letters and digits, got %q", c)
	}
	return nil
}

// Write writes ps to w as a prompt set file: the header, then one row per prompt. It returns an
// error naming the row (1-based, header excluded) when a field contains a tab or a line break
// or the subject or prompt is empty, and any error of w.
func Write(w io.Writer, ps []Prompt) error {
	var b bytes.Buffer
	b.WriteString(Header + "\n")
	for i, p := range ps {
		for _, f := range [...]struct{ name, v string }{{"subject", p.Subject}, {"setting", p.Setting}, {"prompt", p.Text}} {
			if strings.ContainsAny(f.v, "\t\r\n") {
				return fmt.Errorf("prompts: row %d: %s %q contains a tab or line break", i+1, f.name, f.v)
			}
		}
		if p.Subject == "" || p.Text == "" {
			return fmt.Errorf("prompts: row %d: want a subject and a prompt, got %q and %q", i+1, p.Subject, p.Text)
		}
		b.WriteString(p.Subject + "\t" + p.Setting + "\t" + p.Text + "\n")
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("prompts: write: %w", err)
	}
	return nil
}

// isWordRune reports whether r is part of a word for countWord: a letter or a digit.
func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// countWord returns how often word occurs in text as a whole word, ignoring case; words are
// maximal runs of letters and digits, so "woman's" and "man-made" contain "woman" and "man".
func countWord(text, word string) int {
	n := 0
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !isWordRune(r) }) {
		if w == word {
			n++
		}
	}
	return n
}
