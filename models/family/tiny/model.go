package tiny

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
)

// The tiny generator's networks as GoMLX graph functions. Everything is built from matrix
// multiplies (DESIGN.md: convolutions are slow and lack input gradients on the pure-Go backend):
//
//	text encoder   e = tokens[ids]; x = e + positions; N_t × pre-LN causal blocks; LN
//	denoiser       x = Linear(latent tokens) + positions;  c = MLP(sin(t)) + Linear(pooled)
//	               N × [ adaLN-Zero self-attention, cross-attention to the text states,
//	                     adaLN-Zero MLP ];  adaLN; Linear → F  (zero-initialised)
//	               ε̂ = √(1-ᾱ_t)·x_t + √ᾱ_t·F
//
// The last line is a fixed preconditioning (like EDM's skip connection): since
// ε = √(1-ᾱ)·x_t + √ᾱ·v for v = √ᾱ·ε − √(1-ᾱ)·x₀, the network F predicts v, a unit-variance
// target at every t, while Denoise still returns ε̂. Without it a plain ε-network must copy x_t
// through all its layers with an error below ~1% at high noise, where x̂₀ amplifies ε̂'s error
// by √((1-ᾱ)/ᾱ) ≈ 11 (t = 950); measured after 400 steps, plain ε̂ at t = 950 was worse than the
// trivial ε̂ = √(1-ᾱ)·x_t, and samples were patch noise. F = 0 gives that trivial predictor.
//
// Variables live under "/text/…" and "/dit/…" of the context the functions are given. A
// missing variable is created with deterministic random values derived from Config.InitSeed
// and its scope and name (so the initial weights do not depend on build order), unless the
// context is in checked reuse mode, where a missing variable is an error.

// model holds the architecture; its methods build graphs.
type model struct {
	cfg            Config
	sqrtAB, sqrt1m []float32 // √ᾱ_t and √(1-ᾱ_t) for t = 0 … T-1
}

// newModel returns the model of cfg (which must be valid) with its schedule's tables.
func newModel(cfg Config) (model, error) {
	s, err := diffusion.NewSchedule(cfg.Schedule, cfg.TrainSteps)
	if err != nil {
		return model{}, fmt.Errorf("tiny config: %w", err)
	}
	m := model{cfg: cfg, sqrtAB: make([]float32, s.T()), sqrt1m: make([]float32, s.T())}
	for t := range s.T() {
		m.sqrtAB[t] = float32(math.Sqrt(s.AlphaBar(t)))
		m.sqrt1m[t] = float32(math.Sqrt(1 - s.AlphaBar(t)))
	}
	return m, nil
}

// perSample looks up table[t] for timesteps t [B] (int32) as a [B, 1, …, 1] node of rank.
func perSample(table []float32, t *graph.Node, rank int) *graph.Node {
	g := t.Graph()
	v := graph.Gather(graph.Const(g, tensors.FromFlatDataAndDimensions(table, len(table), 1)), graph.ExpandAxes(t, -1)) // [B, 1]
	dims := make([]int, rank)
	for i := range dims {
		dims[i] = 1
	}
	dims[0] = t.Shape().Dimensions[0]
	return graph.Reshape(v, dims...)
}

// initKind says how a new variable is filled.
type initKind int

const (
	initZeros  initKind = iota
	initOnes            // layer-norm scales
	initNormal          // N(0, std²)
	initGrid            // 2-D sine-cosine position embedding of an H x W grid (dims [H*W, D])
)

