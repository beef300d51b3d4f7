package cocoins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// Triplet is one training example (paper §3.3, "Constructing Triplets"): an image latent x
// with its subject mask m and two different captions of it, P1 and P2, whose concept words
// sit at token positions I and J.
type Triplet struct {
	ID     string    // names the triplet in errors
	Latent []float32 // x, the generator's LatentShape values
	Mask   []float32 // m at latent resolution, values in [0, 1]
	P1, P2 []int32   // token ids, BOS … EOS, unpadded, with room for one more token
	I, J   int       // concept positions in P1 and P2
}

// TrainData is what Train draws its batches from.
type TrainData struct {
	Triplets []Triplet
	// MaskShape is one mask's shape as it broadcasts over a latent: [h, w, 1] for HWC latents
	// (tiny), [1, h, w] for CHW ones (SDXL).
	MaskShape []int
}

// TrainOptions configure Train. Every field means what it says, zero included; the train
// stage declares the defaults.
type TrainOptions struct {
	Loss Options // the objective, its ablations and the λ_neg schedule
	// Mapper is f's architecture (code size, layers, width, activation, rescale, std scale);
	// Train fills its output sizes and vocabulary statistics from the generator.
	Mapper       MapperConfig
	Steps        int     // K, optimizer steps of the whole run (>= 1)
	Batch        int     // triplets per step (>= 1)
	LearningRate float64 // Adam's learning rate
	GradClip     float64 // clip the global gradient norm (0: no clipping)
	TMin, TMax   int     // training timesteps are drawn uniformly from [TMin, TMax]
	// Seed seeds f's initialisation; step k's draws (triplets, z, ε, t) come from (Seed, k)
	// alone, so a resumed run trains on exactly the batches an uninterrupted one would.
	Seed            uint64
	CheckpointDir   string            // where checkpoints go ("" for none); a run resumes from it
	CheckpointEvery int               // steps between checkpoints (0: only at the end)
	CheckpointMeta  map[string]string // stored with every checkpoint; one with other values is not resumed
}

// StepLog is what Train reports after every step: the terms of the loss (each averaged over
// the batch), λ_neg and the gradient norm before clipping.
type StepLog struct {
	Step                             int
	Loss, Con, Pos, Neg, Plain, Back float64 // Terms
	LambdaNeg, GradNorm              float64
	Elapsed                          time.Duration // since the (re)start
}

// Trained is a mapping network fitted by Train.
type Trained struct {
	Mapper MapperConfig // f's complete config: output sizes and vocabulary statistics filled
	// Config and Weights are MarshalMapper's bytes, which LoadMapper reads back.
	Config, Weights []byte
	// FrozenDigest is the SHA-256 of the generator's weights, the same before and after
	// training (Train checks it).
	FrozenDigest string
}

