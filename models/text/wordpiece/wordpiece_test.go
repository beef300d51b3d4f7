package wordpiece

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func load(t *testing.T) *Tokenizer {
	t.Helper()
	tok, err := Load("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// The ids below are worked out by hand from testdata/vocab.txt (id = line number - 1):
// 1 [UNK], 2 [CLS], 3 [SEP], 5 ".", 6 ",", 7 "!", 9 "'", 10 a, 11 the, 12 un, 13 ##aff,
// 14 ##able, 15 cafe, 16 resume, 17 hello, 18 world, 19 man, 20 face, 23 is, 24 look, 25 at,
// 26 camera, 27 直, 28 ##ing, 29 "-", 30 naive, 31 e, 32 ##l, 33 ##e.
func TestEncodeGolden(t *testing.T) {
	tok := load(t)
	es := func(n int) []int32 { // e followed by n-1 ##e
		out := []int32{31}
		for range n - 1 {
			out = append(out, 33)
		}
		return out
	}
	cases := []struct {
		name, in string
		want     []int32
	}{
		{"mixed case, accent, repeated punctuation", "UNaffable Café!!", []int32{12, 13, 14, 15, 7, 7}},
		{"multiple spaces, tab, punctuation runs", "  Hello,\tworld   ...  ", []int32{17, 6, 18, 5, 5, 5}},
		{"accents stripped", "naïve résumé", []int32{30, 16}},
		{"apostrophe split, word not in vocab", "a man's face", []int32{10, 19, 9, 1, 20}},
		{"continuation piece, upper case", "The man is LOOKING at the camera.", []int32{11, 19, 23, 24, 28, 25, 11, 26, 5}},
		{"CJK spaced out, unknown CJK", "直face 人", []int32{27, 20, 1}},
		{"100 characters split", strings.Repeat("e", 100), es(100)},
		{"101 characters unknown", strings.Repeat("e", 101), []int32{1}},
		{"partial match is unknown as a whole", "unaffablex", []int32{1}},
		{"control and format characters dropped", "hel\x00lo\u200b", []int32{17}},
		{"unicode dash is punctuation", "hello—world", []int32{17, 1, 18}},
		{"ascii hyphen", "Hello-World", []int32{17, 29, 18}},
		{"no-break space separates", "hello\u00a0world", []int32{17, 18}},
		{"pieces", "EL", []int32{31, 32}},
		{"empty", "   ", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := append(append([]int32{2}, c.want...), 3)
			enc := tok.Encode(c.in)
			if !reflect.DeepEqual(enc.IDs, want) {
				t.Errorf("Encode(%q) = %v, want %v", c.in, enc.IDs, want)
			}
			if len(enc.WordOf) != len(enc.IDs) || enc.WordOf[0] != -1 || enc.WordOf[len(enc.WordOf)-1] != -1 {
				t.Errorf("WordOf = %v for %d ids", enc.WordOf, len(enc.IDs))
			}
		})
	}
}

func TestWords(t *testing.T) {
	got := Words("  A man's  Café, LOOKING!")
	want := []string{"a", "man", "'", "s", "cafe", ",", "looking", "!"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Words = %q, want %q", got, want)
	}
	enc := load(t).Encode("the unaffable man")
	if w := []int{-1, 0, 1, 1, 1, 2, -1}; !reflect.DeepEqual(enc.WordOf, w) {
		t.Errorf("WordOf = %v, want %v", enc.WordOf, w)
	}
}

func TestSpecials(t *testing.T) {
	tok := load(t)
	if tok.BOS() != 2 || tok.EOS() != 3 || tok.Pad() != 0 || tok.UNK() != 1 || tok.VocabSize() != 34 {
		t.Errorf("specials %d %d %d %d, size %d", tok.BOS(), tok.EOS(), tok.Pad(), tok.UNK(), tok.VocabSize())
	}
	if id, ok := tok.TokenID("."); !ok || id != 5 || tok.Token(28) != "##ing" || tok.Token(99) != "" {
		t.Errorf("TokenID(.) = %d %v, Token(28) = %q", id, ok, tok.Token(28))
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), filepath.Join(dir, VocabFile)) {
		t.Errorf("missing vocab: err = %v, want it to name the file", err)
	}
	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("[PAD]\n[UNK]\nhello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "[CLS], [SEP]") {
		t.Errorf("vocab without [CLS] and [SEP]: err = %v", err)
	}
}