// param returns the variable name of ctx's scope as a node of g, creating it with dims and
// initial values when it does not exist and ctx allows creation.
func (m model) param(ctx *context.Context, g *graph.Graph, name string, kind initKind, std float64, dims ...int) *graph.Node {
	if v := ctx.GetVariable(name); v != nil {
		return v.ValueGraph(g)
	}
	if ctx.IsChecked() && ctx.IsReuse() {
		// Let GoMLX report the missing variable with its scope.
		return ctx.VariableWithValue(name, float32(0)).ValueGraph(g)
	}
	size := 1
	for _, d := range dims {
		size *= d
	}
	vals := make([]float32, size)
	switch kind {
	case initOnes:
		for i := range vals {
			vals[i] = 1
		}
	case initGrid:
		gridSinCos(vals, m.cfg.LatentShape[0], m.cfg.LatentShape[1], dims[1])
	case initNormal:
		h := fnv.New64a()
		_, _ = h.Write([]byte(ctx.Scope() + context.ScopeSeparator + name))
		r := rand.New(rand.NewPCG(m.cfg.InitSeed, h.Sum64()))
		for i := range vals {
			vals[i] = float32(r.NormFloat64() * std)
		}
	}
	return ctx.VariableWithValue(name, tensors.FromFlatDataAndDimensions(vals, dims...)).ValueGraph(g)
}

// gridSinCos fills out [h*w, d] with the 2-D sine-cosine position embedding of DiT/MAE: the
// first half of the features encodes the row, the second half the column, each as
// [sin(p·ω_k), cos(p·ω_k)] with ω_k = 10000^(-k/(d/4)). Learned position embeddings start
// from it, so tokens know where they are from the first step (a small random start left the
// model without a sense of layout for hundreds of steps). Features past 4·(d/4) stay zero.
func gridSinCos(out []float32, h, w, d int) {
	q := d / 4
	for y := range h {
		for x := range w {
			row := out[(y*w+x)*d:]
			for k := range q {
				om := math.Pow(10000, -float64(k)/float64(q))
				row[k], row[q+k] = float32(math.Sin(float64(y)*om)), float32(math.Cos(float64(y)*om))
				row[2*q+k], row[3*q+k] = float32(math.Sin(float64(x)*om)), float32(math.Cos(float64(x)*om))
			}
		}
	}
}

// dense is y = x·w + b over the last axis of x; w is initialised with Xavier-normal values,
// or zeros when zero is set (adaLN-Zero modulation and the output layer).
func (m model) dense(ctx *context.Context, x *graph.Node, out int, zero bool) *graph.Node {
	in := x.Shape().Dimensions[x.Rank()-1]
	kind, std := initNormal, math.Sqrt(2/float64(in+out))
	if zero {
		kind = initZeros
	}
	w := m.param(ctx, x.Graph(), "w", kind, std, in, out)
	b := m.param(ctx, x.Graph(), "b", initZeros, 0, out)
	y := graph.DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{0}, nil)
	return graph.Add(y, graph.ExpandLeftToRank(b, y.Rank()))
}

// normalize is layer normalisation over the last axis without scale and offset. It divides by
// Sqrt (Rsqrt has no gradient in GoMLX v0.26.0).
func normalize(x *graph.Node) *graph.Node {
	mean := graph.ReduceAndKeep(x, graph.ReduceMean, -1)
	d := graph.Sub(x, mean)
	v := graph.ReduceAndKeep(graph.Mul(d, d), graph.ReduceMean, -1)
	return graph.Div(d, graph.Sqrt(graph.AddScalar(v, 1e-6)))
}

// layerNorm is layer normalisation with a learned scale and offset.
func (m model) layerNorm(ctx *context.Context, x *graph.Node) *graph.Node {
	w := x.Shape().Dimensions[x.Rank()-1]
	g := m.param(ctx, x.Graph(), "scale", initOnes, 0, w)
	b := m.param(ctx, x.Graph(), "offset", initZeros, 0, w)
	n := normalize(x)
	return graph.Add(graph.Mul(n, graph.ExpandLeftToRank(g, n.Rank())), graph.ExpandLeftToRank(b, n.Rank()))
}

