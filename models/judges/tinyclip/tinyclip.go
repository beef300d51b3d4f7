// Package tinyclip is cocoflow's tiny CLIP, the tiny world's stand-in for CLIP and DreamSim
// (paper §4.2): an image tower (models/judges/tinyface's Tower) and a causal text tower over the tiny
// word tokenizer, pooled at EOS, both projected to a shared unit-norm space and trained with a
// symmetric InfoNCE loss and a learnable temperature on synthfaces' (image, caption) pairs. It
// scores prompt fidelity (CLIP-T, class-word retrieval with Classify) and, on masked subjects,
// the perceptual subject similarity the paper measures with DreamSim (EmbedImages).
//
// Class-word retrieval on held-out synthfaces images is well above chance but not near
// perfect: man and person are recognised, while woman, boy and girl are often confused (child
// versus adult proportions are subtle at 32×32). Compare generated images against real images
// of the same classes rather than against 100%.
package tinyclip

import (
	"fmt"
	"image"
	"io/fs"
	"os"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
)

// TextConfig is the architecture of the text tower.
type TextConfig struct {
	Vocab  int `json:"vocab"`  // token ids (the tiny tokenizer's vocabulary size)
	Length int `json:"length"` // token positions, BOS and EOS included
	Width  int `json:"width"`  // token width
	Depth  int `json:"depth"`  // causal transformer blocks
	Heads  int `json:"heads"`  // attention heads; Width must be a multiple of it
	MLP    int `json:"mlp"`    // hidden width of each block's MLP
	// TokenInitStd is the standard deviation of the initial token embeddings (0: 0.02, as the
	// first models had). At 0.02 a word's embedding is drowned by what the blocks add, so
	// training first sits on a plateau where only whole-caption statistics are matched and
	// leaves it (or not) by chance; see tiny.Config.TokenInitStd.
	TokenInitStd float64 `json:"token_init_std,omitempty"`
}

// Validate returns an error naming the first invalid field, or nil.
func (c TextConfig) Validate() error {
	switch {
	case c.Vocab < 4:
		return fmt.Errorf("text config: vocab %d: want at least 4 (the specials)", c.Vocab)
	case c.Length < 2:
		return fmt.Errorf("text config: length %d: want at least 2 (BOS and EOS)", c.Length)
	case c.Width < 1:
		return fmt.Errorf("text config: width %d: want at least 1", c.Width)
	case c.Depth < 0:
		return fmt.Errorf("text config: depth %d: want at least 0", c.Depth)
	case c.Heads < 1 || c.Width%c.Heads != 0:
		return fmt.Errorf("text config: heads %d: want a divisor of the width %d", c.Heads, c.Width)
	case c.MLP < 1:
		return fmt.Errorf("text config: mlp %d: want at least 1", c.MLP)
	case !(c.TokenInitStd >= 0):
		return fmt.Errorf("text config: token_init_std %g: want >= 0 (0 for 0.02)", c.TokenInitStd)
	}
	return nil
}

// Config is the architecture of the tiny CLIP.
type Config struct {
	Image tinyface.TowerConfig `json:"image"` // image tower
	Text  TextConfig           `json:"text"`  // text tower
	Dim   int                  `json:"dim"`   // shared embedding size
}

// DefaultConfig returns the tiny world's CLIP: an MLP image tower over 4×4 patches of the whole
// image (each patch through a shared 32-wide layer, then hidden width 512, one residual block),
// a 1-block causal text tower of width 64 over the tiny tokenizer, a 64-d shared space. It
// returns an error if the tiny tokenizer cannot be loaded.
func DefaultConfig() (Config, error) {
	tok, err := tiny.Tokenizer()
	if err != nil {
		return Config{}, fmt.Errorf("tinyclip: %w", err)
	}
	return Config{
		Image: tinyface.TowerConfig{Kind: tinyface.KindMLP, Patch: 4, Width: 512, Depth: 1, Heads: 4, MLP: 512, Embed: 32},
		Text:  TextConfig{Vocab: tok.VocabSize(), Length: tok.MaxLength(), Width: 64, Depth: 1, Heads: 4, MLP: 128, TokenInitStd: 1},
		Dim:   64,
	}, nil
}

// Validate returns an error naming the first invalid field, or nil.
func (c Config) Validate() error {
	if err := c.Image.Validate(); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	if err := c.Text.Validate(); err != nil {
		return err
	}
	if c.Dim < 1 {
		return fmt.Errorf("tinyclip config: dim %d: want at least 1", c.Dim)
	}
	return nil
}

// modelScope is the scope of the model's variables.
const modelScope = "model"

// ImageGraph builds the image side on patch tokens [B, Tokens, TokenDim] (tinyface.Patchify)
// and returns unit-norm embeddings [B, Dim].
func ImageGraph(ctx *context.Context, cfg Config, tokens *graph.Node) *graph.Node {
	h := tinyface.Tower(ctx.In("image"), cfg.Image, tokens)
	return graph.L2Normalize(tinyface.Dense(ctx.In("image_proj"), h, cfg.Dim), -1)
}

