package clip

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// File names of the two vocabulary formats.
const (
	OpenAIVocabFile = "bpe_simple_vocab_16e6.txt.gz" // OpenAI: merges only, gzip-compressed
	VocabFile       = "vocab.json"                   // Hugging Face: token -> id
	MergesFile      = "merges.txt"                   // Hugging Face: one merge a line
	SpecialsFile    = "special_tokens_map.json"      // Hugging Face: names the pad token
)

// openAIMerges is how many merges OpenAI's tokenizer takes from its file: the vocabulary has
// 49152 BPE entries, 256 of them bytes, minus the two specials added after them.
const openAIMerges = 49152 - 256 - 2

// Load reads a CLIP BPE vocabulary from path, which is one of: OpenAI's
// bpe_simple_vocab_16e6.txt.gz (any gzip file is read as that format); a folder holding
// vocab.json and merges.txt (as SDXL's tokenizer/ and tokenizer_2/ ship) or the .gz file; or
// either vocab.json or merges.txt, with the other beside it. With the Hugging Face format the pad
// id comes from special_tokens_map.json beside vocab.json when there is one; otherwise it is EOS.
// Errors name the file and, where there is one, the line.
func Load(path string) (*Tokenizer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("clip vocabulary: %w", err)
	}
	if fi.IsDir() {
		vocabPath, mergesPath := filepath.Join(path, VocabFile), filepath.Join(path, MergesFile)
		if isFile(vocabPath) && isFile(mergesPath) {
			return loadHF(vocabPath, mergesPath)
		}
		if gz := filepath.Join(path, OpenAIVocabFile); isFile(gz) {
			return loadOpenAI(gz)
		}
		return nil, fmt.Errorf("clip vocabulary %s: want %s and %s (Hugging Face) or %s (OpenAI) in the folder",
			path, VocabFile, MergesFile, OpenAIVocabFile)
	}
	gz, err := isGzip(path)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	switch {
	case gz:
		return loadOpenAI(path)
	case strings.HasSuffix(path, ".json"):
		return loadHF(path, filepath.Join(dir, MergesFile))
	default:
		return loadHF(filepath.Join(dir, VocabFile), path)
	}
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func isGzip(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("clip vocabulary: %w", err)
	}
	defer f.Close()
	var magic [2]byte
	n, err := io.ReadFull(f, magic[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("clip vocabulary %s: %w", path, err)
	}
	return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b, nil
}

// mergeLine is one merge rule and the line of the file it came from.
type mergeLine struct {
	a, b string
	line int
}

// parseMerges reads merge lines "a b", numbering lines from first (1-based).
func parseMerges(path string, lines []string, first int) ([]mergeLine, error) {
	out := make([]mergeLine, 0, len(lines))
	for i, l := range lines {
		n := first + i
		l = strings.TrimSuffix(l, "\r")
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want two symbols separated by a space, got %q", path, n, l)
		}
		out = append(out, mergeLine{f[0], f[1], n})
	}
	return out, nil
}

// loadOpenAI reads OpenAI's gzip-compressed merges file. As OpenAI's SimpleTokenizer does, it
// skips the header line, takes the next 48894 merges and builds the vocabulary: the 256 byte
// characters, the same with "</w>", each merge joined, then <|startoftext|> and <|endoftext|>.
func loadOpenAI(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("clip vocabulary: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: not a gzip file: %w", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: gzip: %w", path, err)
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) < 2 {
		return nil, fmt.Errorf("%s: no merges after the header line", path)
	}
	lines = lines[1:]
	if len(lines) > openAIMerges {
		lines = lines[:openAIMerges]
	}
	merges, err := parseMerges(path, lines, 2)
	if err != nil {
		return nil, err
	}
	if len(merges) == 0 {
		return nil, fmt.Errorf("%s: no merges after the header line", path)
	}

	sym, order := byteSymbols()
	tokens := make([]string, 0, 512+len(merges)+2)
	for _, b := range order {
		tokens = append(tokens, string(sym[b]))
	}
	for _, b := range order {
		tokens = append(tokens, string(sym[b])+"</w>")
	}
	for _, m := range merges {
		tokens = append(tokens, m.a+m.b)
	}
	tokens = append(tokens, StartOfText, EndOfText)
	encoder := make(map[string]int32, len(tokens))
	for id, tok := range tokens {
		encoder[tok] = int32(id) // a token listed twice keeps its last id, as in Python's dict
	}
	v, err := newVocab(encoder, merges, path, path, false)
	if err != nil {
		return nil, err
	}
	return &Tokenizer{vocab: v, pad: v.eos}, nil
}

