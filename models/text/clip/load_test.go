package clip

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// smallMerges is a toy merge list: ids are 512 + the merge's index, specials 517 and 518.
var smallMerges = [][2]string{
	{"a", "a"},       // 512 "aa"
	{"a", "a</w>"},   // 513 "aa</w>"
	{"aa", "aa</w>"}, // 514 "aaaa</w>"
	{"b", "c</w>"},   // 515 "bc</w>"
	{"Ã", "©</w>"},   // 516 "Ã©</w>": the two bytes of "é" ending a word
}

func TestSmallVocabBPE(t *testing.T) {
	dir := t.TempDir()
	lines := []string{"#version: 0.2"}
	for _, m := range smallMerges {
		lines = append(lines, m[0]+" "+m[1])
	}
	gz := filepath.Join(dir, "small.txt.gz")
	writeGz(t, gz, lines)
	hf := filepath.Join(dir, "hf")
	if err := os.Mkdir(hf, 0o755); err != nil {
		t.Fatal(err)
	}
	writeHF(t, hf, smallMerges)

	const a, aEnd, b = 64, 256 + 64, 65 // 'a' is the 65th printable byte
	tests := []struct {
		text string
		ids  []int32
	}{
		{"a", []int32{aEnd}},
		{"aa", []int32{513}},
		{"aaa", []int32{512, aEnd}},        // a a a</w> -> aa a</w>: (aa, a</w>) has no merge
		{"aaaa", []int32{514}},             // -> aa a a</w> -> aa aa</w> -> aaaa</w>
		{"aaaaa", []int32{512, 512, aEnd}}, // a a a a a</w> -> aa aa a</w>
		{"bc abc", []int32{515, a, 515}},
		{"abcb", []int32{a, b, 66, 256 + 65}}, // "c b</w>" has no merge
		{"é", []int32{516}},
		{"A<|endoftext|>", []int32{aEnd, 518}},
	}
	for _, path := range []string{gz, hf} {
		tok, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		if tok.BOS() != 517 || tok.EOS() != 518 || tok.VocabSize() != 519 {
			t.Errorf("%s: BOS %d EOS %d VocabSize %d; want 517 518 519", path, tok.BOS(), tok.EOS(), tok.VocabSize())
		}
		for _, tc := range tests {
			want := append(append([]int32{517}, tc.ids...), 518)
			if got := tok.Encode(tc.text).IDs; !reflect.DeepEqual(got, want) {
				t.Errorf("%s: Encode(%q) = %v, want %v", path, tc.text, got, want)
			}
		}
		if got := tok.Decode(tok.Encode("aaaaa bc é").IDs); got != "aaaaa bc é" {
			t.Errorf("%s: Decode round trip = %q", path, got)
		}
	}
}

func TestEncodeConcurrent(t *testing.T) {
	dir := t.TempDir()
	writeHF(t, dir, smallMerges)
	tok, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := tok.WithPad(0).Encode("aaaa bc aaa").IDs
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if got := tok.Encode("aaaa bc aaa").IDs; !reflect.DeepEqual(got, want) {
					errs <- "concurrent Encode differs"
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestLoadErrors(t *testing.T) {
	good := hfVocab(smallMerges)
	vocabJSON := func(edit func(map[string]int)) string {
		v := make(map[string]int, len(good))
		for k, id := range good {
			v[k] = id
		}
		edit(v)
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	goodVocab := vocabJSON(func(map[string]int) {})
	goodMerges := "#version: 0.2\na a\na a</w>\n"
	tests := []struct {
		name, vocab, merges, specials, want string
	}{
		{"merge fields", goodVocab, "#version: 0.2\na a\na b c\n", "", "merges.txt:3: want two symbols separated by a space"},
		{"json syntax", "{\n\"a\": 1,\n\"b\" 2}", goodMerges, "", "vocab.json: want a JSON object of token -> id: line 3"},
		{"json type", "{\n\"a\": \"x\"}", goodMerges, "", "vocab.json: want a JSON object of token -> id: line 2"},
		{"no eos", vocabJSON(func(v map[string]int) { delete(v, EndOfText) }), goodMerges, "", "vocab.json: missing special token <|endoftext|>"},
		{"no byte", vocabJSON(func(v map[string]int) { delete(v, "Ġ</w>") }), goodMerges, "", `vocab.json: missing the token "Ġ</w>" of byte 0x20`},
		{"shared id", vocabJSON(func(v map[string]int) { v["zz"] = 3 }), goodMerges, "", "share id 3"},
		{"negative id", vocabJSON(func(v map[string]int) { v["zz"] = -1 }), goodMerges, "", `token "zz": id -1 out of range`},
		{"unknown symbol", goodVocab, "#version: 0.2\na a\nq zz\n", "", `merges.txt:3: symbol "zz" is not in`},
		{"unknown result", goodVocab, "a a\nb b\n", "", `merges.txt:2: merged token "bb" is not in`},
		{"pad unknown", goodVocab, goodMerges, `{"pad_token": "<pad>"}`, `special_tokens_map.json: pad_token "<pad>" is not in`},
		{"pad bad", goodVocab, goodMerges, `{"pad_token": 7}`, `special_tokens_map.json: pad_token: want a string`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, VocabFile), tc.vocab)
			writeFile(t, filepath.Join(dir, MergesFile), tc.merges)
			if tc.specials != "" {
				writeFile(t, filepath.Join(dir, SpecialsFile), tc.specials)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.txt.gz")
	writeGz(t, bad, []string{"#version: 0.2", "a a", "a", "b c"})
	empty := filepath.Join(dir, "empty.txt.gz")
	writeGz(t, empty, []string{"#version: 0.2"})
	lone := filepath.Join(dir, "lone")
	if err := os.Mkdir(lone, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(lone, MergesFile), goodMerges)
	files := []struct{ path, want string }{
		{bad, "bad.txt.gz:3: want two symbols"},
		{empty, "empty.txt.gz: no merges after the header line"},
		{dir, "want vocab.json and merges.txt (Hugging Face) or bpe_simple_vocab_16e6.txt.gz (OpenAI) in the folder"},
		{filepath.Join(lone, MergesFile), "lone/vocab.json: no such file"},
		{filepath.Join(dir, "absent"), "absent: no such file"},
	}
	for _, f := range files {
		_, err := Load(f.path)
		if err == nil || !strings.Contains(err.Error(), f.want) {
			t.Errorf("Load(%s) error = %v, want it to contain %q", f.path, err, f.want)
		}
	}
}