// Train fits the mapping network f through the frozen generator g (eqs. 3–9): each step draws
// Batch triplets with codes z1, z2, noises ε1, ε2 and a timestep per triplet, computes Loss,
// clips the gradient and applies an Adam update to f's variables alone. It resumes from
// opt.CheckpointDir when that holds a checkpoint with the same CheckpointMeta. report (may be
// nil) gets every step. It returns an error naming the bad option or triplet, a failing step,
// or a generator whose weights changed; when runCtx is cancelled, the checkpoint is written and
// runCtx's error returned.
func Train(runCtx context.Context, g family.Generator, data TrainData, opt TrainOptions, report func(StepLog)) (*Trained, error) {
	info := g.Info()
	if err := opt.validate(info, data); err != nil {
		return nil, err
	}
	mcfg := opt.Mapper
	mcfg.OutDims, mcfg.VocabMean, mcfg.VocabStd = nil, nil, nil
	for k, enc := range info.Encoders {
		mcfg.OutDims = append(mcfg.OutDims, enc.Dim)
		if mcfg.Rescale == "vocab" {
			mean, std := g.VocabStats(k)
			mcfg.VocabMean = append(mcfg.VocabMean, mean)
			mcfg.VocabStd = append(mcfg.VocabStd, std)
		}
	}
	if err := mcfg.Validate(); err != nil {
		return nil, err
	}
	sched, err := diffusion.NewSchedule(info.Schedule, info.TrainSteps)
	if err != nil {
		return nil, err
	}

	ctx := g.Context()
	generatorVars := variableNames(ctx)
	if err := ctx.SetRNGStateFromSeed(int64(opt.Seed)); err != nil {
		return nil, err
	}
	frozenBefore, err := frozenDigest(ctx, generatorVars)
	if err != nil {
		return nil, err
	}
	b := &batcher{data: data, opt: opt, sched: sched, latent: info.LatentShape, maxLen: info.Encoders[0].MaxLength, pad: g.Tokenizer().Pad()}
	step := func(ctx *mlctx.Context, in []*Node) []*Node {
		terms := Loss(ctx, g, mcfg, batchOf(in), opt.Loss)
		grads, norm := engine.ClipGlobalNorm(ctx.BuildTrainableVariablesGradientsGraph(terms.Loss), opt.GradClip)
		adam := optimizers.Adam().LearningRate(opt.LearningRate).Done()
		adam.(interface {
			UpdateGraphWithGradients(*mlctx.Context, []*Node, dtypes.DType)
		}).UpdateGraphWithGradients(ctx, grads, terms.Loss.DType())
		return []*Node{terms.Loss, terms.Con, terms.Pos, terms.Neg, terms.Back, norm, terms.Plain, terms.LambdaNeg}
	}
	var reportFn engine.ReportFunc
	if report != nil {
		reportFn = func(k int, out []float64, elapsed time.Duration) {
			report(StepLog{Step: k, Loss: out[0], Con: out[1], Pos: out[2], Neg: out[3], Back: out[4], GradNorm: out[5],
				Plain: out[6], LambdaNeg: out[7], Elapsed: elapsed})
		}
	}
	err = engine.Fit(runCtx, ctx, step, b.inputs, engine.FitOptions{
		Steps: opt.Steps, CheckpointDir: opt.CheckpointDir, CheckpointEvery: opt.CheckpointEvery, Meta: opt.CheckpointMeta,
	}, reportFn)
	if err != nil {
		return nil, err
	}
	frozenAfter, err := frozenDigest(ctx, generatorVars)
	if err != nil {
		return nil, err
	}
	if frozenAfter != frozenBefore {
		return nil, fmt.Errorf("the generator's weights changed during training: only the mapping network may train")
	}
	config, weights, err := MarshalMapper(ctx, mcfg)
	if err != nil {
		return nil, err
	}
	return &Trained{Mapper: mcfg, Config: config, Weights: weights, FrozenDigest: frozenAfter}, nil
}

// validate checks the options against the generator and the data's shapes.
func (o TrainOptions) validate(info family.Info, data TrainData) error {
	if err := o.Loss.Validate(); err != nil {
		return err
	}
	switch {
	case o.Steps < 1 || o.Batch < 1:
		return fmt.Errorf("cocoins: train: steps %d and batch %d must be ≥ 1", o.Steps, o.Batch)
	case o.TMin < 0 || o.TMin > o.TMax:
		return fmt.Errorf("cocoins: train: timesteps [%d, %d] are not a range from 0", o.TMin, o.TMax)
	case o.TMax >= info.TrainSteps:
		return fmt.Errorf("t_max %d must be below the generator's %d training timesteps", o.TMax, info.TrainSteps)
	case len(info.Encoders) == 0:
		return fmt.Errorf("cocoins: train: generator %q has no text encoder", info.Name)
	case len(data.Triplets) == 0:
		return fmt.Errorf("cocoins: train: no triplets")
	}
	size, mask := 1, 1
	for _, d := range info.LatentShape {
		size *= d
	}
	for _, d := range data.MaskShape {
		mask *= d
	}
	for _, tr := range data.Triplets {
		if len(tr.Latent) != size || len(tr.Mask) != mask {
			return fmt.Errorf("cocoins: train: triplet %s: latent of %d values and mask of %d, want %d (%v) and %d (%v)",
				tr.ID, len(tr.Latent), len(tr.Mask), size, info.LatentShape, mask, data.MaskShape)
		}
	}
	return nil
}

