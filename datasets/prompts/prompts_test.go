package prompts

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestNamesAndLoad(t *testing.T) {
	want := []string{"portraits", "scenes", "tiny-portraits", "tiny-scenes", "multi", "tiny-multi"}
	if got := Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	Names()[0] = "changed"
	if Names()[0] != "portraits" {
		t.Fatal("Names returned the package's own slice")
	}
	for _, name := range want {
		ps, err := Load(name)
		if err != nil {
			t.Fatalf("Load(%q): %v", name, err)
		}
		if len(ps) == 0 {
			t.Fatalf("Load(%q): no prompts", name)
		}
		ps[0].Text = "changed"
		again, _ := Load(name)
		if again[0].Text == "changed" {
			t.Fatalf("Load(%q) returned shared data", name)
		}
	}
	_, err := Load("portrait")
	if err == nil || !strings.Contains(err.Error(), `unknown set "portrait"`) || !strings.Contains(err.Error(), "tiny-scenes") {
		t.Fatalf("Load(portrait) error = %v, want unknown set listing the names", err)
	}
}

func TestConcepts(t *testing.T) {
	for _, tc := range []struct {
		subject string
		want    []string
	}{
		{"man", []string{"man"}},
		{"man+woman", []string{"man", "woman"}},
	} {
		if got := (Prompt{Subject: tc.subject}).Concepts(); !slices.Equal(got, tc.want) {
			t.Errorf("Concepts(%q) = %v, want %v", tc.subject, got, tc.want)
		}
	}
}

func TestCountWord(t *testing.T) {
	for _, tc := range []struct {
		text, word string
		want       int
	}{
		{"A man is looking at the camera.", "man", 1},
		{"A woman reads.", "man", 0},
		{"The Man and the man.", "man", 2},
		{"A person's hat, personal items.", "person", 1},
		{"a manager in a man-made cave", "man", 1},
	} {
		if got := countWord(tc.text, tc.word); got != tc.want {
			t.Errorf("countWord(%q, %q) = %d, want %d", tc.text, tc.word, got, tc.want)
		}
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
		want    []Prompt
		wantErr string // substring of the error; "" for success
	}{
		{"ok", "subject\tsetting\tprompt\nman\tdaily\tA man reads.\nman+girl\t\tA man and a girl.\n",
			[]Prompt{{"man", "daily", "A man reads."}, {"man+girl", "", "A man and a girl."}}, ""},
		{"crlf-bom-blank", "\uFEFFsubject\tsetting\tprompt\r\ncat\tpets\tA cat sleeps.\r\n\r\n",
			[]Prompt{{"cat", "pets", "A cat sleeps."}}, ""},
		{"no-final-newline", "subject\tsetting\tprompt\nwoman\tx\tThe woman sings.",
			[]Prompt{{"woman", "x", "The woman sings."}}, ""},
		{"empty", "", nil, "empty.tsv: empty file"},
		{"header-only", "subject\tsetting\tprompt\n", nil, "header-only.tsv: no prompts"},
		{"bad-header", "subject,setting,prompt\nman\td\tA man.\n", nil, `bad-header.tsv:1: want header`},
		{"two-fields", "subject\tsetting\tprompt\nman\tdaily\tA man.\nman\tA man.\n", nil,
			"two-fields.tsv:3: want 3 tab-separated fields (subject, setting, prompt), got 2"},
		{"four-fields", "subject\tsetting\tprompt\nman\tdaily\tA man.\tx\n", nil, "four-fields.tsv:2: want 3 tab-separated fields"},
		{"empty-subject", "subject\tsetting\tprompt\n\tdaily\tA man.\n", nil, "empty-subject.tsv:2: subject"},
		{"empty-prompt", "subject\tsetting\tprompt\nman\tdaily\t \n", nil, "empty-prompt.tsv:2: prompt"},
		{"missing-concept", "subject\tsetting\tprompt\nman\tdaily\tA woman reads.\n", nil,
			`missing-concept.tsv:2: subject "man": concept "man" does not occur`},
		{"second-concept-missing", "subject\tsetting\tprompt\nman+boy\tdaily\tA man reads.\n", nil,
			`second-concept-missing.tsv:2: subject "man+boy": concept "boy" does not occur`},
		{"stray-plus", "subject\tsetting\tprompt\nman+\tdaily\tA man reads.\n", nil, "stray-plus.tsv:2: subject \"man+\", concept 2"},
		{"upper-case", "subject\tsetting\tprompt\nMan\tdaily\tA Man reads.\n", nil, "upper-case.tsv:2: subject \"Man\", concept 1: want a lower-case word"},
		{"two-words", "subject\tsetting\tprompt\nold man\tdaily\tAn old man reads.\n", nil, "two-words.tsv:2: subject \"old man\", concept 1: want one word"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".tsv")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadFile(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	if _, err := ReadFile(filepath.Join(dir, "absent.tsv")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("absent file: error %v, want os.ErrNotExist", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWrite(t *testing.T) {
	ps := []Prompt{{"man", "daily", "A man reads."}, {"man+woman", "", "A man and a woman."}}
	var b bytes.Buffer
	if err := Write(&b, ps); err != nil {
		t.Fatal(err)
	}
	if want := "subject\tsetting\tprompt\nman\tdaily\tA man reads.\nman+woman\t\tA man and a woman.\n"; b.String() != want {
		t.Fatalf("Write wrote %q, want %q", b.String(), want)
	}
	path := filepath.Join(t.TempDir(), "p.tsv")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := ReadFile(path)
	if err != nil || !reflect.DeepEqual(back, ps) {
		t.Fatalf("round trip: %+v, %v; want %+v", back, err, ps)
	}
	for _, tc := range []struct {
		p       Prompt
		wantErr string
	}{
		{Prompt{"man", "a\tb", "A man."}, "row 1: setting"},
		{Prompt{"man", "", "A man.\nA man."}, "row 1: prompt"},
		{Prompt{"", "", "A man."}, "row 1: want a subject and a prompt"},
	} {
		if err := Write(&bytes.Buffer{}, []Prompt{tc.p}); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("Write(%+v) error = %v, want %q", tc.p, err, tc.wantErr)
		}
	}
	if err := Write(failWriter{}, ps); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Write to a failing writer: %v, want the writer's error", err)
	}
}
