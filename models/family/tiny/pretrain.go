package tiny

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
)

// Data is the pretraining set of the tiny generator: latents with their captions.
type Data struct {
	// Latents holds N latents of Config.LatentSize() values each ([H, W, C] row-major).
	Latents [][]float32
	// Captions holds, for each latent, the token ids of its captions (BOS … EOS, unpadded);
	// every latent needs at least one. One is picked at random per step.
	Captions [][][]int32
	// Masks, when PretrainOptions.SubjectWeight is set, holds for each latent its subject mask
	// at latent resolution (H*W values in [0, 1], 1 on the subject; the encode stage's mask).
	Masks [][]float32
}

// PretrainOptions configure Pretrain. Every field means what it says, zero included (0 turns
// a regulariser off); DefaultPretrainOptions gives the settings the committed generator was
// trained with, and Validate names the first one out of range.
type PretrainOptions struct {
	Steps        int     // optimizer steps of the whole run (>= 1)
	BatchSize    int     // latents per step (>= 1)
	LearningRate float64 // peak learning rate after warm-up
	DecayFactor  float64 // the cosine decay ends at LearningRate / DecayFactor (>= 1; 1: none)
	WarmupSteps  int     // linear warm-up from 0 (0: none)
	WeightDecay  float64 // decoupled weight decay of weight matrices, AdamW style (0: none)
	Beta1, Beta2 float64 // Adam moment decays, in [0, 1)
	ClipNorm     float64 // global gradient-norm clip (0: none)
	// CaptionDropout is the probability of the empty caption BOS EOS, which trains the
	// unconditional branch of classifier-free guidance (0: none).
	CaptionDropout float64
	EMADecay       float64 // decay of the exported weight average, in [0, 1) (0: export the raw weights)
	MinSNRGamma    float64 // Min-SNR-γ loss weight min(SNR_t, γ)/SNR_t (Hang et al. 2023) (0: plain MSE)
	SNRFloor       float64 // lower bound of the x̂₀ weight, min(max(SNR_t, floor), γ)/SNR_t (0: none; see lossWeight)
	Seed           uint64  // seed of the batches: step k draws from (Seed, k)
	// SubjectWeight is the ε-MSE weight of latent positions on the subject (Data.Masks) relative
	// to the background, each sample's weights scaled to mean 1 (> 0; 1: uniform). Above 1 it
	// spends more of the loss on the subject, where the class word shows (hair, size), and less
	// on the scene, which explains most of a latent's variance.
	SubjectWeight float64

	CheckpointDir   string // where checkpoints go ("" for none); a run resumes from it
	CheckpointEvery int    // steps between checkpoints (0: only at the end)

	// InitFrom, when set, fine-tunes: the weights under InitScopes ("/dit", the denoiser, say)
	// start from InitFrom's instead of the random initialisation (their shapes must match);
	// the optimizer state starts afresh. A resumed run takes everything from its checkpoint.
	InitFrom   *Generator
	InitScopes []string
}

// DefaultPretrainOptions returns the options the committed generator was trained with, apart
// from what the pretrain stage sets (steps, learning rate, SNR floor, subject weight, seed).
func DefaultPretrainOptions() PretrainOptions {
	return PretrainOptions{
		Steps: 2000, BatchSize: 32, LearningRate: 2e-3, DecayFactor: 10, WarmupSteps: 100,
		WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.99, ClipNorm: 1, CaptionDropout: 0.1,
		EMADecay: 0.999, MinSNRGamma: 5, SubjectWeight: 1, CheckpointEvery: 200,
	}
}

// Validate returns an error naming the first option out of range.
func (o PretrainOptions) Validate() error {
	for _, c := range []struct {
		name string
		bad  bool
		v    any
	}{
		{"steps", o.Steps < 1, o.Steps},
		{"batch size", o.BatchSize < 1, o.BatchSize},
		{"learning rate", !(o.LearningRate > 0), o.LearningRate},
		{"decay factor", !(o.DecayFactor >= 1), o.DecayFactor},
		{"warm-up steps", o.WarmupSteps < 0, o.WarmupSteps},
		{"weight decay", !(o.WeightDecay >= 0), o.WeightDecay},
		{"beta1", !(o.Beta1 >= 0 && o.Beta1 < 1), o.Beta1},
		{"beta2", !(o.Beta2 >= 0 && o.Beta2 < 1), o.Beta2},
		{"clip norm", !(o.ClipNorm >= 0), o.ClipNorm},
		{"caption dropout", !(o.CaptionDropout >= 0 && o.CaptionDropout < 1), o.CaptionDropout},
		{"EMA decay", !(o.EMADecay >= 0 && o.EMADecay < 1), o.EMADecay},
		{"Min-SNR γ", !(o.MinSNRGamma >= 0), o.MinSNRGamma},
		{"SNR floor", !(o.SNRFloor >= 0), o.SNRFloor},
		{"subject weight", !(o.SubjectWeight > 0), o.SubjectWeight},
		{"checkpoint interval", o.CheckpointEvery < 0, o.CheckpointEvery},
	} {
		if c.bad {
			return fmt.Errorf("tiny pretrain: %s %v is out of range (DefaultPretrainOptions has the committed generator's settings)", c.name, c.v)
		}
	}
	return nil
}