// attention is multi-head attention of x [B, L, W] over kv [B, S, Dkv], output [B, L, W], with
// separate q, k, v projections. With causal set, position i attends only to positions <= i.
// attend, when not nil, takes the place of Attend on the projected heads (the denoiser's hook).
func (m model) attention(ctx *context.Context, x, kv *graph.Node, heads int, causal bool, attend func(q, k, v *graph.Node) *graph.Node) *graph.Node {
	dims := x.Shape().Dimensions
	B, L, W := dims[0], dims[1], dims[2]
	S, dh := kv.Shape().Dimensions[1], W/heads
	q := graph.Reshape(m.dense(ctx.In("q"), x, W, false), B, L, heads, dh)
	k := graph.Reshape(m.dense(ctx.In("k"), kv, W, false), B, S, heads, dh)
	v := graph.Reshape(m.dense(ctx.In("v"), kv, W, false), B, S, heads, dh)
	var o *graph.Node
	switch {
	case attend != nil:
		o = attend(q, k, v)
		if !o.Shape().Equal(q.Shape()) {
			panic(fmt.Errorf("tiny attention hook: returned heads of shape %s, want %s", o.Shape(), q.Shape()))
		}
	case causal:
		o = AttentionMix(AttentionProbs(q, k, causalMask(x.Graph(), L, S)), v)
	default:
		o = Attend(q, k, v, nil)
	}
	return m.dense(ctx.In("o"), graph.Reshape(o, B, L, W), W, false)
}

// AttentionProbs returns the attention probabilities softmax(q·kᵀ/√dh + bias) [B, H, L, S] of
// queries q [B, L, H, dh] over keys k [B, S, H, dh]; bias (nil: none) is added to the scores and
// must broadcast to [B, H, L, S] by rank (e.g. [B, 1, L, S] or [1, 1, L, S]). A bias of -1e9
// removes a key.
func AttentionProbs(q, k, bias *graph.Node) *graph.Node {
	dh := q.Shape().Dimensions[3]
	scores := graph.DotGeneral(q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2}) // [B, H, L, S]
	scores = graph.MulScalar(scores, 1/math.Sqrt(float64(dh)))
	if bias != nil {
		scores = graph.Add(scores, bias)
	}
	return graph.Softmax(scores, -1)
}

// AttentionMix returns the attention output p·v [B, L, H, dh] of probabilities p [B, H, L, S]
// over values v [B, S, H, dh].
func AttentionMix(p, v *graph.Node) *graph.Node {
	o := graph.DotGeneral(p, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, H, L, dh]
	return graph.TransposeAllAxes(o, 0, 2, 1, 3)
}

// Attend is scaled dot-product attention, AttentionMix(AttentionProbs(q, k, bias), v): the
// [B, L, H, dh] output for q [B, L, H, dh] over k, v [B, S, H, dh]. It is exactly the
// computation of the plain denoiser, so a Hook that returns Attend(q, k, v, nil) changes no bit.
func Attend(q, k, v, bias *graph.Node) *graph.Node {
	return AttentionMix(AttentionProbs(q, k, bias), v)
}

// causalMask is the [1, 1, L, S] additive mask: 0 where key j <= query i, -1e9 elsewhere.
func causalMask(g *graph.Graph, L, S int) *graph.Node {
	mask := make([]float32, L*S)
	for i := range L {
		for j := i + 1; j < S; j++ {
			mask[i*S+j] = -1e9
		}
	}
	return graph.Const(g, tensors.FromFlatDataAndDimensions(mask, 1, 1, L, S))
}

// gelu is the tanh approximation of GELU.
func gelu(x *graph.Node) *graph.Node {
	inner := graph.MulScalar(graph.Add(x, graph.MulScalar(graph.Mul(graph.Mul(x, x), x), 0.044715)), math.Sqrt(2/math.Pi))
	return graph.Mul(graph.MulScalar(x, 0.5), graph.AddScalar(graph.Tanh(inner), 1))
}

// silu is x·σ(x).
func silu(x *graph.Node) *graph.Node { return graph.Mul(x, graph.Logistic(x)) }

