package tiny

import (
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
)

// FamilyName is the name the tiny family is registered under.
const FamilyName = "tiny"

// Scopes of the generator's variables in its context.
const (
	textScope = "/text" // token and position embeddings, text transformer
	ditScope  = "/dit"  // denoiser
)

// tokenCountsName is a non-trainable [VocabSize] variable in textScope: how often each token
// occurred in the pretraining captions (all zeros for an untrained generator). VocabStats uses it
// to leave out rows that training never touched.
const tokenCountsName = "token_counts"

// ErrNoDefaultWeights is returned by LoadDefault when the build carries no committed weights.
var ErrNoDefaultWeights = errors.New("tiny generator weights not found: run experiments/tiny/pretrain.yaml")

// defaultWeights holds the committed default generator (config.json and checkpoint.bin) when
// the lead has filled models/family/tiny/weights/; otherwise only its README.
//
//go:embed weights
var defaultWeights embed.FS

// Generator is the tiny family's text-to-image latent diffusion model. It implements
// family.Generator: Embed, Encode and Denoise build into the caller's graph with the weights in
// Context(), which are frozen (non-trainable) once loaded.
type Generator struct {
	cfg Config
	m   model
	ctx *context.Context
	tok *text.WordTokenizer
	ae  Latent

	statsOnce           sync.Once
	vocabMean, vocabStd []float32
}

var _ family.Generator = (*Generator)(nil)

// New returns a generator with random initial weights for cfg; its variables are trainable
// (pretraining starts from it). It returns an error if cfg is invalid, does not match the tiny
// tokenizer's vocabulary or the patch latent, or the graph cannot be built.
func New(cfg Config) (*Generator, error) {
	g, err := newShell(cfg)
	if err != nil {
		return nil, err
	}
	if err := g.build(g.ctx.Checked(false)); err != nil {
		return nil, fmt.Errorf("tiny: initialising weights: %w", err)
	}
	g.ctx.InAbsPath(textScope).Checked(false).VariableWithValue(tokenCountsName, make([]float32, cfg.VocabSize)).SetTrainable(false)
	return g, nil
}

// newShell checks cfg against the tokenizer and latent and returns a generator with an empty
// context.
func newShell(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tok, err := Tokenizer()
	if err != nil {
		return nil, err
	}
	if cfg.VocabSize != tok.VocabSize() {
		return nil, fmt.Errorf("tiny config: vocab_size = %d, but the tiny tokenizer has %d ids", cfg.VocabSize, tok.VocabSize())
	}
	if cfg.MaxLength != tok.MaxLength() {
		return nil, fmt.Errorf("tiny config: max_length = %d, but the tiny tokenizer pads to %d", cfg.MaxLength, tok.MaxLength())
	}
	f := cfg.ImageSize / cfg.LatentShape[0]
	ae := Latent{F: f, Mean: DefaultLatent.Mean, Std: DefaultLatent.Std}
	if f < 1 || cfg.ImageSize%f != 0 || !slices.Equal(ae.Shape(cfg.ImageSize), cfg.LatentShape) {
		return nil, fmt.Errorf("tiny config: latent_shape %v is not the patch latent of a %dx%d image (want [S/F, S/F, F*F*3])", cfg.LatentShape, cfg.ImageSize, cfg.ImageSize)
	}
	m, err := newModel(cfg)
	if err != nil {
		return nil, err
	}
	return &Generator{cfg: cfg, m: m, ctx: context.New(), tok: tok, ae: ae}, nil
}

// build constructs (without compiling) a graph through the whole model on ctx, which creates
// missing variables when ctx allows it and checks shapes of existing ones.
func (g *Generator) build(ctx *context.Context) error {
	b, err := engine.Backend()
	if err != nil {
		return err
	}
	gr := graph.NewGraph(b, "tiny_build")
	defer gr.Finalize()
	return catch(func() {
		n := g.cfg.LatentShape
		ids := graph.Parameter(gr, "ids", shapes.Make(dtypes.Int32, 1, g.cfg.MaxLength))
		eos := graph.Parameter(gr, "eos", shapes.Make(dtypes.Int32, 1))
		xt := graph.Parameter(gr, "xt", shapes.Make(dtypes.Float32, 1, n[0], n[1], n[2]))
		t := graph.Parameter(gr, "t", shapes.Make(dtypes.Int32, 1))
		states, pooled := g.m.encode(ctx, g.m.embed(ctx, ids), eos)
		g.m.denoise(ctx, xt, t, states, pooled, nil)
	})
}

// Load reads a generator directory written by Save (config.json and checkpoint.bin) and
// freezes its weights. It returns an error naming the file when either is missing or corrupt,
// or when the checkpoint does not hold exactly the variables the config describes.
func Load(dir string) (*Generator, error) {
	g, _, err := LoadSum(dir)
	return g, err
}