// loadHF reads a Hugging Face vocab.json and merges.txt, and the pad token from
// special_tokens_map.json beside vocab.json when it exists.
func loadHF(vocabPath, mergesPath string) (*Tokenizer, error) {
	data, err := os.ReadFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("clip vocabulary: %w", err)
	}
	var raw map[string]int64
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: want a JSON object of token -> id: %w", vocabPath, jsonErrLine(data, err))
	}
	encoder := make(map[string]int32, len(raw))
	owner := make(map[int64]string, len(raw))
	for tok, id := range raw {
		if id < 0 || id >= 1<<24 {
			return nil, fmt.Errorf("%s: token %q: id %d out of range [0, %d)", vocabPath, tok, id, 1<<24)
		}
		if other, dup := owner[id]; dup {
			a, b := min(tok, other), max(tok, other)
			return nil, fmt.Errorf("%s: tokens %q and %q share id %d", vocabPath, a, b, id)
		}
		owner[id] = tok
		encoder[tok] = int32(id)
	}

	mdata, err := os.ReadFile(mergesPath)
	if err != nil {
		return nil, fmt.Errorf("clip vocabulary: %w", err)
	}
	lines := strings.Split(string(mdata), "\n")
	first := 1
	if len(lines) > 0 && strings.HasPrefix(lines[0], "#version") {
		lines, first = lines[1:], 2
	}
	merges, err := parseMerges(mergesPath, lines, first)
	if err != nil {
		return nil, err
	}
	v, err := newVocab(encoder, merges, vocabPath, mergesPath, true)
	if err != nil {
		return nil, err
	}
	pad, err := readPad(filepath.Join(filepath.Dir(vocabPath), SpecialsFile), vocabPath, encoder)
	if err != nil {
		return nil, err
	}
	if pad < 0 {
		pad = v.eos
	}
	return &Tokenizer{vocab: v, pad: pad}, nil
}

// readPad returns the id of the pad_token named in special_tokens_map.json at path, or -1 when
// the file or the field is absent.
func readPad(path, vocabPath string, encoder map[string]int32) (int32, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("clip vocabulary: %w", err)
	}
	var m struct {
		Pad json.RawMessage `json:"pad_token"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return 0, fmt.Errorf("%s: %w", path, jsonErrLine(data, err))
	}
	if len(m.Pad) == 0 || string(m.Pad) == "null" {
		return -1, nil
	}
	var name string
	if err := json.Unmarshal(m.Pad, &name); err != nil {
		var obj struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(m.Pad, &obj); err != nil || obj.Content == nil {
			return 0, fmt.Errorf("%s: pad_token: want a string or an object with \"content\", got %s", path, m.Pad)
		}
		name = *obj.Content
	}
	id, ok := encoder[name]
	if !ok {
		return 0, fmt.Errorf("%s: pad_token %q is not in %s", path, name, vocabPath)
	}
	return id, nil
}

// jsonErrLine adds the line number to a JSON syntax or type error.
func jsonErrLine(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 {
		return err
	}
	off = min(off, int64(len(data)))
	return fmt.Errorf("line %d: %w", 1+bytes.Count(data[:off], []byte("\n")), err)
}

// newVocab checks encoder and merges and builds the lookup tables. With strict (Hugging Face),
// every merge's symbols and result must be in the vocabulary; otherwise merges whose symbols are
// missing are dropped, since they can never apply.
func newVocab(encoder map[string]int32, merges []mergeLine, vocabPath, mergesPath string, strict bool) (*vocab, error) {
	v := &vocab{encoder: encoder, merges: make(map[pair]merge, len(merges)), cache: make(map[string][]int32)}
	var ok bool
	if v.bos, ok = encoder[StartOfText]; !ok {
		return nil, fmt.Errorf("%s: missing special token %s", vocabPath, StartOfText)
	}
	if v.eos, ok = encoder[EndOfText]; !ok {
		return nil, fmt.Errorf("%s: missing special token %s", vocabPath, EndOfText)
	}
	sym, _ := byteSymbols()
	v.byteOf = make(map[rune]byte, 256)
	for b := 0; b < 256; b++ {
		v.byteOf[sym[b]] = byte(b)
		s := string(sym[b])
		if v.byteID[b], ok = encoder[s]; !ok {
			return nil, fmt.Errorf("%s: missing the token %q of byte 0x%02x", vocabPath, s, b)
		}
		if v.byteEndID[b], ok = encoder[s+"</w>"]; !ok {
			return nil, fmt.Errorf("%s: missing the token %q of byte 0x%02x at a word's end", vocabPath, s+"</w>", b)
		}
	}
	for rank, m := range merges {
		a, okA := encoder[m.a]
		b, okB := encoder[m.b]
		id, okID := encoder[m.a+m.b]
		switch {
		case strict && !okA:
			return nil, fmt.Errorf("%s:%d: symbol %q is not in %s", mergesPath, m.line, m.a, vocabPath)
		case strict && !okB:
			return nil, fmt.Errorf("%s:%d: symbol %q is not in %s", mergesPath, m.line, m.b, vocabPath)
		case !okA || !okB:
			continue
		case !okID:
			return nil, fmt.Errorf("%s:%d: merged token %q is not in %s", mergesPath, m.line, m.a+m.b, vocabPath)
		}
		v.merges[pair{a, b}] = merge{rank: int32(rank), id: id} // a repeated merge keeps its last rank
	}
	size := int32(0)
	for _, id := range encoder {
		size = max(size, id+1)
	}
	v.decoder = make([]string, size)
	for tok, id := range encoder {
		v.decoder[id] = tok
	}
	return v, nil
}