// LearningRateAt returns the learning rate of step k (0-based): linear warm-up to LearningRate
// over WarmupSteps, then cosine decay to LearningRate / DecayFactor at Steps.
func (o PretrainOptions) LearningRateAt(k int) float64 {
	if k < o.WarmupSteps {
		return o.LearningRate * float64(k+1) / float64(o.WarmupSteps)
	}
	span := max(o.Steps-o.WarmupSteps, 1)
	p := math.Min(float64(k-o.WarmupSteps)/float64(span), 1)
	low := o.LearningRate / o.DecayFactor
	return low + (o.LearningRate-low)*0.5*(1+math.Cos(math.Pi*p))
}

// emaDecayAt returns the EMA decay of step k, warmed up as min(decay, (1+k)/(10+k)) so that the
// average does not remember the random initial weights for long.
func (o PretrainOptions) emaDecayAt(k int) float64 {
	if o.EMADecay == 0 {
		return 0
	}
	return math.Min(o.EMADecay, float64(1+k)/float64(10+k))
}

// Pretrain trains a tiny generator of architecture cfg from scratch on data with engine.Fit:
// ε-prediction MSE at uniform timesteps (Min-SNR-γ weighted), caption dropout for
// classifier-free guidance, AdamW with warm-up, cosine decay and gradient clipping, and an
// exponential moving average of the weights. Step k's
// batch is drawn from a generator seeded with (opt.Seed, k), so a run resumed from
// opt.CheckpointDir continues exactly like an uninterrupted one. report (may be nil) gets, for
// every step, the weighted loss, the gradient norm and the unweighted ε-MSE. It returns the
// trained generator, frozen, holding the EMA weights (raw weights when opt.EMADecay is 0); or an
// error naming the bad option, data row or failing step; when runCtx is cancelled, the
// checkpoint is written and runCtx's error returned.
func Pretrain(runCtx context.Context, cfg Config, data Data, opt PretrainOptions, report engine.ReportFunc) (*Generator, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	g, err := New(cfg)
	if err != nil {
		return nil, err
	}
	counts, err := checkData(cfg, g.tok, data)
	if err != nil {
		return nil, err
	}
	if err := checkMasks(cfg, data, opt.WeighsSubject()); err != nil {
		return nil, err
	}
	countVar := g.ctx.GetVariableByScopeAndName(textScope, tokenCountsName)
	if err := countVar.SetValue(tensors.FromFlatDataAndDimensions(counts, len(counts))); err != nil {
		return nil, fmt.Errorf("tiny pretrain: %w", err)
	}
	sched, err := diffusion.NewSchedule(cfg.Schedule, cfg.TrainSteps)
	if err != nil {
		return nil, fmt.Errorf("tiny pretrain: %w", err)
	}
	if err := g.initFrom(opt.InitFrom, opt.InitScopes); err != nil {
		return nil, fmt.Errorf("tiny pretrain: %w", err)
	}
	tr := trainer{m: g.m, opt: opt, data: data, sched: sched, tok: g.tok}
	fitOpt := engine.FitOptions{
		Steps:           opt.Steps,
		CheckpointDir:   opt.CheckpointDir,
		CheckpointEvery: opt.CheckpointEvery,
		Meta:            map[string]string{"family": FamilyName, "seed": strconv.FormatUint(opt.Seed, 10)},
	}
	if err := engine.Fit(runCtx, g.ctx, tr.step, tr.batch, fitOpt, report); err != nil {
		return nil, fmt.Errorf("tiny pretrain: %w", err)
	}
	return tr.export(g)
}

