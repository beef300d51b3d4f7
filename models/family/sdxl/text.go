package sdxl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"

	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/text/clip"
)

// tokenizers loads tokenizer/ (the family's tokenizer) and tokenizer_2/, which SDXL gives the
// same vocabulary but another pad token ("!" instead of <|endoftext|>), and returns the first
// with the pad id of the second. cocoflow tokenizes once for both encoders; encoder 2 swaps the
// padding after EOS for its own pad (see padFor).
func tokenizers(l *layout) (*clip.Tokenizer, int32, error) {
	var toks [2]*clip.Tokenizer
	for k, d := range []string{dirTokenizer, dirTokenizer2} {
		dir := filepath.Join(l.root, d)
		t, err := clip.Load(dir)
		if err != nil {
			return nil, 0, fmt.Errorf("sdxl: %w", err)
		}
		if err := checkConfigPad(dir, t); err != nil {
			return nil, 0, err
		}
		toks[k] = t
	}
	for _, f := range []string{clip.VocabFile, clip.MergesFile} {
		a, errA := os.ReadFile(filepath.Join(l.root, dirTokenizer, f))
		b, errB := os.ReadFile(filepath.Join(l.root, dirTokenizer2, f))
		if err := errors.Join(errA, errB); err != nil {
			return nil, 0, fmt.Errorf("sdxl: %w", err)
		}
		if !bytes.Equal(a, b) {
			return nil, 0, fmt.Errorf("sdxl: %s differs from %s: cocoflow tokenizes a prompt once for both text encoders, as SDXL's two tokenizers share their vocabulary",
				filepath.Join(l.root, dirTokenizer2, f), filepath.Join(l.root, dirTokenizer, f))
		}
	}
	return toks[0], toks[1].Pad(), nil
}

// checkConfigPad checks that tokenizer_config.json's pad_token, when it names one, is the pad
// the tokenizer took from special_tokens_map.json.
func checkConfigPad(dir string, t *clip.Tokenizer) error {
	path := filepath.Join(dir, "tokenizer_config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sdxl: %w", err)
	}
	var cfg struct {
		Pad json.RawMessage `json:"pad_token"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("sdxl: %s: %w", path, err)
	}
	var name string
	if json.Unmarshal(cfg.Pad, &name) != nil {
		var obj struct {
			Content string `json:"content"`
		}
		if json.Unmarshal(cfg.Pad, &obj) != nil {
			return nil // absent or null
		}
		name = obj.Content
	}
	if name == "" {
		return nil
	}
	if id, ok := t.TokenID(name); !ok || id != t.Pad() {
		return fmt.Errorf("sdxl: %s: pad_token %q is not the pad token of %s (id %d)", path, name, filepath.Join(dir, clip.SpecialsFile), t.Pad())
	}
	return nil
}

// readTable returns the values of a float32 [vocab, width] initializer of the model at path,
// wherever they are stored (the model file, or external data beside it), in one buffer.
func readTable(path string, t *onnxgraph.Tensor) ([]float32, error) {
	if len(t.Dims) != 2 || t.Dims[0] < 1 || t.Dims[1] < 1 {
		return nil, fmt.Errorf("%s: token embedding %s has shape %v, want [vocab, width]", path, t.Name, t.Dims)
	}
	v, err := t.Float32s()
	if err != nil {
		return nil, fmt.Errorf("%s: token embedding: %w", path, err)
	}
	return v, nil
}

// padFor returns ids with every position after the first EOS set to pad: the padding of the
// encoder whose tokenizer pads with pad (ids come padded with the family tokenizer's pad).
func padFor(ids []int32, eos, pad int32) []int32 {
	out := make([]int32, len(ids))
	copy(out, ids)
	for i, id := range out {
		if id == eos {
			for j := i + 1; j < len(out); j++ {
				out[j] = pad
			}
			break
		}
	}
	return out
}

// vocabStats returns the per-dimension mean and standard deviation of the rows of a
// [vocab, dim] table, leaving out skip (the special tokens).
func vocabStats(table []float32, dim int, skip ...int32) (mean, std []float32) {
	rows := len(table) / dim
	left := map[int]bool{}
	for _, s := range skip {
		left[int(s)] = true
	}
	sum, sq := make([]float64, dim), make([]float64, dim)
	n := 0
	for r := range rows {
		if left[r] {
			continue
		}
		n++
		for j, v := range table[r*dim : (r+1)*dim] {
			sum[j] += float64(v)
			sq[j] += float64(v) * float64(v)
		}
	}
	mean, std = make([]float32, dim), make([]float32, dim)
	for j := range dim {
		m := sum[j] / float64(n)
		mean[j] = float32(m)
		std[j] = float32(math.Sqrt(math.Max(sq[j]/float64(n)-m*m, 0)))
	}
	return mean, std
}