// batcher makes the inputs of step k from (Seed, k) alone.
type batcher struct {
	data   TrainData
	opt    TrainOptions
	sched  *diffusion.Schedule
	latent []int // latent shape
	maxLen int
	pad    int32
}

// inputs draws step k's triplets, timesteps, codes and noises and returns them in graph order.
func (b *batcher) inputs(step int) ([]any, error) {
	B, L, c := b.opt.Batch, b.maxLen, b.opt.Mapper.CodeDim
	rows := b.data.Triplets
	r := rand.New(rand.NewPCG(b.opt.Seed, uint64(step)))
	size := len(rows[0].Latent)
	x := make([]float32, 0, B*size)
	mask := make([]float32, 0, B*len(rows[0].Mask))
	caps := [2]*Captions{NewCaptions(L, b.pad), NewCaptions(L, b.pad)}
	ts := make([]int32, B)
	sa, sb := make([]float32, B), make([]float32, B)
	for i := range B {
		row := rows[r.IntN(len(rows))]
		x = append(x, row.Latent...)
		mask = append(mask, row.Mask...)
		if err := caps[0].Add(row.P1, row.I); err != nil {
			return nil, fmt.Errorf("triplet %s: %w", row.ID, err)
		}
		if err := caps[1].Add(row.P2, row.J); err != nil {
			return nil, fmt.Errorf("triplet %s: %w", row.ID, err)
		}
		t := b.opt.TMin + r.IntN(b.opt.TMax-b.opt.TMin+1)
		abar := b.sched.AlphaBar(t)
		ts[i], sa[i], sb[i] = int32(t), float32(math.Sqrt(abar)), float32(math.Sqrt(1-abar))
	}
	normal := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	lat := append([]int{B}, b.latent...)
	var in Inputs[any]
	in.X = tensors.FromFlatDataAndDimensions(x, lat...)
	in.Mask = tensors.FromFlatDataAndDimensions(mask, append([]int{B}, b.data.MaskShape...)...)
	in.IDs1, in.Ins1, in.EOS1, in.EOS1w = caps[0].Tensors()
	in.IDs2, in.Ins2, in.EOS2, in.EOS2w = caps[1].Tensors()
	// The draws after the loop come in this order: z1, z2, ε1, ε2.
	in.Z1 = tensors.FromFlatDataAndDimensions(normal(B*c), B, c)
	in.Z2 = tensors.FromFlatDataAndDimensions(normal(B*c), B, c)
	in.Eps1 = tensors.FromFlatDataAndDimensions(normal(B*size), lat...)
	in.Eps2 = tensors.FromFlatDataAndDimensions(normal(B*size), lat...)
	in.T, in.SqrtA, in.SqrtB = ts, sa, sb
	in.LambdaNeg = float32(b.opt.Loss.LambdaNeg(step, b.opt.Steps))
	return in.list(), nil
}

// frozenDigest hashes the variables named in names (the generator's weights, listed before
// training added the mapper, optimizer and RNG state).
func frozenDigest(ctx *mlctx.Context, names []string) (string, error) {
	h := sha256.New()
	for _, name := range names {
		i := strings.LastIndex(name, mlctx.ScopeSeparator)
		scope := name[:i]
		if scope == "" {
			scope = mlctx.ScopeSeparator
		}
		v := ctx.InspectVariable(scope, name[i+1:])
		if v == nil {
			return "", fmt.Errorf("generator variable %s disappeared", name)
		}
		t, err := v.Value()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\n", name)
		t.ConstBytes(func(b []byte) { h.Write(b) })
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// variableNames lists the scoped names of ctx's variables, sorted.
func variableNames(ctx *mlctx.Context) []string {
	var names []string
	for v := range ctx.IterVariables() {
		names = append(names, v.ScopeAndName())
	}
	sort.Strings(names)
	return names
}
