package clip

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/cocoflow/cocoflow/models/text"
)

// sharedDir is where the CLIP vocabulary and golden ids live, relative to this package.
const sharedDir = "../../../../shared/data/clip"

type golden struct {
	Text string  `json:"text"`
	IDs  []int32 `json:"ids"`
}

// sharedData returns the path of OpenAI's vocabulary and the golden ids, or skips the test when
// the shared data folder is absent.
func sharedData(tb testing.TB) (string, []golden) {
	tb.Helper()
	gz := filepath.Join(sharedDir, OpenAIVocabFile)
	goldenPath := filepath.Join(sharedDir, "golden-ids.jsonl")
	if !isFile(gz) || !isFile(goldenPath) {
		tb.Skipf("CLIP data absent: want %s and golden-ids.jsonl in %s (/work/shared/data/clip when the repo is /work/main)",
			OpenAIVocabFile, sharedDir)
	}
	f, err := os.Open(goldenPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []golden
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var g golden
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			tb.Fatalf("%s:%d: %v", goldenPath, n, err)
		}
		out = append(out, g)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) == 0 {
		tb.Fatalf("%s: no golden lines", goldenPath)
	}
	return gz, out
}

func checkGolden(t *testing.T, tok *Tokenizer, gold []golden) {
	t.Helper()
	for _, g := range gold {
		if got := tok.Encode(g.Text).IDs; !reflect.DeepEqual(got, g.IDs) {
			t.Errorf("Encode(%q)\n got %v\nwant %v", g.Text, got, g.IDs)
		}
	}
}

func TestGoldenOpenAI(t *testing.T) {
	gz, gold := sharedData(t)
	for _, path := range []string{gz, sharedDir} {
		tok, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, tok, gold)
		if tok.BOS() != 49406 || tok.EOS() != 49407 || tok.Pad() != 49407 || tok.VocabSize() != 49408 || tok.MaxLength() != 77 {
			t.Errorf("%s: BOS %d EOS %d Pad %d VocabSize %d MaxLength %d; want 49406 49407 49407 49408 77",
				path, tok.BOS(), tok.EOS(), tok.Pad(), tok.VocabSize(), tok.MaxLength())
		}
	}
}

// testSymbol is the byte-to-character table written independently of byteSymbols: printable
// Latin-1 characters other than the space stand for themselves, the rest get 256, 257, ...
func testSymbols() (order []rune) {
	var rest []int
	for b := 0; b < 256; b++ {
		if unicode.IsPrint(rune(b)) && b != ' ' {
			order = append(order, rune(b))
		} else {
			rest = append(rest, b)
		}
	}
	for n := range rest {
		order = append(order, rune(256+n))
	}
	return order
}

// hfVocab builds a Hugging Face vocab.json object from merges as OpenAI's vocabulary is built.
func hfVocab(merges [][2]string) map[string]int {
	var tokens []string
	syms := testSymbols()
	for _, r := range syms {
		tokens = append(tokens, string(r))
	}
	for _, r := range syms {
		tokens = append(tokens, string(r)+"</w>")
	}
	for _, m := range merges {
		tokens = append(tokens, m[0]+m[1])
	}
	tokens = append(tokens, "<|startoftext|>", "<|endoftext|>")
	vocab := make(map[string]int, len(tokens))
	for id, tok := range tokens {
		vocab[tok] = id
	}
	return vocab
}

// writeHF writes vocab.json and merges.txt for merges into dir.
func writeHF(t testing.TB, dir string, merges [][2]string) {
	t.Helper()
	data, err := json.Marshal(hfVocab(merges))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, VocabFile), string(data))
	var b strings.Builder
	b.WriteString("#version: 0.2\n")
	for _, m := range merges {
		b.WriteString(m[0] + " " + m[1] + "\n")
	}
	writeFile(t, filepath.Join(dir, MergesFile), b.String())
}

// readGzMerges returns the first n merges of OpenAI's file.
func readGzMerges(t testing.TB, path string, n int) [][2]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Scan() // header
	var out [][2]string
	for len(out) < n && sc.Scan() {
		f := strings.Fields(sc.Text())
		out = append(out, [2]string{f[0], f[1]})
	}
	return out
}

