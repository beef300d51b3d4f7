package text

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSplitWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"A man is looking at the camera.", []string{"a", "man", "is", "looking", "at", "the", "camera", "."}},
		{"  Don't\tstop!!  ", []string{"don't", "stop", "!", "!"}},
		{"red-haired girl;smiling?yes:no,", []string{"red-haired", "girl", ";", "smiling", "?", "yes", ":", "no", ","}},
		{"CAFÉ", []string{"café"}},
		{" \n ", nil},
	}
	for _, tc := range tests {
		if got := SplitWords(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("SplitWords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWordTokenizerEncode(t *testing.T) {
	tok, err := NewWordTokenizer([]string{"a", "man", "woman", "is", "smiling", ".", "don't"}, 8)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in     string
		ids    []int32
		wordOf []int
	}{
		{"A man is smiling.", []int32{1, 4, 5, 7, 8, 9, 2}, []int{-1, 0, 1, 2, 3, 4, -1}},
		{"a DOG, don't", []int32{1, 4, 3, 3, 10, 2}, []int{-1, 0, 1, 2, 3, -1}},
		{"<eos> <pad>", []int32{1, 3, 3, 2}, []int{-1, 0, 1, -1}},
		{"", []int32{1, 2}, []int{-1, -1}},
	}
	for _, tc := range tests {
		enc := tok.Encode(tc.in)
		if !reflect.DeepEqual(enc.IDs, tc.ids) || !reflect.DeepEqual(enc.WordOf, tc.wordOf) {
			t.Errorf("Encode(%q) = %v %v, want %v %v", tc.in, enc.IDs, enc.WordOf, tc.ids, tc.wordOf)
		}
	}
	if got := ConceptIndex(tok.Encode("A woman is smiling."), "woman"); got != 2 {
		t.Errorf("ConceptIndex(woman) = %d, want 2", got)
	}
	if tok.VocabSize() != 11 || tok.MaxLength() != 8 || tok.BOS() != 1 || tok.EOS() != 2 || tok.Pad() != 0 {
		t.Errorf("VocabSize %d MaxLength %d BOS %d EOS %d Pad %d; want 11 8 1 2 0",
			tok.VocabSize(), tok.MaxLength(), tok.BOS(), tok.EOS(), tok.Pad())
	}
	if got, want := tok.Decode([]int32{1, 4, 6, 7, 8, 9, 42, 2, 0, 0}), "a woman is smiling. <unk>"; got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
}

func TestNewWordTokenizerErrors(t *testing.T) {
	tests := []struct {
		words  []string
		maxLen int
		want   string
	}{
		{[]string{"a", "b", "a"}, 8, `word 2 "a": duplicate of id 4`},
		{[]string{"<unk>"}, 8, `word 0 "<unk>": duplicate of id 3`},
		{[]string{"a", ""}, 8, "word 1: empty token"},
		{[]string{"Man"}, 8, "not lower-case"},
		{[]string{"two words"}, 8, "contains whitespace"},
		{[]string{"man."}, 8, "mixes punctuation"},
		{[]string{"a"}, 1, "want at least 2"},
	}
	for _, tc := range tests {
		_, err := NewWordTokenizer(tc.words, tc.maxLen)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewWordTokenizer(%q, %d) error = %v, want it to contain %q", tc.words, tc.maxLen, err, tc.want)
		}
	}
}

func TestWordVocabRoundTrip(t *testing.T) {
	tok, err := NewWordTokenizer([]string{"a", "cat", "café", ",", "it's"}, 16)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vocab.txt")
	if err := tok.WriteVocab(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := "<pad>\n<bos>\n<eos>\n<unk>\na\ncat\ncafé\n,\nit's\n"; string(data) != want {
		t.Errorf("vocabulary file = %q, want %q", data, want)
	}
	back, err := LoadWordTokenizer(path, 16)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Vocab(), tok.Vocab()) {
		t.Errorf("reloaded vocabulary %q, want %q", back.Vocab(), tok.Vocab())
	}
	text := "A café, it's a CAT"
	if got, want := back.Encode(text).IDs, tok.Encode(text).IDs; !reflect.DeepEqual(got, want) {
		t.Errorf("reloaded Encode = %v, want %v", got, want)
	}
	if id, ok := back.ID("café"); !ok || id != 6 {
		t.Errorf("ID(café) = %d, %v; want 6, true", id, ok)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("WriteVocab left %d files in its folder, want 1", len(entries))
	}
}

func TestLoadWordTokenizerErrors(t *testing.T) {
	const head = "<pad>\n<bos>\n<eos>\n<unk>\n"
	tests := []struct {
		name, data, want string
	}{
		{"empty", "", "v.txt: empty file"},
		{"blank", "\n\n", "v.txt: empty file"},
		{"short", "<pad>\n<bos>\n", "v.txt: missing specials"},
		{"order", "<pad>\n<eos>\n<bos>\n<unk>\na\n", `v.txt:2: missing special: want "<bos>", got "<eos>"`},
		{"duplicate", head + "a\nman\na\n", `v.txt:7: duplicate word "a" (first on line 5)`},
		{"special again", head + "a\n<pad>\n", `v.txt:6: duplicate word "<pad>" (first on line 1)`},
		{"empty line", head + "a\n\nb\n", "v.txt:6: empty token"},
		{"upper", head + "Man\n", "v.txt:5: token \"Man\" is not lower-case"},
		{"bad utf8", head + "a\xff\n", "v.txt:5: token is not valid UTF-8"},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "v.txt")
			if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadWordTokenizer(path, 8)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := LoadWordTokenizer(filepath.Join(dir, "absent.txt"), 8); err == nil {
		t.Error("LoadWordTokenizer of a missing file: want an error")
	}
	crlf := filepath.Join(dir, "crlf.txt")
	if err := os.WriteFile(crlf, []byte("\uFEFF<pad>\r\n<bos>\r\n<eos>\r\n<unk>\r\nman\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := LoadWordTokenizer(crlf, 8)
	if err != nil {
		t.Fatalf("CRLF vocabulary with BOM: %v", err)
	}
	if id, ok := tok.ID("man"); !ok || id != 4 {
		t.Errorf("CRLF vocabulary: ID(man) = %d, %v; want 4, true", id, ok)
	}
}

func TestWriteJSONLines(t *testing.T) {
	tok, err := NewWordTokenizer([]string{"a", "man", "&", "is", "here"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		maxLen int
		want   string
	}{
		{0, `{"text":"a man & a man is here","ids":[1,4,5,6,4,5,7,8,2]}` + "\n" + `{"text":"","ids":[1,2]}` + "\n"},
		{4, `{"text":"a man & a man is here","ids":[1,4,5,2]}` + "\n" + `{"text":"","ids":[1,2]}` + "\n"},
	}
	for _, tc := range tests {
		var buf bytes.Buffer
		if err := WriteJSONLines(&buf, tok, []string{"a man & a man is here", ""}, tc.maxLen); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tc.want {
			t.Errorf("maxLen %d: got\n%s\nwant\n%s", tc.maxLen, buf.String(), tc.want)
		}
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

func TestWriteJSONLinesError(t *testing.T) {
	tok, err := NewWordTokenizer([]string{"a"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	err = WriteJSONLines(failWriter{}, tok, []string{"a"}, 0)
	if err == nil || !strings.Contains(err.Error(), "text 0") {
		t.Errorf("error = %v, want one naming text 0", err)
	}
}
