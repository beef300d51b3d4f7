// Package family defines what cocoflow needs from a text-to-image latent diffusion model — a
// "model family" such as the tiny family that cocoflow trains itself, or SDXL — so that the
// prep, training and generation stages are written once for every family. A family adapter
// knows its model and nothing about the pipeline; stages know the pipeline and only this
// interface.
//
// CoCoIns (paper §3.2) needs three things of a frozen generator:
//   - token embeddings looked up separately from the text encoder, so a pseudo-word can be
//     inserted before a concept token before position embeddings are added (eq. 4, insert);
//   - the text encoder(s) and the denoiser as differentiable functions inside one GoMLX graph,
//     so the losses of eqs. (7)-(9) reach the mapping network through them;
//   - a fast inference path for generation with subject codes.
package family

import (
	"fmt"
	"image"
	"sort"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/text"
)

// TextEncoder describes one text encoder of a generator. SDXL has two (CLIP ViT-L, 768-d, and
// OpenCLIP bigG, 1280-d); a pseudo-word has one vector per encoder.
type TextEncoder struct {
	Name      string
	Dim       int // token embedding width: the size of a pseudo-word for this encoder
	MaxLength int // token positions, BOS and EOS included
}

// Info describes a generator to the stages.
type Info struct {
	Name        string
	Encoders    []TextEncoder
	LatentShape []int  // one sample's latent, e.g. [8 8 48] (tiny, HWC) or [4 128 128] (SDXL, CHW)
	ImageSize   int    // side of the square images the autoencoder maps to LatentShape
	Schedule    string // diffusion schedule kind (models/diffusion), e.g. "scaled_linear"
	TrainSteps  int    // T of the schedule, e.g. 1000
	Prediction  string // what the denoiser predicts: "epsilon" or "v"
}

// Autoencoder maps images to latents and back, and masks to latent resolution.
type Autoencoder interface {
	// Encode returns the latent of img and its shape.
	Encode(img image.Image) ([]float32, []int, error)
	// Decode returns the image of a latent of the given shape.
	Decode(latent []float32, shape []int) (*image.NRGBA, error)
	// Mask returns a mask at latent resolution, values in [0, 1], and its [h, w] shape.
	Mask(m *image.Gray) ([]float32, []int, error)
}

// Cond is the text conditioning a denoiser consumes.
type Cond struct {
	States *graph.Node            // [B, L, D]: per-token states of the text encoder(s)
	Pooled *graph.Node            // [B, P]: pooled (EOS) state, nil if the model has none
	Extra  map[string]*graph.Node // model-specific extra conditioning (SDXL's time ids)
}

// Generator is a frozen text-to-image latent diffusion model as CoCoIns uses it. The graph
// methods build into the caller's graph with the generator's own (frozen, non-trainable)
// variables, which live in Context(); callers use ctx.Reuse() scoped to that context.
type Generator interface {
	Info() Info
	Tokenizer() text.Tokenizer
	Autoencoder() Autoencoder
	// VocabStats returns, for encoder k, the per-dimension mean and standard deviation of its
	// token embedding table: the mapping network rescales pseudo-words to them.
	VocabStats(k int) (mean, std []float32)
	// Context holds the generator's weights.
	Context() *context.Context

	// Embed looks up the token embeddings of ids [B, L] (int32) for every encoder, before
	// position embeddings: one [B, L, Dim_k] node per encoder.
	Embed(ctx *context.Context, ids *graph.Node) []*graph.Node
	// Encode runs the text encoders on token embeddings (after pseudo-word insertion), given the
	// position of EOS in each row (eos [B], int32; it moves when words are inserted).
	Encode(ctx *context.Context, embeds []*graph.Node, eos *graph.Node) Cond
	// Denoise predicts the denoiser output (see Info.Prediction) for noisy latents x_t
	// [B, LatentShape...] at integer timesteps t [B] (int32) under cond.
	Denoise(ctx *context.Context, xt, t *graph.Node, cond Cond) *graph.Node
}

// Spec is how a family's parts are loaded from a model directory ("" means the family's
// built-in default). The tokenizer and autoencoder are separate from the generator because data
// preparation needs them before any generator weights exist (the tiny family is pretrained on
// prep's output).
type Spec struct {
	Tokenizer   func(dir string) (text.Tokenizer, error)
	Autoencoder func(dir string) (Autoencoder, error)
	Generator   func(dir string) (Generator, error)
	// Digest returns the digest of the generator weights in dir ("" for the built-in
	// default), which stage fingerprints include (optional: without it a folder is known by
	// its path alone, as paper-scale folders of several GB are too large to hash every run).
	Digest func(dir string) (string, error)
	// Check tells whether dir holds what the family's Generator, Tokenizer and Autoencoder
	// will load, cheaply (files, configs, graph signatures; no weights), so that a config
	// naming a folder that cannot run fails at validation, before any stage starts (optional).
	Check func(dir string) error
}

var (
	mu    sync.RWMutex
	specs = map[string]Spec{}
)

// Register makes a family available by name (from its package's init).
func Register(name string, s Spec) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := specs[name]; dup {
		panic("family: " + name + " registered twice")
	}
	specs[name] = s
}

// Lookup returns the named family's spec.
func Lookup(name string) (Spec, error) {
	mu.RLock()
	defer mu.RUnlock()
	s, ok := specs[name]
	if !ok {
		return Spec{}, fmt.Errorf("unknown model family %q (known: %v)", name, namesLocked())
	}
	return s, nil
}

// Names lists the registered families.
func Names() []string {
	mu.RLock()
	defer mu.RUnlock()
	return namesLocked()
}

func namesLocked() []string {
	var names []string
	for n := range specs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check returns an error when name is not a registered family or dir does not fit it (see
// Spec.Check).
func Check(name, dir string) error {
	s, err := Lookup(name)
	if err != nil || s.Check == nil {
		return err
	}
	return s.Check(dir)
}

// Models is the weight digest of the named family's generator in dir, as a stage kind's
// Models map ({"generator": digest}), or nil when the family has no Digest.
func Models(name, dir string) (map[string]string, error) {
	s, err := Lookup(name)
	if err != nil {
		return nil, err
	}
	if s.Digest == nil {
		return nil, nil
	}
	d, err := s.Digest(dir)
	if err != nil {
		return nil, fmt.Errorf("%s generator: %w", name, err)
	}
	return map[string]string{"generator": d}, nil
}