// CheckDir tells whether dir holds a generator Load can read: "" (the embedded default) or a
// folder with a valid config.json and a checkpoint.bin, without reading the weights.
func CheckDir(dir string) error {
	if dir == "" {
		return nil
	}
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("tiny: want a generator folder (config.json, checkpoint.bin) as Save writes it: %w", err)
	}
	if _, err := ParseConfig(path, data); err != nil {
		return err
	}
	ckpt := filepath.Join(dir, engine.CheckpointFile)
	if fi, err := os.Stat(ckpt); err != nil {
		return fmt.Errorf("tiny: %w", err)
	} else if !fi.Mode().IsRegular() || fi.Size() == 0 {
		return fmt.Errorf("tiny: %s is empty or not a file", ckpt)
	}
	return nil
}

// LoadSum is Load that also returns the SHA-256 of checkpoint.bin, for runs that record which
// weights they started from.
func LoadSum(dir string) (*Generator, [sha256.Size]byte, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("tiny: %w", err)
	}
	ckpt := filepath.Join(dir, engine.CheckpointFile)
	raw, err := os.ReadFile(ckpt)
	if err != nil {
		return nil, [sha256.Size]byte{}, fmt.Errorf("tiny: %w", err)
	}
	g, err := LoadBytes(data, raw, path, ckpt)
	return g, sha256.Sum256(raw), err
}

// LoadBytes is Load for the contents of config.json (named path in errors) and checkpoint.bin
// (named ckpt), for callers that already hold them (the embedded defaults).
func LoadBytes(data, raw []byte, path, ckpt string) (*Generator, error) {
	cfg, err := ParseConfig(path, data)
	if err != nil {
		return nil, err
	}
	ref, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	loaded := context.New()
	if _, err := engine.LoadBytes(loaded, raw, ckpt); err != nil {
		return nil, err
	}
	want := map[string]shapes.Shape{}
	for v := range ref.ctx.IterVariables() {
		want[v.ScopeAndName()] = v.Shape()
		lv := loaded.GetVariableByScopeAndName(v.Scope(), v.Name())
		if lv == nil {
			return nil, fmt.Errorf("%s: variable %s is missing (config %s describes it)", ckpt, v.ScopeAndName(), path)
		}
		if !lv.Shape().Equal(v.Shape()) {
			return nil, fmt.Errorf("%s: variable %s has shape %s, want %s from %s", ckpt, v.ScopeAndName(), lv.Shape(), v.Shape(), path)
		}
	}
	for v := range loaded.IterVariables() {
		if _, ok := want[v.ScopeAndName()]; !ok {
			return nil, fmt.Errorf("%s: unexpected variable %s (not in the architecture of %s)", ckpt, v.ScopeAndName(), path)
		}
	}
	gen := ref
	gen.ctx = loaded
	gen.Freeze()
	return gen, nil
}

// LoadDefault loads the committed default generator embedded from models/family/tiny/weights/. It
// returns ErrNoDefaultWeights when the build has none.
func LoadDefault() (*Generator, error) {
	g, err := engine.LoadEmbedded(defaultWeights, ConfigFile, ErrNoDefaultWeights, loadFS)
	if err != nil && !errors.Is(err, ErrNoDefaultWeights) {
		return nil, fmt.Errorf("tiny: %w", err)
	}
	return g, err
}

// loadFS is LoadBytes for a generator saved in the root of fsys; where names fsys in errors.
func loadFS(fsys fs.FS, where string) (*Generator, error) {
	data, err := fs.ReadFile(fsys, ConfigFile)
	if err != nil {
		return nil, err
	}
	raw, err := fs.ReadFile(fsys, engine.CheckpointFile)
	if err != nil {
		return nil, err
	}
	return LoadBytes(data, raw, path.Join(where, ConfigFile), path.Join(where, engine.CheckpointFile))
}

// loadFamilyGenerator is the family Spec's loader: dir "" means the embedded default.
func loadFamilyGenerator(dir string) (family.Generator, error) {
	if dir == "" {
		return LoadDefault()
	}
	return Load(dir)
}

// Save writes the generator to dir as config.json and checkpoint.bin (only the generator's own
// variables, whatever else a caller added to its context), creating dir if needed. It returns an
// error naming the file that could not be written.
func (g *Generator) Save(dir string) error {
	out := context.New()
	for v := range g.ctx.IterVariables() {
		if !isModelScope(v.Scope()) {
			continue
		}
		val, err := v.Value()
		if err != nil {
			return fmt.Errorf("tiny: save: variable %s: %w", v.ScopeAndName(), err)
		}
		out.InAbsPath(v.Scope()).Checked(false).VariableWithValue(v.Name(), val).SetTrainable(false)
	}
	if err := WriteConfig(dir, g.cfg); err != nil {
		return err
	}
	return engine.Save(out, dir, map[string]string{"family": FamilyName})
}

// isModelScope reports whether a variable scope belongs to the generator's weights.
func isModelScope(scope string) bool {
	return inScope(scope, textScope) || inScope(scope, ditScope)
}

// inScope reports whether scope is root or lies under it.
func inScope(scope, root string) bool {
	return scope == root || strings.HasPrefix(scope, root+context.ScopeSeparator)
}