// TextGraph builds the text side on token ids [B, Length] (int32) with the EOS position of
// each row [B] (int32), and returns unit-norm embeddings [B, Dim]: token and position
// embeddings, Depth causal blocks, a final layer norm, the state at EOS, a projection.
func TextGraph(ctx *context.Context, cfg Config, ids, eos *graph.Node) *graph.Node {
	tc := cfg.Text
	ctx = ctx.In("text")
	g := ids.Graph()
	std := tc.TokenInitStd
	if std == 0 {
		std = tinyface.DefaultEmbeddingStd
	}
	table := tinyface.EmbeddingStd(ctx, "token", tc.Vocab, tc.Width, std, g)
	// A one-hot product instead of Gather: its gradient is a plain matrix multiply.
	x := graph.DotGeneral(graph.OneHot(ids, tc.Vocab, tinyface.DType), []int{2}, nil, table, []int{0}, nil)
	x = graph.Add(x, graph.ExpandLeftToRank(tinyface.Embedding(ctx, "pos", tc.Length, tc.Width, g), 3))
	mask := tinyface.CausalMask(g, tc.Length)
	for i := range tc.Depth {
		x = tinyface.Block(ctx.In(fmt.Sprintf("block%d", i)), x, tc.Heads, tc.MLP, mask)
	}
	x = tinyface.LayerNorm(ctx.In("ln_final"), x)
	pick := graph.OneHot(eos, tc.Length, tinyface.DType)                        // [B, L]
	pooled := graph.DotGeneral(pick, []int{1}, []int{0}, x, []int{1}, []int{0}) // [B, W]
	return graph.L2Normalize(tinyface.Dense(ctx.In("proj"), pooled, cfg.Dim), -1)
}

// LogitScale returns the learnable log inverse temperature (initialised to log(1/0.07), as in
// CLIP) clipped to [0, log 100].
func LogitScale(ctx *context.Context, g *graph.Graph) *graph.Node {
	v := ctx.In("logit").VariableWithValue("scale", float32(2.6592600)).ValueGraph(g)
	return graph.ClipScalar(v, 0, 4.6051702)
}

// Model is a trained tiny CLIP. Its methods are safe for concurrent use.
type Model struct {
	cfg Config
	ctx *context.Context
	tok *text.WordTokenizer
	// Meta is free-form information stored with the weights (training options, data, numbers).
	Meta map[string]string

	images  *tinyface.Batcher
	txtMu   sync.Mutex
	txtExec *context.Exec
}

// Config returns the model's architecture.
func (m *Model) Config() Config { return m.cfg }

// newModel wraps a context holding the model's variables; it checks the tokenizer.
func newModel(cfg Config, ctx *context.Context, meta map[string]string) (*Model, error) {
	tok, err := tiny.Tokenizer()
	if err != nil {
		return nil, fmt.Errorf("tinyclip: %w", err)
	}
	if tok.VocabSize() != cfg.Text.Vocab {
		return nil, fmt.Errorf("tinyclip: model has a vocabulary of %d tokens, the tiny tokenizer %d", cfg.Text.Vocab, tok.VocabSize())
	}
	images := tinyface.NewBatcher(ctx, cfg.Image, cfg.Dim, func(ctx *context.Context, tokens *graph.Node) *graph.Node {
		return ImageGraph(ctx.In(modelScope), cfg, tokens)
	})
	return &Model{cfg: cfg, ctx: ctx, tok: tok, Meta: meta, images: images}, nil
}

// EmbedImages returns one unit-norm Dim-vector per image, in order, from one compiled graph of
// tinyface.EmbedBatch images reused across calls (the last batch is padded); results are
// deterministic. Images of another size are resized (tinyface.Pixels). It returns an error
// naming the image that cannot be read, or the backend's error.
func (m *Model) EmbedImages(images []image.Image) ([][]float32, error) {
	pix := make([][]float32, len(images))
	for i, img := range images {
		p, err := tinyface.Pixels(img)
		if err != nil {
			return nil, fmt.Errorf("tinyclip: image %d: %w", i, err)
		}
		pix[i] = p
	}
	out, err := m.images.Run(pix)
	if err != nil {
		return nil, fmt.Errorf("tinyclip: %w", err)
	}
	return out, nil
}

// TextBatch is the batch size of the compiled text graph; EmbedTexts pads the last batch.
const TextBatch = 64

