package baselines

// DreamBooth (Ruiz et al. 2023) on a family generator: fine-tune the denoiser on one identity's
// images under a prompt with a rare token, "a [V] man", while a class-prior loss on images the
// frozen model drew for the class prompt "a man" keeps the class from collapsing onto the
// identity. The mechanism follows diffusers' examples/dreambooth/train_dreambooth.py with
// --with_prior_preservation: each step concatenates a batch of instance latents and one of class
// latents, runs the denoiser once on both, and minimises
//
//	L = ‖ε̂(x_t, t, c_inst) − y‖² (mean over the instance half)
//	  + λ_prior · ‖ε̂(x_t', t', c_class) − y'‖² (mean over the class half)
//
// Symbols → code:
//
//	[V]        DreamBoothOptions.Token, a word of the vocabulary the generator never saw
//	λ_prior    DreamBoothOptions.PriorWeight (diffusers' --prior_loss_weight, default 1)
//	y          the training target of the family: ε for ε-prediction, v = √ᾱ·ε − √(1−ᾱ)·x₀ for v
//	x_t        √ᾱ_t·x₀ + √(1−ᾱ_t)·ε, t uniform in [0, T) (DDPM noise schedule of the family)
//
// Departures, scaled to the tiny generator (0.6 M weights trained at lr 2e-3 instead of SD's
// 860 M at 1e-4): the learning rate is 1e-4 instead of 5e-6, with 150 steps of 4 + 4 latents
// instead of 400-800 of 1 + 1, and 32 class images instead of 100; everything else is
// diffusers' default: AdamW (β 0.9/0.999, weight decay 1e-2), gradient-norm clip 1, a
// constant learning rate, no SNR weighting, the text encoder frozen (--train_text_encoder off).
// The rare token is a vocabulary word with zero pretraining count ("patched", a pet-coat word
// of the synthfaces world that the human-only tiny world never uses), the tiny vocabulary's
// counterpart of "sks": its embedding is still the random initialisation.
//
// Measured on the committed tiny generator (BenchmarkDreamBoothIdentity, one synthfaces identity
// of 8 images): the identity binds weakly. The tiny identity encoder's mean cosine between the
// references and "a patched man is looking at the camera." images goes from 0.029 (original
// generator) to 0.069 after the default fine-tune; a 10x learning rate (0.062) or training the
// text encoder too for 300 steps (0.060) did not do better. Through evaluate on Portraits (one
// identity per subject, 5 in all): Face Sim 0.233 [0.108, 0.360] (no_code 0.155), Face Div
// 0.857, CLIP-T 0.472 (no_code 0.469), at 36 s per image, ~145 s per identity on the shared
// 2-core machine (fine-tune and, once per class, its 32 class images).

import (
	"context"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
)

// DreamBoothOptions configure DreamBooth; DefaultDreamBoothOptions gives the defaults above.
type DreamBoothOptions struct {
	Token        string   // the rare identifier word [V], placed before the class word
	Steps        int      // optimizer steps (>= 1)
	BatchSize    int      // instance latents per step; as many class latents join them (>= 1)
	LearningRate float64  // constant learning rate (> 0)
	PriorWeight  float64  // λ_prior (>= 0; 0: no prior preservation)
	WeightDecay  float64  // AdamW decoupled weight decay (>= 0)
	ClipNorm     float64  // global gradient-norm clip (0: none)
	ClassImages  int      // class-prior latents the frozen generator draws (>= 1 when PriorWeight > 0)
	TrainScopes  []string // variable scopes fine-tuned (the tiny denoiser is "/dit")
	Seed         uint64   // step k's batch is drawn from (Seed, k)
}

// DefaultDreamBoothOptions returns diffusers' DreamBooth defaults scaled to the tiny generator.
func DefaultDreamBoothOptions() DreamBoothOptions {
	return DreamBoothOptions{
		Token: "patched", Steps: 150, BatchSize: 4, LearningRate: 1e-4, PriorWeight: 1,
		WeightDecay: 1e-2, ClipNorm: 1, ClassImages: 32, TrainScopes: []string{"/dit"},
	}
}