// mlp is Linear → GELU → Linear with hidden width MLPRatio × input width.
func (m model) mlp(ctx *context.Context, x *graph.Node) *graph.Node {
	w := x.Shape().Dimensions[x.Rank()-1]
	return m.dense(ctx.In("fc2"), gelu(m.dense(ctx.In("fc1"), x, m.cfg.MLPRatio*w, false)), w, false)
}

// embed looks up the token embeddings of ids [B, L] (int32): [B, L, TextWidth].
func (m model) embed(ctx *context.Context, ids *graph.Node) *graph.Node {
	c := ctx.In("text")
	std := m.cfg.TokenInitStd
	if std == 0 {
		std = 0.02
	}
	table := m.param(c, ids.Graph(), "tokens", initNormal, std, m.cfg.VocabSize, m.cfg.TextWidth)
	if ids.DType() != dtypes.Int32 {
		ids = graph.ConvertDType(ids, dtypes.Int32)
	}
	return graph.Gather(table, graph.ExpandAxes(ids, -1))
}

// encode runs the text encoder on token embeddings e [B, L, Dt] (L <= MaxLength, pseudo-words
// already inserted) and returns the states [B, L, Dt] and the pooled state at eos [B] (int32).
// Position embeddings are added here, after insertion (paper eq. 4).
func (m model) encode(ctx *context.Context, e, eos *graph.Node) (states, pooled *graph.Node) {
	c := ctx.In("text")
	g := e.Graph()
	dims := e.Shape().Dimensions
	if e.Rank() != 3 || dims[2] != m.cfg.TextWidth || dims[1] < 1 || dims[1] > m.cfg.MaxLength {
		panic(fmt.Errorf("tiny text encoder: embeddings of shape %s, want [B, L <= %d, %d]", e.Shape(), m.cfg.MaxLength, m.cfg.TextWidth))
	}
	L := dims[1]
	pos := m.param(c, g, "positions", initNormal, 0.02, m.cfg.MaxLength, m.cfg.TextWidth)
	if L < m.cfg.MaxLength {
		pos = graph.Slice(pos, graph.AxisRange(0, L), graph.AxisRange())
	}
	x := graph.Add(e, graph.ExpandLeftToRank(pos, 3))
	words := x
	for i := range m.cfg.TextDepth {
		blk := c.Inf("block%d", i)
		h := m.layerNorm(blk.In("ln1"), x)
		x = graph.Add(x, m.attention(blk.In("attn"), h, h, m.cfg.TextHeads, true, nil))
		x = graph.Add(x, m.mlp(blk.In("mlp"), m.layerNorm(blk.In("ln2"), x)))
	}
	states = m.layerNorm(c.In("ln_final"), x)
	if eos.DType() != dtypes.Int32 {
		eos = graph.ConvertDType(eos, dtypes.Int32)
	}
	sel := graph.OneHot(eos, L, states.DType())                                    // [B, L]
	pooled = graph.DotGeneral(sel, []int{1}, []int{0}, states, []int{1}, []int{0}) // [B, Dt]
	if m.cfg.WordSkip {
		states = graph.Concatenate([]*graph.Node{states, m.layerNorm(c.In("ln_words"), words)}, 1) // [B, 2L, Dt]
	}
	return states, pooled
}

// timeFeatures are the sinusoidal features [cos(t·f_i), sin(t·f_i)] of integer timesteps t [B],
// with frequencies f_i = 10000^(-i/half).
func timeFeatures(t *graph.Node, dim int) *graph.Node {
	half := dim / 2
	freqs := make([]float32, half)
	for i := range freqs {
		freqs[i] = float32(math.Exp(-math.Log(10000) * float64(i) / float64(half)))
	}
	tf := graph.ExpandAxes(graph.ConvertDType(t, dtypes.Float32), -1) // [B, 1]
	args := graph.Mul(tf, graph.Const(t.Graph(), [][]float32{freqs})) // [B, half]
	return graph.Concatenate([]*graph.Node{graph.Cos(args), graph.Sin(args)}, -1)
}

