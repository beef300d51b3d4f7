package tiny

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cocoflow/cocoflow/models/diffusion"
)

// ConfigFile is the name of the architecture file inside a generator directory.
const ConfigFile = "config.json"

// Config is the architecture of the tiny generator: a small causal text encoder (CLIP-like)
// and a DiT-like denoiser over the 64 latent tokens. It is stored as config.json next to the
// weights, so a directory is self-describing.
type Config struct {
	VocabSize int `json:"vocab_size"` // token embedding rows: the tokenizer's vocabulary size
	MaxLength int `json:"max_length"` // text positions, BOS and EOS included

	TextWidth int `json:"text_width"` // Dt: token embedding and text state width
	TextDepth int `json:"text_depth"` // N_t: text transformer blocks
	TextHeads int `json:"text_heads"` // attention heads of the text encoder
	// TokenInitStd is the standard deviation of the initial token embeddings (0: 0.02). At
	// 0.02 the embeddings are small next to the O(1) outputs of the blocks: in a generator
	// trained so, the text states of "dark skin" and "pale skin" had cosine 0.99 even at the
	// differing word; at 1 they start at 0.72 there. The committed generator uses 1.
	TokenInitStd float64 `json:"token_init_std,omitempty"`
	// WordSkip also hands the denoiser's cross-attention each position's own embedding (token
	// plus position, layer-normalised) next to the contextual text states: the states are
	// [B, 2L, TextWidth]. A small text encoder trained through a denoiser mixes its words into
	// nearly the same state at every position; the skip keeps every word, and a pseudo-word,
	// visible as itself. The committed generator uses it: with the earlier generator, which
	// had neither this nor TokenInitStd 1, a trained CoCoIns mapper moved only the overall
	// colour (Face Sim 0.097 vs 0.088 without a code); with this one a code sets the subject
	// (0.658 vs 0.168; README, "Results on the tiny world").
	WordSkip bool `json:"word_skip,omitempty"`

	LatentShape []int `json:"latent_shape"` // [H, W, C] of one latent; H*W tokens of C features
	ImageSize   int   `json:"image_size"`   // image side the latent decodes to
	Width       int   `json:"width"`        // W: denoiser token width
	Depth       int   `json:"depth"`        // N: denoiser blocks
	Heads       int   `json:"heads"`        // attention heads of the denoiser
	MLPRatio    int   `json:"mlp_ratio"`    // hidden width of every MLP is MLPRatio × its input width
	TimeDim     int   `json:"time_dim"`     // sinusoidal timestep features (even)

	Schedule   string `json:"schedule"`    // diffusion schedule kind (models/diffusion)
	TrainSteps int    `json:"train_steps"` // T of the schedule
	InitSeed   uint64 `json:"init_seed"`   // seed of the random initial weights
}

// DefaultConfig returns the tiny family's default architecture for a vocabulary of vocabSize
// ids: text encoder 64 wide, 2 blocks; denoiser 96 wide, 3 blocks, MLP ratio 2 (about 0.6 M
// weights, 2.5 MB). Sizes were chosen from step times measured on the 2-core development
// machine while it was shared (load 3-4; BenchmarkPretrainStep here, BenchmarkSample in
// models/family): a training step at batch 32 took 2.9-3.4 s (W96/D4/MLP4: 5.3 s) and a
// 10-step guided sample 1.1 s per image; on a quiet machine both should be about half, that is
// about 1.5 s a step (2000 steps in about 50 minutes) and about 0.5 s an image.
func DefaultConfig(vocabSize int) Config {
	return Config{
		VocabSize:   vocabSize,
		MaxLength:   MaxLength,
		TextWidth:   64,
		TextDepth:   2,
		TextHeads:   4,
		LatentShape: DefaultLatent.Shape(32),
		ImageSize:   32,
		Width:       96,
		Depth:       3,
		Heads:       4,
		MLPRatio:    2,
		TimeDim:     64,
		Schedule:    diffusion.ScaledLinear,
		TrainSteps:  1000,
		InitSeed:    1,
	}
}

// Tokens returns the number of latent tokens (H*W) and their feature count C.
func (c Config) Tokens() (n, features int) {
	if len(c.LatentShape) != 3 {
		return 0, 0
	}
	return c.LatentShape[0] * c.LatentShape[1], c.LatentShape[2]
}

// LatentSize returns the number of values of one latent.
func (c Config) LatentSize() int {
	n, f := c.Tokens()
	return n * f
}

// Validate returns an error naming the first field that is out of range or inconsistent.
func (c Config) Validate() error {
	positive := []struct {
		name string
		v    int
	}{
		{"vocab_size", c.VocabSize}, {"max_length", c.MaxLength}, {"text_width", c.TextWidth},
		{"text_depth", c.TextDepth}, {"text_heads", c.TextHeads}, {"image_size", c.ImageSize},
		{"width", c.Width}, {"depth", c.Depth}, {"heads", c.Heads}, {"mlp_ratio", c.MLPRatio},
		{"time_dim", c.TimeDim}, {"train_steps", c.TrainSteps},
	}
	for _, p := range positive {
		if p.v < 1 {
			return fmt.Errorf("tiny config: %s = %d, want >= 1", p.name, p.v)
		}
	}
	switch {
	case c.VocabSize < 4:
		return fmt.Errorf("tiny config: vocab_size = %d, want >= 4 (pad, bos, eos, unk)", c.VocabSize)
	case c.MaxLength < 2:
		return fmt.Errorf("tiny config: max_length = %d, want >= 2 (BOS and EOS)", c.MaxLength)
	case c.TextWidth%c.TextHeads != 0:
		return fmt.Errorf("tiny config: text_width %d is not divisible by text_heads %d", c.TextWidth, c.TextHeads)
	case c.Width%c.Heads != 0:
		return fmt.Errorf("tiny config: width %d is not divisible by heads %d", c.Width, c.Heads)
	case c.TimeDim%2 != 0:
		return fmt.Errorf("tiny config: time_dim = %d, want an even number", c.TimeDim)
	case !(c.TokenInitStd >= 0):
		return fmt.Errorf("tiny config: token_init_std = %g, want >= 0 (0 for 0.02)", c.TokenInitStd)
	case len(c.LatentShape) != 3 || c.LatentShape[0] < 1 || c.LatentShape[1] < 1 || c.LatentShape[2] < 1:
		return fmt.Errorf("tiny config: latent_shape = %v, want [H, W, C] with positive entries", c.LatentShape)
	}
	if _, err := diffusion.NewSchedule(c.Schedule, c.TrainSteps); err != nil {
		return fmt.Errorf("tiny config: schedule: %w", err)
	}
	return nil
}

// WriteConfig writes c as dir/config.json (indented JSON), creating dir if needed.
func WriteConfig(dir string, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tiny: %w", err)
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("tiny: encoding %s: %w", ConfigFile, err)
	}
	path := filepath.Join(dir, ConfigFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("tiny: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tiny: %w", err)
	}
	return nil
}

// ParseConfig decodes a config.json; name is used in errors. Unknown fields are errors, and the
// result is validated.
func ParseConfig(name string, data []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}