// initFrom copies src's weights under scopes into g (nothing when src is nil).
func (g *Generator) initFrom(src *Generator, scopes []string) error {
	if src == nil {
		return nil
	}
	if len(scopes) == 0 {
		return fmt.Errorf("InitFrom without InitScopes: name the scopes to start from it (/text, /dit)")
	}
	for _, scope := range scopes {
		n := 0
		for v := range g.ctx.IterVariables() {
			if !isModelScope(v.Scope()) || !inScope(v.Scope(), scope) {
				continue
			}
			sv := src.ctx.GetVariableByScopeAndName(v.Scope(), v.Name())
			if sv == nil || !sv.Shape().Equal(v.Shape()) {
				return fmt.Errorf("InitFrom has no variable %s of shape %s", v.ScopeAndName(), v.Shape())
			}
			val, err := sv.MustValue().Clone()
			if err != nil {
				return err
			}
			if err := v.SetValue(val); err != nil {
				return fmt.Errorf("init %s: %w", v.ScopeAndName(), err)
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("InitScopes: no weights under %q (the generator's scopes are /text and /dit)", scope)
		}
	}
	return nil
}

// checkData validates data against cfg and returns how often each token id occurs in it.
func checkData(cfg Config, tok *text.WordTokenizer, data Data) ([]float32, error) {
	if len(data.Latents) == 0 {
		return nil, fmt.Errorf("tiny pretrain: no latents")
	}
	if len(data.Captions) != len(data.Latents) {
		return nil, fmt.Errorf("tiny pretrain: %d latents but %d caption lists, want one list per latent", len(data.Latents), len(data.Captions))
	}
	counts := make([]float32, cfg.VocabSize)
	for i, lat := range data.Latents {
		if len(lat) != cfg.LatentSize() {
			return nil, fmt.Errorf("tiny pretrain: latent %d has %d values, want %d (%v)", i, len(lat), cfg.LatentSize(), cfg.LatentShape)
		}
		if len(data.Captions[i]) == 0 {
			return nil, fmt.Errorf("tiny pretrain: latent %d has no captions", i)
		}
		for k, ids := range data.Captions[i] {
			if len(ids) < 2 || ids[0] != tok.BOS() || ids[len(ids)-1] != tok.EOS() {
				return nil, fmt.Errorf("tiny pretrain: latent %d caption %d: want BOS (%d) … EOS (%d), got %v", i, k, tok.BOS(), tok.EOS(), ids)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= cfg.VocabSize {
					return nil, fmt.Errorf("tiny pretrain: latent %d caption %d: token id %d outside the vocabulary [0, %d)", i, k, id, cfg.VocabSize)
				}
				counts[id]++
			}
		}
	}
	return counts, nil
}

// WeighsSubject reports whether the loss weighs subject positions apart from the background,
// and so needs Data.Masks (SubjectWeight 1 is uniform).
func (o PretrainOptions) WeighsSubject() bool { return o.SubjectWeight != 1 }

// checkMasks validates data.Masks when the loss needs them (need).
func checkMasks(cfg Config, data Data, need bool) error {
	if !need {
		return nil
	}
	if len(data.Masks) != len(data.Latents) {
		return fmt.Errorf("tiny pretrain: subject weight set, but %d masks for %d latents: want one mask per latent", len(data.Masks), len(data.Latents))
	}
	hw := cfg.LatentShape[0] * cfg.LatentShape[1]
	for i, m := range data.Masks {
		if len(m) != hw {
			return fmt.Errorf("tiny pretrain: mask %d has %d values, want %d (%d x %d, the latent's spatial shape)", i, len(m), hw, cfg.LatentShape[0], cfg.LatentShape[1])
		}
		for _, v := range m {
			if !(v >= 0 && v <= 1) {
				return fmt.Errorf("tiny pretrain: mask %d has value %g outside [0, 1]", i, v)
			}
		}
	}
	return nil
}

// positionWeights are the loss weights of a latent's H*W positions for mask: 1 off the subject,
// w (> 0, PretrainOptions.Validate) on it, scaled to mean 1.
func positionWeights(mask []float32, w float64, out []float32) {
	sum := 0.0
	for j, m := range mask {
		v := 1 + (w-1)*float64(m)
		out[j] = float32(v)
		sum += v
	}
	scale := float32(float64(len(mask)) / sum)
	for j := range mask {
		out[j] *= scale
	}
}

// trainer holds what a training step needs.
type trainer struct {
	m     model
	opt   PretrainOptions
	data  Data
	sched *diffusion.Schedule
	tok   *text.WordTokenizer
}

// batch draws step k's inputs from (Seed, k): latents and captions (empty with probability
// CaptionDropout), uniform timesteps with their loss weights, noise, and the learning rate and
// EMA decay of the step.
func (tr trainer) batch(k int) ([]any, error) {
	r := rand.New(rand.NewPCG(tr.opt.Seed, uint64(k)))
	B, L, n := tr.opt.BatchSize, tr.m.cfg.MaxLength, tr.m.cfg.LatentSize()
	xt, eps := make([]float32, B*n), make([]float32, B*n)
	ts, eos, ids, wts := make([]int32, B), make([]int32, B), make([]int32, B*L), make([]float32, B)
	s := tr.m.cfg.LatentShape
	hw := s[0] * s[1]
	pos := make([]float32, B*hw) // per-position loss weights
	weigh := tr.opt.WeighsSubject()
	if !weigh {
		for j := range pos {
			pos[j] = 1
		}
	}
	empty := []int32{tr.tok.BOS(), tr.tok.EOS()}
	for b := range B {
		i := r.IntN(len(tr.data.Latents))
		caps := tr.data.Captions[i]
		c := caps[r.IntN(len(caps))]
		if r.Float64() < tr.opt.CaptionDropout {
			c = empty
		}
		fitted, e, _ := text.Fit(c, L, tr.tok.EOS(), tr.tok.Pad())
		copy(ids[b*L:], fitted)
		eos[b] = int32(e)
		t := r.IntN(tr.sched.T())
		ts[b] = int32(t)
		abar := tr.sched.AlphaBar(t)
		wts[b] = float32(tr.opt.lossWeight(abar))
		sa, sb := math.Sqrt(abar), math.Sqrt(1-abar)
		if weigh {
			positionWeights(tr.data.Masks[i], tr.opt.SubjectWeight, pos[b*hw:(b+1)*hw])
		}
		x0 := tr.data.Latents[i]
		for j := range n {
			z := r.NormFloat64()
			eps[b*n+j] = float32(z)
			xt[b*n+j] = float32(sa*float64(x0[j]) + sb*z)
		}
	}
	return []any{
		tensors.FromFlatDataAndDimensions(xt, B, s[0], s[1], s[2]),
		tensors.FromFlatDataAndDimensions(ts, B),
		tensors.FromFlatDataAndDimensions(ids, B, L),
		tensors.FromFlatDataAndDimensions(eos, B),
		tensors.FromFlatDataAndDimensions(eps, B, s[0], s[1], s[2]),
		tensors.FromFlatDataAndDimensions(wts, B),
		tensors.FromFlatDataAndDimensions(pos, B, s[0], s[1], 1),
		float32(tr.opt.LearningRateAt(k)),
		float32(tr.opt.emaDecayAt(k)),
	}, nil
}

// lossWeight is the Min-SNR-γ weight of a timestep with ᾱ = abar for ε-prediction:
// min(SNR, γ)/SNR with SNR = ᾱ/(1-ᾱ), or 1 when the weighting is off. In terms of the x̂₀
// error, ε-MSE weighs it by SNR, so Min-SNR weighs it by min(SNR, γ): at t = 950 about 0.008,
// which leaves the noisy steps that decide layout and follow the caption almost untrained on a
// small budget. SNRFloor raises that weight to max(SNR, floor), the v-prediction weighting of
// the noisy half of the schedule when floor is 1.
func (o PretrainOptions) lossWeight(abar float64) float64 {
	if o.MinSNRGamma == 0 {
		return 1
	}
	snr := abar / (1 - abar)
	return math.Min(math.Max(snr, o.SNRFloor), o.MinSNRGamma) / snr
}

// step is the training graph: the ε-prediction MSE per sample (the DDPM "simple" loss),
// weighted per latent position (SubjectWeight) and per timestep (Min-SNR-γ), and an AdamW update of every trainable variable, with an
// EMA of the updated weights. Outputs: weighted loss, gradient norm, unweighted ε-MSE.
func (tr trainer) step(ctx *mlctx.Context, in []*graph.Node) []*graph.Node {
	rc := ctx.InAbsPath(mlctx.RootScope).Checked(false)
	loss, mse := tr.loss(rc, in[:7])
	norm := tr.update(rc, loss, in[7], in[8])
	return []*graph.Node{loss, norm, mse}
}

// loss is the weighted loss of the batch inputs xt, t, ids, eos, eps, wts (per sample) and pos
// (per latent position), and the unweighted ε-MSE.
func (tr trainer) loss(ctx *mlctx.Context, in []*graph.Node) (loss, mse *graph.Node) {
	xt, t, ids, eos, eps, wts, pos := in[0], in[1], in[2], in[3], in[4], in[5], in[6]
	states, pooled := tr.m.encode(ctx, tr.m.embed(ctx, ids), eos)
	pred := tr.m.denoise(ctx, xt, t, states, pooled, nil)
	sq := graph.Square(graph.Sub(pred, eps))
	perSample := graph.ReduceMean(graph.Mul(sq, pos), 1, 2, 3) // [B]
	return graph.ReduceAllMean(graph.Mul(perSample, wts)), graph.ReduceAllMean(graph.ReduceMean(sq, 1, 2, 3))
}

// update applies AdamW to every trainable variable used by loss's graph (moments under
// "/adamw", weights decayed only when they are matrices) after clipping the global gradient
// norm, and moves the EMA copies under "/ema" towards the new weights. It returns the gradient
// norm before clipping.
func (tr trainer) update(ctx *mlctx.Context, loss, lr, decay *graph.Node) *graph.Node {
	g := loss.Graph()
	grads := ctx.BuildTrainableVariablesGradientsGraph(loss)
	var vars []*mlctx.Variable
	for v := range ctx.IterVariables() {
		if v.Trainable && v.InUseByGraph(g) {
			vars = append(vars, v)
		}
	}
	if len(vars) != len(grads) {
		panic(fmt.Errorf("tiny pretrain: %d gradients for %d trainable variables", len(grads), len(vars)))
	}
	grads, norm := engine.ClipGlobalNorm(grads, tr.opt.ClipNorm)
	step := optimizers.IncrementGlobalStepGraph(ctx, g, dtypes.Float32) // 1 at the first step
	b1, b2 := tr.opt.Beta1, tr.opt.Beta2
	bc1 := graph.OneMinus(graph.Pow(graph.Scalar(g, dtypes.Float32, b1), step))
	bc2 := graph.OneMinus(graph.Pow(graph.Scalar(g, dtypes.Float32, b2), step))
	for i, v := range vars {
		w := v.ValueGraph(g)
		grad := grads[i]
		st := ctx.InAbsPath("/adamw" + v.Scope()).Checked(false)
		mVar := st.VariableWithValue(v.Name()+"_m", tensors.FromShape(v.Shape())).SetTrainable(false)
		sVar := st.VariableWithValue(v.Name()+"_v", tensors.FromShape(v.Shape())).SetTrainable(false)
		m := graph.Add(graph.MulScalar(mVar.ValueGraph(g), b1), graph.MulScalar(grad, 1-b1))
		s := graph.Add(graph.MulScalar(sVar.ValueGraph(g), b2), graph.MulScalar(graph.Square(grad), 1-b2))
		mVar.SetValueGraph(m)
		sVar.SetValueGraph(s)
		dir := graph.Div(graph.Div(m, bc1), graph.AddScalar(graph.Sqrt(graph.Div(s, bc2)), 1e-8))
		if tr.opt.WeightDecay > 0 && v.Shape().Rank() >= 2 {
			dir = graph.Add(dir, graph.MulScalar(w, tr.opt.WeightDecay))
		}
		nw := graph.Sub(w, graph.Mul(lr, dir))
		v.SetValueGraph(nw)
		if tr.opt.EMADecay > 0 {
			eVar := ctx.InAbsPath("/ema" + v.Scope()).Checked(false).GetVariable(v.Name())
			if eVar == nil {
				init, err := v.MustValue().Clone()
				if err != nil {
					panic(fmt.Errorf("tiny pretrain: EMA of %s: %w", v.ScopeAndName(), err))
				}
				eVar = ctx.InAbsPath("/ema"+v.Scope()).Checked(false).VariableWithValue(v.Name(), init).SetTrainable(false)
			}
			e := eVar.ValueGraph(g)
			eVar.SetValueGraph(graph.Add(e, graph.Mul(graph.OneMinus(decay), graph.Sub(nw, e))))
		}
	}
	return norm
}

// export returns a frozen generator holding the EMA weights (or the raw ones) of the trained g,
// in a context of its own.
func (tr trainer) export(g *Generator) (*Generator, error) {
	out, err := newShell(g.cfg)
	if err != nil {
		return nil, err
	}
	for v := range g.ctx.IterVariables() {
		if !isModelScope(v.Scope()) {
			continue
		}
		src := v
		if tr.opt.EMADecay > 0 && v.Trainable {
			if e := g.ctx.GetVariableByScopeAndName("/ema"+v.Scope(), v.Name()); e != nil {
				src = e
			}
		}
		val, err := src.Value()
		if err != nil {
			return nil, fmt.Errorf("tiny pretrain: export %s: %w", v.ScopeAndName(), err)
		}
		c, err := val.Clone()
		if err != nil {
			return nil, fmt.Errorf("tiny pretrain: export %s: %w", v.ScopeAndName(), err)
		}
		out.ctx.InAbsPath(v.Scope()).Checked(false).VariableWithValue(v.Name(), c)
	}
	out.Freeze()
	return out, nil
}