// modulate is x·(1 + scale) + shift with per-sample shift and scale [B, 1, W].
func modulate(x, shift, scale *graph.Node) *graph.Node {
	return graph.Add(graph.Mul(x, graph.AddScalar(scale, 1)), shift)
}

// denoise predicts ε̂ [B, H, W, C] from noisy latents xt [B, H, W, C] at timesteps t [B] (int32)
// under text states [B, L, Dt] and pooled [B, Dt] (nil: no pooled conditioning). hook (nil: none)
// takes the place of each block's self- and cross-attention on the projected heads.
func (m model) denoise(ctx *context.Context, xt, t, states, pooled *graph.Node, hook Hook) *graph.Node {
	c := ctx.In("dit")
	g := xt.Graph()
	n, f := m.cfg.Tokens()
	shape := xt.Shape()
	if shape.Rank() != 4 || shape.Dimensions[1]*shape.Dimensions[2] != n || shape.Dimensions[3] != f {
		panic(fmt.Errorf("tiny denoiser: latents of shape %s, want [B, %d, %d, %d]", shape, m.cfg.LatentShape[0], m.cfg.LatentShape[1], f))
	}
	B, W := shape.Dimensions[0], m.cfg.Width
	if t.DType() != dtypes.Int32 {
		t = graph.ConvertDType(t, dtypes.Int32)
	}

	x := m.dense(c.In("embed"), graph.Reshape(xt, B, n, f), W, false)
	x = graph.Add(x, graph.ExpandLeftToRank(m.param(c, g, "positions", initGrid, 0, n, W), 3))

	// Conditioning vector c = MLP(sinusoidal(t)) + Linear(pooled).
	cond := m.dense(c.In("time").In("fc2"), silu(m.dense(c.In("time").In("fc1"), timeFeatures(t, m.cfg.TimeDim), W, false)), W, false)
	if pooled != nil {
		cond = graph.Add(cond, m.dense(c.In("pooled"), pooled, W, false))
	}
	sc := silu(cond)
	mod := func(ctx *context.Context, name string) *graph.Node {
		return graph.ExpandAxes(m.dense(ctx.In(name), sc, W, true), 1) // [B, 1, W], zero at init
	}

	for i := range m.cfg.Depth {
		blk := c.Inf("block%d", i)
		mc := blk.In("mod")
		h := modulate(normalize(x), mod(mc, "shift1"), mod(mc, "scale1"))
		var self, cross func(q, k, v *graph.Node) *graph.Node
		if hook != nil {
			layer := i
			self = func(q, k, v *graph.Node) *graph.Node { return hook.SelfAttention(layer, q, k, v) }
			cross = func(q, k, v *graph.Node) *graph.Node { return hook.CrossAttention(layer, q, k, v) }
		}
		x = graph.Add(x, graph.Mul(mod(mc, "gate1"), m.attention(blk.In("self"), h, h, m.cfg.Heads, false, self)))
		x = graph.Add(x, m.attention(blk.In("cross"), m.layerNorm(blk.In("ln_cross"), x), states, m.cfg.Heads, false, cross))
		h = modulate(normalize(x), mod(mc, "shift2"), mod(mc, "scale2"))
		x = graph.Add(x, graph.Mul(mod(mc, "gate2"), m.mlp(blk.In("mlp"), h)))
	}
	fc := c.In("final")
	h := modulate(normalize(x), mod(fc, "shift"), mod(fc, "scale"))
	v := graph.ReshapeWithShape(m.dense(fc.In("out"), h, f, true), shape)
	// ε̂ = √(1-ᾱ_t)·x_t + √ᾱ_t·F (see the package comment above).
	return graph.Add(graph.Mul(perSample(m.sqrt1m, t, 4), xt), graph.Mul(perSample(m.sqrtAB, t, 4), v))
}