// Validate returns an error naming the first option out of range.
func (o DreamBoothOptions) Validate() error {
	switch {
	case strings.TrimSpace(o.Token) == "" || strings.ContainsAny(o.Token, " \t\n"):
		return fmt.Errorf("dreambooth: token %q: want one word", o.Token)
	case o.Steps < 1:
		return fmt.Errorf("dreambooth: steps = %d, want >= 1", o.Steps)
	case o.BatchSize < 1:
		return fmt.Errorf("dreambooth: batch size = %d, want >= 1", o.BatchSize)
	case !(o.LearningRate > 0):
		return fmt.Errorf("dreambooth: learning rate = %g, want > 0", o.LearningRate)
	case !(o.PriorWeight >= 0):
		return fmt.Errorf("dreambooth: prior weight = %g, want >= 0", o.PriorWeight)
	case !(o.WeightDecay >= 0):
		return fmt.Errorf("dreambooth: weight decay = %g, want >= 0", o.WeightDecay)
	case !(o.ClipNorm >= 0):
		return fmt.Errorf("dreambooth: clip norm = %g, want >= 0", o.ClipNorm)
	case o.PriorWeight > 0 && o.ClassImages < 1:
		return fmt.Errorf("dreambooth: class images = %d, want >= 1 with prior weight %g", o.ClassImages, o.PriorWeight)
	case len(o.TrainScopes) == 0:
		return fmt.Errorf("dreambooth: no train scopes (the tiny denoiser is \"/dit\")")
	}
	return nil
}

// DreamBoothPrompts returns the instance prompt "a [V] <class>" and the class prompt "a <class>"
// of diffusers' examples, checked against tok: the token and the class word must be words of its
// vocabulary.
func DreamBoothPrompts(tok text.Tokenizer, token, class string) (instance, classPrompt string, err error) {
	classPrompt = "a " + class
	instance = "a " + token + " " + class
	if wt, ok := tok.(interface{ ID(string) (int32, bool) }); ok {
		for _, w := range []string{token, class} {
			if _, known := wt.ID(w); !known {
				return "", "", fmt.Errorf("dreambooth: %q is not a word of the generator's vocabulary", w)
			}
		}
	}
	return instance, classPrompt, nil
}

// WithToken returns prompt with the identifier token placed before the first occurrence of the
// class word ("a man is reading." → "a patched man is reading."), the prompt a DreamBooth
// generator is sampled with, or an error when the class word does not occur.
func WithToken(prompt, class, token string) (string, error) {
	words := text.SplitWords(prompt)
	for i, w := range words {
		if strings.EqualFold(w, class) {
			return strings.Join(slices.Concat(words[:i], []string{token}, words[i:]), " "), nil
		}
	}
	return "", fmt.Errorf("dreambooth: class word %q not in prompt %q", class, prompt)
}

// TuneIdentity fine-tunes g on one identity: its reference images (encoded with g's
// autoencoder) under "a [V] <class>", with the prior on classLatents (ClassPriorLatents of "a
// <class>"; nil when opt.PriorWeight is 0). It returns the tuned generator or an error naming
// the image that could not be encoded.
func TuneIdentity(runCtx context.Context, g family.Generator, images []image.Image, class string, classLatents [][]float32, opt DreamBoothOptions) (*Tuned, error) {
	inst, cls, err := DreamBoothPrompts(g.Tokenizer(), opt.Token, class)
	if err != nil {
		return nil, err
	}
	data := DreamBoothData{InstanceIDs: g.Tokenizer().Encode(inst).IDs, Class: classLatents, ClassIDs: g.Tokenizer().Encode(cls).IDs}
	for i, img := range images {
		l, _, err := g.Autoencoder().Encode(img)
		if err != nil {
			return nil, fmt.Errorf("dreambooth: reference image %d: %w", i, err)
		}
		data.Instance = append(data.Instance, l)
	}
	return DreamBooth(runCtx, g, data, opt, nil)
}

// DreamBoothData is one identity's fine-tuning set.
type DreamBoothData struct {
	Instance    [][]float32 // latents of the identity's real images (>= 1)
	InstanceIDs []int32     // instance prompt ids, BOS … EOS unpadded ("a patched man")
	Class       [][]float32 // latents the frozen generator drew for ClassIDs (ClassPriorLatents)
	ClassIDs    []int32     // class prompt ids ("a man")
}

// ClassPriorLatents draws n latents of the class prompt classIDs with the frozen generator g
// (diffusers' class-image generation step), seeds 0 … n−1 under opt.Seed.
func ClassPriorLatents(g family.Generator, classIDs []int32, n int, opt family.SampleOptions) ([][]float32, error) {
	reqs := make([]family.SampleRequest, n)
	for i := range reqs {
		reqs[i] = family.SampleRequest{IDs: classIDs, Seed: uint64(i)}
	}
	lat, err := family.Sample(g, reqs, opt)
	if err != nil {
		return nil, fmt.Errorf("dreambooth: class images: %w", err)
	}
	return lat, nil
}

// DreamBoothStep is one step's log: the total loss and its two terms, the gradient norm.
type DreamBoothStep struct {
	Step                  int
	Loss, Instance, Prior float64
	GradNorm              float64
	Elapsed               time.Duration
}

// Tuned is a generator fine-tuned by DreamBooth: g's architecture and tokenizer with weights of
// its own in Context(). It samples through the graph methods (a family's host inference path
// would run the original weights), and g itself is left unchanged.
type Tuned struct {
	family.Generator
	ctx     *mlctx.Context
	Elapsed time.Duration // wall time of the fine-tune (without the class images)
}