func writeFile(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeGz(t testing.TB, path string, lines []string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	if _, err := zw.Write([]byte(strings.Join(lines, "\n") + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGoldenHuggingFace(t *testing.T) {
	gz, gold := sharedData(t)
	dir := t.TempDir()
	writeHF(t, dir, readGzMerges(t, gz, openAIMerges))
	paths := []string{dir, filepath.Join(dir, VocabFile), filepath.Join(dir, MergesFile)}
	for _, path := range paths {
		tok, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		checkGolden(t, tok, gold)
		if tok.Pad() != tok.EOS() || tok.VocabSize() != 49408 {
			t.Errorf("%s: Pad %d VocabSize %d; want EOS 49407 and 49408", path, tok.Pad(), tok.VocabSize())
		}
	}
	// tokenizer_2 of SDXL pads with "!", tokenizer with <|endoftext|> as an object.
	for _, tc := range []struct {
		specials string
		pad      int32
	}{
		{`{"pad_token": "!", "eos_token": "<|endoftext|>"}`, 0},
		{`{"pad_token": {"content": "<|endoftext|>", "lstrip": false}}`, 49407},
		{`{"bos_token": "<|startoftext|>"}`, 49407},
	} {
		writeFile(t, filepath.Join(dir, SpecialsFile), tc.specials)
		tok, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Pad() != tc.pad {
			t.Errorf("special_tokens_map %s: Pad %d, want %d", tc.specials, tok.Pad(), tc.pad)
		}
	}
}

func TestEncodeWords(t *testing.T) {
	gz, _ := sharedData(t)
	tok, err := Load(gz)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		text, concept string
		words         []string
		index         int
	}{
		{"The woman, smiling, holds a cup.", "woman",
			[]string{"the", "woman", ",", "smiling", ",", "holds", "a", "cup", "."}, 2},
		{"a GIRL    with   RED hair", "Girl", []string{"a", "girl", "with", "red", "hair"}, 2},
		{"Don't stop", "'t", []string{"don", "'t", "stop"}, 2},
		{"A man is looking at the camera.", "woman", nil, -1},
	}
	for _, tc := range tests {
		enc := tok.Encode(tc.text)
		if tc.words != nil && !reflect.DeepEqual(enc.Words, tc.words) {
			t.Errorf("Encode(%q).Words = %q, want %q", tc.text, enc.Words, tc.words)
		}
		if got := text.ConceptIndex(enc, tc.concept); got != tc.index {
			t.Errorf("ConceptIndex(%q, %q) = %d, want %d", tc.text, tc.concept, got, tc.index)
		}
	}
	// A word that BPE splits: all its ids point at it and the concept index is its first id.
	enc := tok.Encode("a cocoinsification of a cat")
	if len(enc.IDs) != len(enc.WordOf) || enc.WordOf[0] != -1 || enc.WordOf[len(enc.WordOf)-1] != -1 {
		t.Fatalf("WordOf %v does not mark BOS/EOS for ids %v", enc.WordOf, enc.IDs)
	}
	n := 0
	for _, w := range enc.WordOf {
		if w == 1 {
			n++
		}
	}
	if n < 2 {
		t.Errorf("cocoinsification: %d ids, want it split into several: ids %v WordOf %v", n, enc.IDs, enc.WordOf)
	}
	if got := text.ConceptIndex(enc, "cat"); got != 2+n+2 || enc.IDs[got] != 2368 {
		t.Errorf("ConceptIndex(cat) = %d, want %d with id 2368; ids %v", got, 2+n+2, enc.IDs)
	}
	for _, s := range []string{"a photo of a cat", "un café à paris", "ünïcödé 東京"} {
		if got := tok.Decode(tok.Encode(s).IDs); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
	specials := tok.Encode("x<|endoftext|>")
	if want := []int32{49406, tok.Encode("x").IDs[1], 49407, 49407}; !reflect.DeepEqual(specials.IDs, want) {
		t.Errorf("Encode(x<|endoftext|>) = %v, want %v", specials.IDs, want)
	}
}

func TestWithPadAndJSONLines(t *testing.T) {
	gz, _ := sharedData(t)
	tok, err := Load(gz)
	if err != nil {
		t.Fatal(err)
	}
	tok2 := tok.WithPad(0)
	if tok2.Pad() != 0 || tok.Pad() != 49407 {
		t.Errorf("WithPad(0): Pad %d, original %d; want 0, 49407", tok2.Pad(), tok.Pad())
	}
	fitted, eos, _ := text.Fit(tok2.Encode("a photo of a cat").IDs, tok2.MaxLength(), tok2.EOS(), tok2.Pad())
	if len(fitted) != 77 || eos != 6 || fitted[6] != 49407 || fitted[7] != 0 || fitted[76] != 0 {
		t.Errorf("Fit: len %d, eos %d, ids %v", len(fitted), eos, fitted[:8])
	}
	var b strings.Builder
	if err := text.WriteJSONLines(&b, tok, []string{"a photo of a cat", "Café & <b>"}, 5); err != nil {
		t.Fatal(err)
	}
	want := `{"text":"a photo of a cat","ids":[49406,320,1125,539,49407]}` + "\n" +
		`{"text":"Café & <b>","ids":[49406,15304,261,283,49407]}` + "\n"
	if b.String() != want {
		t.Errorf("WriteJSONLines:\n got %s\nwant %s", b.String(), want)
	}
}
