package tinyface

import (
	stdctx "context"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// Data is a labelled set of face images: Labels[i] is the identity of Images[i] (any integers;
// they are mapped to classes 0..C-1 in increasing order).
type Data struct {
	Images []image.Image
	Labels []int
}

// Options configure Train. DefaultOptions gives the tiny world's values.
type Options struct {
	Config          Config  `json:"config"`           // architecture
	Steps           int     `json:"steps"`            // optimizer steps
	BatchSize       int     `json:"batch_size"`       // images per step, drawn uniformly with replacement
	LearningRate    float64 `json:"learning_rate"`    // peak Adam learning rate
	WarmupSteps     int     `json:"warmup_steps"`     // linear warm-up, then cosine decay to 5% of the peak
	Scale           float64 `json:"scale"`            // ArcFace s
	Margin          float64 `json:"margin"`           // ArcFace m (radians)
	MarginWarmup    int     `json:"margin_warmup"`    // steps over which m grows linearly from 0 (ArcFace from scratch stalls otherwise)
	Augment         Augment `json:"augment"`          // light augmentation of training images
	Seed            uint64  `json:"seed"`             // initialisation and batch draws
	CheckpointDir   string  `json:"checkpoint_dir"`   // training checkpoints (resume); "" for none
	CheckpointEvery int     `json:"checkpoint_every"` // steps between checkpoints (0: only at the end)
}

// DefaultOptions returns the options of the tiny world's identity encoder.
func DefaultOptions() Options {
	return Options{
		Config: DefaultConfig(), Steps: 1500, BatchSize: 64, LearningRate: 2e-3, WarmupSteps: 50,
		Scale: 30, Margin: 0.3, MarginWarmup: 300, Augment: Augment{Shift: 2, Brightness: 0.15, Flip: true}, Seed: 1,
	}
}

// Validate returns an error naming the first invalid option, or nil.
func (o Options) Validate() error {
	if err := o.Config.Validate(); err != nil {
		return err
	}
	switch {
	case o.Steps < 1:
		return fmt.Errorf("tinyface options: steps %d: want at least 1", o.Steps)
	case o.BatchSize < 2:
		return fmt.Errorf("tinyface options: batch_size %d: want at least 2", o.BatchSize)
	case !(o.LearningRate > 0):
		return fmt.Errorf("tinyface options: learning_rate %g: want > 0", o.LearningRate)
	case o.WarmupSteps < 0:
		return fmt.Errorf("tinyface options: warmup_steps %d: want at least 0", o.WarmupSteps)
	case !(o.Scale > 0):
		return fmt.Errorf("tinyface options: scale %g: want > 0", o.Scale)
	case o.Margin < 0 || o.Margin >= math.Pi/2:
		return fmt.Errorf("tinyface options: margin %g: want in [0, π/2)", o.Margin)
	case o.Augment.Shift < 0 || o.Augment.Shift > ImageSize/4:
		return fmt.Errorf("tinyface options: augment.shift %d: want in [0, %d]", o.Augment.Shift, ImageSize/4)
	case o.Augment.Brightness < 0 || o.Augment.Brightness >= 1:
		return fmt.Errorf("tinyface options: augment.brightness %g: want in [0, 1)", o.Augment.Brightness)
	case o.MarginWarmup < 0:
		return fmt.Errorf("tinyface options: margin_warmup %d: want at least 0", o.MarginWarmup)
	case o.CheckpointEvery < 0:
		return fmt.Errorf("tinyface options: checkpoint_every %d: want at least 0", o.CheckpointEvery)
	}
	return nil
}

// Progress is what Train reports after each step.
type Progress struct {
	Step, Steps int           // steps done (1-based) and the run's total
	Loss        float64       // ArcFace loss of the step's batch
	Accuracy    float64       // share of the batch whose nearest class center is its own
	Elapsed     time.Duration // since this call started training (resumed steps excluded)
}

// Train trains an identity encoder on data with the ArcFace loss and returns it. With
// CheckpointDir set it resumes from a checkpoint there (same data and options give the same
// result as an uninterrupted run) and checkpoints every CheckpointEvery steps; cancelling ctx
// checkpoints and returns ctx's error. report, when not nil, is called after every step. It
// returns an error for invalid options or data (naming the option or the image), or when the
// backend fails.
func Train(ctx stdctx.Context, data Data, opt Options, report func(Progress)) (*Model, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if len(data.Images) != len(data.Labels) {
		return nil, fmt.Errorf("tinyface.Train: %d images but %d labels", len(data.Images), len(data.Labels))
	}
	classes := slices.Sorted(slices.Values(data.Labels))
	classes = slices.Compact(classes)
	if len(classes) < 2 {
		return nil, fmt.Errorf("tinyface.Train: %d identities, want at least 2", len(classes))
	}
	pixels := make([][]float32, len(data.Images))
	labels := make([]int32, len(data.Images))
	for i, img := range data.Images {
		p, err := Pixels(img)
		if err != nil {
			return nil, fmt.Errorf("tinyface.Train: image %d: %w", i, err)
		}
		pixels[i] = p
		c, _ := slices.BinarySearch(classes, data.Labels[i])
		labels[i] = int32(c)
	}

	mctx := context.New()
	if err := mctx.SetRNGStateFromSeed(int64(opt.Seed)); err != nil {
		return nil, fmt.Errorf("tinyface.Train: %w", err)
	}
	cfg := opt.Config
	step := func(ctx *context.Context, tokens, lab *graph.Node) (loss, acc *graph.Node) {
		g := tokens.Graph()
		emb := EmbedGraph(ctx.In(modelScope), cfg, tokens)
		centers := Embedding(ctx.In("arcface"), "centers", len(classes), cfg.Dim, g)
		loss, cos := ArcFaceLoss(emb, centers, lab, opt.Scale, marginAt(ctx, g, opt.Margin, opt.MarginWarmup))
		pred := graph.ArgMax(cos, -1, lab.DType())
		acc = graph.ReduceAllMean(graph.ConvertDType(graph.Equal(pred, lab), DType))
		Schedule(ctx, g, opt.LearningRate, opt.WarmupSteps, opt.Steps)
		optimizers.Adam().LearningRate(opt.LearningRate).Done().UpdateGraph(ctx, g, loss)
		return loss, acc
	}
	optJSON, _ := json.Marshal(opt)
	meta := map[string]string{"options": string(optJSON), "classes": strconv.Itoa(len(classes)), "images": strconv.Itoa(len(pixels))}
	next := func(k int) ([]any, error) {
		r := rand.New(rand.NewPCG(opt.Seed, uint64(k)))
		tok := make([]float32, 0, opt.BatchSize*cfg.Tower.Tokens()*cfg.Tower.TokenDim())
		lab := make([]int32, opt.BatchSize)
		for i := range opt.BatchSize {
			j := r.IntN(len(pixels))
			tok = Patchify(tok, opt.Augment.Apply(r, pixels[j]), cfg.Tower)
			lab[i] = labels[j]
		}
		return []any{tensors.FromFlatDataAndDimensions(tok, opt.BatchSize, cfg.Tower.Tokens(), cfg.Tower.TokenDim()), lab}, nil
	}
	var rep engine.ReportFunc
	if report != nil {
		rep = func(k int, out []float64, el time.Duration) {
			report(Progress{Step: k + 1, Steps: opt.Steps, Loss: out[0], Accuracy: out[1], Elapsed: el})
		}
	}
	fo := engine.FitOptions{Steps: opt.Steps, CheckpointDir: opt.CheckpointDir, CheckpointEvery: opt.CheckpointEvery, Meta: meta}
	if err := engine.Fit(ctx, mctx.Checked(false), step, next, fo, rep); err != nil {
		return nil, fmt.Errorf("tinyface.Train: %w", err)
	}
	mc, err := ExtractScope(mctx, modelScope)
	if err != nil {
		return nil, fmt.Errorf("tinyface.Train: %w", err)
	}
	return newModel(cfg, mc, meta), nil
}

// marginAt is the ArcFace margin of the current step: m·min(1, (k+1)/warmup).
func marginAt(ctx *context.Context, g *graph.Graph, m float64, warmup int) *graph.Node {
	k := graph.ConvertDType(optimizers.GetGlobalStepVar(ctx).ValueGraph(g), DType)
	return graph.MulScalar(graph.MinScalar(graph.DivScalar(graph.AddScalar(k, 1), float64(max(warmup, 1))), 1), m)
}

// Schedule sets the optimizer's learning rate in graph g from the global step k (before this
// step's increment): a linear warm-up over warmup steps to peak, then a cosine decay to 5% of
// peak at step total. Call it before the optimizer's UpdateGraph.
func Schedule(ctx *context.Context, g *graph.Graph, peak float64, warmup, total int) {
	k := graph.ConvertDType(optimizers.GetGlobalStepVar(ctx).ValueGraph(g), DType)
	warm := graph.MinScalar(graph.DivScalar(graph.AddScalar(k, 1), float64(max(warmup, 1))), 1)
	frac := graph.ClipScalar(graph.DivScalar(graph.SubScalar(k, float64(warmup)), float64(max(total-warmup, 1))), 0, 1)
	cosine := graph.AddScalar(graph.MulScalar(graph.AddScalar(graph.Cos(graph.MulScalar(frac, math.Pi)), 1), 0.475), 0.05)
	lr := graph.MulScalar(graph.Mul(warm, cosine), peak)
	optimizers.LearningRateVarWithValue(ctx, DType, peak).SetValueGraph(lr)
}

// ExtractScope returns a new context holding copies of ctx's variables under the top-level scope
// (so a trained model leaves optimizer state and training heads behind). It returns an error if
// there are none or a value cannot be read.
func ExtractScope(ctx *context.Context, scope string) (*context.Context, error) {
	out := context.New()
	prefix := context.ScopeSeparator + scope
	n := 0
	for v := range ctx.IterVariables() {
		if v.Scope() != prefix && !strings.HasPrefix(v.Scope(), prefix+context.ScopeSeparator) {
			continue
		}
		t, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.ScopeAndName(), err)
		}
		c, err := t.LocalClone()
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.ScopeAndName(), err)
		}
		out.InAbsPath(v.Scope()).Checked(false).VariableWithValue(v.Name(), c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("no variables under scope %q", prefix)
	}
	return out, nil
}