// EmbedTexts returns one unit-norm Dim-vector per text, in order. Texts are tokenized with the
// tiny word tokenizer (unknown words become <unk>; texts longer than Length tokens are truncated
// keeping EOS). It returns the backend's error, if any.
func (m *Model) EmbedTexts(texts []string) ([][]float32, error) {
	ids, eos := m.Tokenize(texts)
	m.txtMu.Lock()
	defer m.txtMu.Unlock()
	if m.txtExec == nil {
		b, err := engine.Backend()
		if err != nil {
			return nil, fmt.Errorf("tinyclip: %w", err)
		}
		e, err := context.NewExec(b, m.ctx.Reuse(), func(ctx *context.Context, ids, eos *graph.Node) *graph.Node {
			return TextGraph(ctx.In(modelScope), m.cfg, ids, eos)
		})
		if err != nil {
			return nil, fmt.Errorf("tinyclip: build text graph: %w", err)
		}
		m.txtExec = e
	}
	L, dim := m.cfg.Text.Length, m.cfg.Dim
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += TextBatch {
		end := min(start+TextBatch, len(texts))
		bi := make([]int32, TextBatch*L)
		be := make([]int32, TextBatch)
		copy(bi, ids[start*L:end*L])
		copy(be, eos[start:end])
		res, err := m.txtExec.Exec(tensors.FromFlatDataAndDimensions(bi, TextBatch, L), be)
		if err != nil {
			return nil, fmt.Errorf("tinyclip: run text graph: %w", err)
		}
		flat, err := tensors.CopyFlatData[float32](res[0])
		res[0].FinalizeAll()
		if err != nil {
			return nil, fmt.Errorf("tinyclip: %w", err)
		}
		for i := range end - start {
			out = append(out, flat[i*dim:(i+1)*dim:(i+1)*dim])
		}
	}
	return out, nil
}

// Tokenize returns the fitted token ids of texts, flat [len(texts), Length], and the EOS
// position of each.
func (m *Model) Tokenize(texts []string) (ids, eos []int32) {
	return tokenize(m.tok, texts, m.cfg.Text.Length)
}

func tokenize(tok *text.WordTokenizer, texts []string, length int) (ids, eos []int32) {
	ids = make([]int32, 0, len(texts)*length)
	eos = make([]int32, len(texts))
	for i, t := range texts {
		fitted, e, _ := text.Fit(tok.Encode(t).IDs, length, tok.EOS(), tok.Pad())
		ids = append(ids, fitted...)
		eos[i] = int32(e)
	}
	return ids, eos
}

// ClassPrompt is the prompt of class-word retrieval: "a photo of a {class}.".
func ClassPrompt(class string) string { return "a photo of a " + class + "." }

// Classify returns, for each image, the index into classes of the class whose ClassPrompt is
// most similar to the image — the prompt-fidelity check of generated images. It returns an error
// if classes is empty or embedding fails.
func (m *Model) Classify(images []image.Image, classes []string) ([]int, error) {
	if len(classes) == 0 {
		return nil, fmt.Errorf("tinyclip.Classify: no classes")
	}
	prompts := make([]string, len(classes))
	for i, c := range classes {
		prompts[i] = ClassPrompt(c)
	}
	tv, err := m.EmbedTexts(prompts)
	if err != nil {
		return nil, err
	}
	iv, err := m.EmbedImages(images)
	if err != nil {
		return nil, err
	}
	out := make([]int, len(iv))
	for i, v := range iv {
		out[i] = argmaxCos(v, tv)
	}
	return out, nil
}

// argmaxCos returns the index of the candidate with the largest dot product with v.
func argmaxCos(v []float32, cands [][]float32) int {
	best, bi := -2.0, 0
	for j, c := range cands {
		if s := tinyface.Cosine(v, c); s > best {
			best, bi = s, j
		}
	}
	return bi
}

// formatName is the format of a saved model's config file.
const formatName = "cocoflow.tinyclip/v1"

type savedModel struct {
	Format string            `json:"format"`
	Config Config            `json:"config"`
	Meta   map[string]string `json:"meta,omitempty"`
}

// Save writes the model to dir (created if needed): tinyface.ConfigFile with the architecture and
// Meta, and the weights as an engine checkpoint, each atomically. It returns an error naming the
// file that failed.
func (m *Model) Save(dir string) error {
	return tinyface.SaveModel(dir, formatName, savedModel{Format: formatName, Config: m.cfg, Meta: m.Meta}, m.ctx, m.Meta)
}

// Load reads a model written by Save from dir. It returns an error naming the file and what was
// wrong: missing files, another format, an invalid config, weights that do not fit it, or a
// tokenizer that does not match the model's vocabulary.
func Load(dir string) (*Model, error) { return LoadFrom(os.DirFS(dir), dir) }

// LoadFrom is Load for a model saved in the root of fsys (an embedded weights folder, say);
// where names that root in errors.
func LoadFrom(fsys fs.FS, where string) (*Model, error) {
	var s savedModel
	ctx, err := tinyface.LoadModel(fsys, where, formatName, &s, func() error { return s.Config.Validate() })
	if err != nil {
		return nil, err
	}
	if err := tinyface.CheckVariables(ctx, func(c *context.Context, g *graph.Graph) {
		cfg := s.Config
		ImageGraph(c.In(modelScope), cfg, graph.Zeros(g, shapes.Make(tinyface.DType, 1, cfg.Image.Tokens(), cfg.Image.TokenDim())))
		TextGraph(c.In(modelScope), cfg, graph.Zeros(g, shapes.Make(dtypes.Int32, 1, cfg.Text.Length)), graph.Zeros(g, shapes.Make(dtypes.Int32, 1)))
		LogitScale(c.In(modelScope), g)
	}); err != nil {
		return nil, fmt.Errorf("tinyclip.Load: %s: %w", where, err)
	}
	return newModel(s.Config, ctx, s.Meta)
}