// Freeze marks every weight of the generator non-trainable, so optimizers built on a context
// that holds it leave it alone.
func (g *Generator) Freeze() {
	for v := range g.ctx.IterVariables() {
		if isModelScope(v.Scope()) {
			v.SetTrainable(false)
		}
	}
}

// Config returns the generator's architecture.
func (g *Generator) Config() Config { return g.cfg }

// Info describes the generator: one text encoder "text" of TextWidth, ε-prediction on the
// Config's schedule.
func (g *Generator) Info() family.Info {
	return family.Info{
		Name:        FamilyName,
		Encoders:    []family.TextEncoder{{Name: "text", Dim: g.cfg.TextWidth, MaxLength: g.cfg.MaxLength}},
		LatentShape: slices.Clone(g.cfg.LatentShape),
		ImageSize:   g.cfg.ImageSize,
		Schedule:    g.cfg.Schedule,
		TrainSteps:  g.cfg.TrainSteps,
		Prediction:  "epsilon",
	}
}

// Tokenizer returns the tiny word tokenizer.
func (g *Generator) Tokenizer() text.Tokenizer { return g.tok }

// Autoencoder returns the patch latent transform.
func (g *Generator) Autoencoder() family.Autoencoder { return g.ae }

// Context returns the context that holds the generator's weights under "/text" and "/dit".
func (g *Generator) Context() *context.Context { return g.ctx }

// VocabStats returns the per-dimension mean and standard deviation of the token embedding table
// of encoder 0 over the rows of real words: pad, BOS, EOS and unknown are left out, and so are
// words that never occurred in the pretraining captions (when the generator records any counts).
// It returns nil slices for k != 0.
func (g *Generator) VocabStats(k int) (mean, std []float32) {
	if k != 0 {
		return nil, nil
	}
	g.statsOnce.Do(func() { g.vocabMean, g.vocabStd = g.computeVocabStats() })
	return slices.Clone(g.vocabMean), slices.Clone(g.vocabStd)
}

func (g *Generator) computeVocabStats() (mean, std []float32) {
	table := g.ctx.GetVariableByScopeAndName(textScope, "tokens")
	if table == nil {
		return nil, nil
	}
	t, err := table.Value()
	if err != nil {
		return nil, nil
	}
	vals, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, nil
	}
	var counts []float32
	if cv := g.ctx.GetVariableByScopeAndName(textScope, tokenCountsName); cv != nil {
		if ct, err := cv.Value(); err == nil {
			counts, _ = tensors.CopyFlatData[float32](ct)
		}
	}
	seen := slices.ContainsFunc(counts, func(c float32) bool { return c > 0 })
	d := g.cfg.TextWidth
	var rows []int
	for id := int(g.tok.Unk()) + 1; id < g.cfg.VocabSize; id++ {
		if !seen || counts[id] > 0 {
			rows = append(rows, id)
		}
	}
	sum, sq := make([]float64, d), make([]float64, d)
	for _, r := range rows {
		for j := range d {
			v := float64(vals[r*d+j])
			sum[j] += v
			sq[j] += v * v
		}
	}
	mean, std = make([]float32, d), make([]float32, d)
	n := float64(len(rows))
	for j := range d {
		m := sum[j] / n
		mean[j] = float32(m)
		std[j] = float32(math.Sqrt(math.Max(sq[j]/n-m*m, 0)))
	}
	return mean, std
}

// root returns ctx at the root scope in checked reuse mode: the graph methods only read
// existing weights, and a missing one is an error.
func root(ctx *context.Context) *context.Context {
	return ctx.InAbsPath(context.RootScope).Checked(true).Reuse()
}

// Embed looks up the token embeddings of ids [B, L] (int32): one [B, L, TextWidth] node.
func (g *Generator) Embed(ctx *context.Context, ids *graph.Node) []*graph.Node {
	return []*graph.Node{g.m.embed(root(ctx), ids)}
}

// Encode runs the text encoder on embeds[0] [B, L <= MaxLength, TextWidth] (pseudo-words
// already inserted; position embeddings are added here) with EOS at eos [B] (int32). Like every
// GoMLX graph function it panics on bad shapes; the caller's Exec reports that as an error.
func (g *Generator) Encode(ctx *context.Context, embeds []*graph.Node, eos *graph.Node) family.Cond {
	if len(embeds) != 1 {
		panic(fmt.Errorf("tiny generator: Encode got %d embedding nodes, want 1 (one text encoder)", len(embeds)))
	}
	states, pooled := g.m.encode(root(ctx), embeds[0], eos)
	return family.Cond{States: states, Pooled: pooled}
}

// Denoise predicts the noise ε̂ in xt [B, H, W, C] at timesteps t [B] (int32) under cond.
func (g *Generator) Denoise(ctx *context.Context, xt, t *graph.Node, cond family.Cond) *graph.Node {
	return g.m.denoise(root(ctx), xt, t, cond.States, cond.Pooled, nil)
}

// catch runs fn and turns a panic (GoMLX's way of failing while building graphs) into an error.
func catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	fn()
	return nil
}