// Context returns the context holding the fine-tuned weights.
func (t *Tuned) Context() *mlctx.Context { return t.ctx }

// DreamBooth fine-tunes a copy of g's weights under opt.TrainScopes on data (see the file
// comment) and returns the tuned generator. report (may be nil) gets every step. It returns an
// error naming the bad option or data row, or the failing step.
func DreamBooth(runCtx context.Context, g family.Generator, data DreamBoothData, opt DreamBoothOptions, report func(DreamBoothStep)) (*Tuned, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	info := g.Info()
	if err := data.check(info, opt.PriorWeight > 0); err != nil {
		return nil, err
	}
	sched, err := diffusion.NewSchedule(info.Schedule, info.TrainSteps)
	if err != nil {
		return nil, fmt.Errorf("dreambooth: %w", err)
	}
	ctx, names, err := copyWeights(g.Context(), opt.TrainScopes)
	if err != nil {
		return nil, err
	}
	b := dreamBatcher{data: data, opt: opt, sched: sched, info: info, pad: g.Tokenizer().Pad(), eos: g.Tokenizer().EOS()}
	nInst := opt.BatchSize
	step := func(ctx *mlctx.Context, in []*graph.Node) []*graph.Node {
		xt, t, ids, eos, target := in[0], in[1], in[2], in[3], in[4]
		cond := g.Encode(ctx, g.Embed(ctx, ids), eos)
		pred := g.Denoise(ctx, xt, t, cond)
		loss, inst, prior := dreamBoothLoss(pred, target, nInst, opt.PriorWeight)
		grads, norm := engine.ClipGlobalNorm(ctx.BuildTrainableVariablesGradientsGraph(loss), opt.ClipNorm)
		adam := optimizers.Adam().LearningRate(opt.LearningRate).Betas(0.9, 0.999).Epsilon(1e-8).WeightDecay(opt.WeightDecay).Done()
		adam.(interface {
			UpdateGraphWithGradients(*mlctx.Context, []*graph.Node, dtypes.DType)
		}).UpdateGraphWithGradients(ctx, grads, loss.DType())
		return []*graph.Node{loss, inst, prior, norm}
	}
	var reportFn engine.ReportFunc
	if report != nil {
		reportFn = func(k int, out []float64, elapsed time.Duration) {
			report(DreamBoothStep{Step: k, Loss: out[0], Instance: out[1], Prior: out[2], GradNorm: out[3], Elapsed: elapsed})
		}
	}
	start := time.Now()
	if err := engine.Fit(runCtx, ctx, step, b.inputs, engine.FitOptions{Steps: opt.Steps}, reportFn); err != nil {
		return nil, fmt.Errorf("dreambooth: %w", err)
	}
	out, err := exportWeights(ctx, names)
	if err != nil {
		return nil, err
	}
	return &Tuned{Generator: g, ctx: out, Elapsed: time.Since(start)}, nil
}

// dreamBoothLoss is diffusers' prior-preservation loss of predictions pred and targets target
// whose first nInst rows are instance rows and the rest class rows: the instance MSE plus
// priorWeight times the class MSE (each a mean over its rows and values). With no class rows
// the prior term is zero.
func dreamBoothLoss(pred, target *graph.Node, nInst int, priorWeight float64) (loss, inst, prior *graph.Node) {
	n := pred.Shape().Dimensions[0]
	sq := graph.Square(graph.Sub(pred, target))
	inst = graph.ReduceAllMean(graph.Slice(sq, graph.AxisRange(0, nInst)))
	if n == nInst {
		prior = graph.ScalarZero(pred.Graph(), pred.DType())
	} else {
		prior = graph.ReduceAllMean(graph.Slice(sq, graph.AxisRange(nInst, n)))
	}
	return graph.Add(inst, graph.MulScalar(prior, priorWeight)), inst, prior
}

// check validates the data against the generator's latent shape.
func (d DreamBoothData) check(info family.Info, prior bool) error {
	dim := 1
	for _, s := range info.LatentShape {
		dim *= s
	}
	if len(d.Instance) == 0 {
		return fmt.Errorf("dreambooth: no instance latents")
	}
	for name, set := range map[string][][]float32{"instance": d.Instance, "class": d.Class} {
		for i, l := range set {
			if len(l) != dim {
				return fmt.Errorf("dreambooth: %s latent %d has %d values, want %d (%v)", name, i, len(l), dim, info.LatentShape)
			}
		}
	}
	if prior && len(d.Class) == 0 {
		return fmt.Errorf("dreambooth: prior weight set but no class latents (ClassPriorLatents draws them)")
	}
	for name, ids := range map[string][]int32{"instance": d.InstanceIDs, "class": d.ClassIDs} {
		if name == "class" && !prior {
			continue
		}
		if len(ids) < 2 {
			return fmt.Errorf("dreambooth: %s prompt ids %v: want BOS … EOS", name, ids)
		}
	}
	return nil
}

// dreamBatcher draws step k's batch: BatchSize instance rows then, with the prior, BatchSize
// class rows, each with its own uniform timestep and noise.
type dreamBatcher struct {
	data     DreamBoothData
	opt      DreamBoothOptions
	sched    *diffusion.Schedule
	info     family.Info
	pad, eos int32
}

func (b dreamBatcher) inputs(k int) ([]any, error) {
	r := rand.New(rand.NewPCG(b.opt.Seed, uint64(k)))
	rows := b.opt.BatchSize
	if b.opt.PriorWeight > 0 {
		rows *= 2
	}
	L := b.info.Encoders[0].MaxLength
	dim := len(b.data.Instance[0])
	xt, target := make([]float32, rows*dim), make([]float32, rows*dim)
	ts, eos, ids := make([]int32, rows), make([]int32, rows), make([]int32, rows*L)
	for row := range rows {
		set, prompt := b.data.Instance, b.data.InstanceIDs
		if row >= b.opt.BatchSize {
			set, prompt = b.data.Class, b.data.ClassIDs
		}
		fitted, e, _ := text.Fit(prompt, L, b.eos, b.pad)
		if e < 0 {
			return nil, fmt.Errorf("dreambooth: prompt ids %v do not end with EOS (%d)", prompt, b.eos)
		}
		copy(ids[row*L:], fitted)
		eos[row] = int32(e)
		x0 := set[r.IntN(len(set))]
		t := r.IntN(b.sched.T())
		ts[row] = int32(t)
		abar := b.sched.AlphaBar(t)
		sa, sb := math.Sqrt(abar), math.Sqrt(1-abar)
		for j := range dim {
			z := r.NormFloat64()
			xt[row*dim+j] = float32(sa*float64(x0[j]) + sb*z)
			if b.info.Prediction == "v" {
				target[row*dim+j] = float32(sa*z - sb*float64(x0[j]))
			} else {
				target[row*dim+j] = float32(z)
			}
		}
	}
	lat := append([]int{rows}, b.info.LatentShape...)
	return []any{
		tensors.FromFlatDataAndDimensions(xt, lat...),
		tensors.FromFlatDataAndDimensions(ts, rows),
		tensors.FromFlatDataAndDimensions(ids, rows, L),
		tensors.FromFlatDataAndDimensions(eos, rows),
		tensors.FromFlatDataAndDimensions(target, lat...),
	}, nil
}

// copyWeights returns a new context holding a copy of every variable of src, trainable under
// scopes and frozen elsewhere, and the copied variables' scoped names. It returns an error when
// no variable lies under one of scopes.
func copyWeights(src *mlctx.Context, scopes []string) (*mlctx.Context, []string, error) {
	dst := mlctx.New()
	var names []string
	found := make([]bool, len(scopes))
	for v := range src.IterVariables() {
		val, err := v.Value()
		if err != nil {
			return nil, nil, fmt.Errorf("dreambooth: copy %s: %w", v.ScopeAndName(), err)
		}
		c, err := val.Clone()
		if err != nil {
			return nil, nil, fmt.Errorf("dreambooth: copy %s: %w", v.ScopeAndName(), err)
		}
		train := false
		for i, s := range scopes {
			if v.Scope() == s || strings.HasPrefix(v.Scope(), s+mlctx.ScopeSeparator) {
				train, found[i] = v.Shape().DType == dtypes.Float32, true
			}
		}
		dst.InAbsPath(v.Scope()).Checked(false).VariableWithValue(v.Name(), c).SetTrainable(train)
		names = append(names, v.ScopeAndName())
	}
	if i := slices.Index(found, false); i >= 0 {
		return nil, nil, fmt.Errorf("dreambooth: train scope %q holds no weights of the generator", scopes[i])
	}
	return dst, names, nil
}

// exportWeights copies the variables named in names out of ctx (leaving the optimizer state
// behind) into a fresh context, frozen.
func exportWeights(ctx *mlctx.Context, names []string) (*mlctx.Context, error) {
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
	}
	out := mlctx.New()
	for v := range ctx.IterVariables() {
		if !keep[v.ScopeAndName()] {
			continue
		}
		val, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("dreambooth: export %s: %w", v.ScopeAndName(), err)
		}
		c, err := val.Clone()
		if err != nil {
			return nil, fmt.Errorf("dreambooth: export %s: %w", v.ScopeAndName(), err)
		}
		out.InAbsPath(v.Scope()).Checked(false).VariableWithValue(v.Name(), c).SetTrainable(false)
	}
	return out, nil
}
