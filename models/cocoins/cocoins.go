// Package cocoins is the method of Contrastive Concept Instantiation (paper §3.2–3.3): the
// mapping network f (mapper.go), the training objective of eqs. (3)–(9) and the λ_neg
// schedule as GoMLX graph functions (this file), and the training loop that fits f through a
// frozen generator (train.go). It knows the generator only through models/family, so the same
// code trains a mapper for the tiny family and for SDXL.
//
// Symbols of the paper and their Go names:
//
//	z1, z2 ~ N(0, I_c)    Batch.Z1, Batch.Z2; c is MapperConfig.CodeDim
//	w = f(z)              MappingNetwork                                     eq. (3)
//	ins(e, w, i)          Insert; Batch.Ins1, Batch.Ins2 (the plans for i, j)  eq. (4)
//	e*, e+, e−            anchor, positive, negative in predict                eq. (5)
//	x, m                  Batch.X, Batch.Mask (m at latent resolution)
//	ε1, ε2, t             Batch.Eps1, Batch.Eps2, Batch.T
//	√ᾱ_t, √(1 − ᾱ_t)      Batch.SqrtA, Batch.SqrtB                             eq. (6)
//	x̂*, x̂+, x̂−            Predictions.Anchor, .Pos, .Neg (DDIM x̂₀ of each)
//	x̂1, x̂2                Predictions.Plain1, .Plain2 (unmodified prompts)
//	L_dis, D^m            distance, with Options.Distance and Options.UseMask
//	λ_neg = γ (k/K)^β     Options.LambdaNeg(k, K) → Batch.LambdaNeg            §4.1
//	γ, β, k, K            Options.Gamma, Options.Beta, the step, TrainOptions.Steps
//	δ                     Delta, in λ_neg / (D− + δ)
//	L_con                 Terms.Con                                            eq. (7)
//	L_back                Terms.Back                                           eq. (8)
//	λ_con, λ_back, L      Options.LambdaCon, Options.LambdaBack, Terms.Loss    eq. (9)
package cocoins

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
)

// Delta (δ) keeps the reciprocal of eq. (7) finite: λ_neg / (D− + δ).
const Delta = 1e-4

// Options select the loss, its ablations (paper Tables 3–5) and the λ_neg schedule. Every
// field means what it says; the train stage declares the defaults.
type Options struct {
	// Negative is the form of the negative term of L_con: "reciprocal" (eq. 7, λ_neg / D−),
	// "subtract" (the common triplet form max(0, D+ − λ_neg·D− + Margin)), or "none" (positive
	// distance only: Table 3's "Pos").
	Negative string
	Margin   float64
	// Distance is L_dis: "mse", "l1" or "cosine".
	Distance string
	// UseMask computes distances on the subject only (D^m); false compares whole latents.
	UseMask bool
	// Background adds L_back (eq. 8).
	Background bool
	// LambdaCon and LambdaBack weigh the two losses (eq. 9).
	LambdaCon, LambdaBack float64
	// SamePrompt builds the positive from P1 instead of P2; SameNoise noises it with ε1
	// instead of ε2 (Table 5).
	SamePrompt, SameNoise bool
	// Gamma (γ) and Beta (β) shape λ_neg = γ (k/K)^β; with Schedule false λ_neg = γ throughout.
	Gamma, Beta float64
	Schedule    bool
}

// Validate names the first bad option.
func (o Options) Validate() error {
	switch o.Negative {
	case "reciprocal", "subtract", "none":
	default:
		return fmt.Errorf("negative must be reciprocal, subtract or none, got %q", o.Negative)
	}
	switch o.Distance {
	case "mse", "l1", "cosine":
	default:
		return fmt.Errorf("distance must be mse, l1 or cosine, got %q", o.Distance)
	}
	if o.Gamma < 0 || o.Beta < 0 {
		return fmt.Errorf("gamma and beta must be ≥ 0, got %g and %g", o.Gamma, o.Beta)
	}
	return nil
}

// LambdaNeg is the negative-distance weight of step k of K, λ_neg = γ (k/K)^β (§4.1): it grows
// over training so that codes are not pushed apart before the positive term shapes them. With
// the schedule off it is the constant γ.
func (o Options) LambdaNeg(k, K int) float64 {
	if !o.Schedule || K <= 0 {
		return o.Gamma
	}
	r := float64(k) / float64(K)
	if r <= 0 {
		return 0
	}
	return o.Gamma * math.Pow(r, o.Beta)
}

// Inputs are the graph inputs of one training step for B triplets, in the one order of
// slots: the host fills an Inputs[any] with tensors (the trainer's batcher), the graph reads
// them back as a Batch. The host makes the random draws (z, ε, t), the insertion plans and
// λ_neg, so that a step is a pure function of them.
type Inputs[T any] struct {
	X         T // [B, latent...] image latents x
	Mask      T // [B, ...] subject mask m, broadcastable to x (e.g. [B, h, w, 1])
	IDs1      T // [B, L] int32 token ids of P1 (padded)
	IDs2      T // [B, L] int32 token ids of P2
	Ins1      T // [B, L, L+1] one-hot plan inserting one word at i into P1 (models/text/prompt.OneHot)
	Ins2      T // [B, L, L+1] the plan inserting at j into P2
	EOS1      T // [B] int32 EOS index of P1 as tokenized
	EOS2      T // [B] int32 EOS index of P2
	EOS1w     T // [B] int32 EOS index of P1 after the insertion (moved by +1)
	EOS2w     T // [B] int32 EOS index of P2 after the insertion
	Z1, Z2    T // [B, c] latent codes z1, z2 ~ N(0, I)
	Eps1      T // [B, latent...] noise ε1
	Eps2      T // [B, latent...] noise ε2
	T         T // [B] int32 timesteps
	SqrtA     T // [B] float32 √ᾱ_t
	SqrtB     T // [B] float32 √(1 − ᾱ_t)
	LambdaNeg T // scalar float32 λ_neg of this step (Options.LambdaNeg)
}

// Batch is one step's inputs inside the graph.
type Batch = Inputs[*Node]

// slots lists the fields in graph input order, the only place that order is written.
func (in *Inputs[T]) slots() []*T {
	return []*T{&in.X, &in.Mask, &in.IDs1, &in.IDs2, &in.Ins1, &in.Ins2, &in.EOS1, &in.EOS2, &in.EOS1w, &in.EOS2w,
		&in.Z1, &in.Z2, &in.Eps1, &in.Eps2, &in.T, &in.SqrtA, &in.SqrtB, &in.LambdaNeg}
}

// list returns the inputs in graph order.
func (in Inputs[T]) list() []T {
	s := in.slots()
	out := make([]T, len(s))
	for i, p := range s {
		out[i] = *p
	}
	return out
}

// batchOf reads a Batch from graph inputs given in the order of list.
func batchOf(nodes []*Node) Batch {
	var b Batch
	s := b.slots()
	if len(nodes) != len(s) {
		panic(fmt.Errorf("cocoins: %d graph inputs, a batch has %d", len(nodes), len(s)))
	}
	for i, p := range s {
		*p = nodes[i]
	}
	return b
}

// Terms are the loss and its parts, each a scalar averaged over the batch.
type Terms struct {
	Loss *Node // L (eq. 9)
	Con  *Node // L_con (eq. 7)
	Pos  *Node // D(x̂*, x̂+), the positive distance
	Neg  *Node // D(x̂*, x̂−), the negative distance
	// Plain is D(x̂1, x̂2), the positive distance of the plain generator (no pseudo-words) on
	// the same noisy latents and prompts. D+ / Plain below 1 means the code makes the subject
	// more consistent than the prompt alone does; the ratio does not swing with the batch's
	// timesteps as D+ does.
	Plain     *Node
	Back      *Node // L_back (eq. 8); zero when disabled
	LambdaNeg *Node // λ_neg of the step, as the batch gave it
}

// Predictions are the DDIM approximations x̂ of one batch (§3.3): of the anchor, the positive
// and the negative, and of the plain generator on the anchor's and the positive's noisy
// latents under the unmodified prompts (no gradient flows through those two).
type Predictions struct {
	Anchor, Pos, Neg *Node // x̂*, x̂+, x̂−
	Plain1, Plain2   *Node // x̂1, x̂2
}

// Loss builds L for one batch. ctx is the training context: it holds the frozen generator's
// variables and the mapper's (under MapperScope), the only trainable ones.
func Loss(ctx *context.Context, g family.Generator, mcfg MapperConfig, b Batch, o Options) Terms {
	return o.terms(predict(ctx, g, mcfg, b, o), b.Mask, b.LambdaNeg)
}

// predict runs eqs. (3)–(6) and the DDIM approximation for one batch.
func predict(ctx *context.Context, g family.Generator, mcfg MapperConfig, b Batch, o Options) Predictions {
	// Eq. 3: pseudo-words w = f(z), one vector per text encoder.
	w1 := MappingNetwork(ctx, mcfg, b.Z1)
	w2 := MappingNetwork(ctx.Reuse(), mcfg, b.Z2)

	// Token embeddings of the two captions, before position embeddings.
	e1 := g.Embed(ctx, b.IDs1)
	e2 := g.Embed(ctx, b.IDs2)

	// Eq. 5: e* = ins(e1, w1, i), e+ = ins(e2, w1, j), e− = ins(e1, w2, i).
	// The positive's prompt: its embeddings, insertion plan and EOS index after the insertion
	// (posEOS) and before it (posEOSPlain, for the plain generator below).
	posE, posIns, posEOS, posEOSPlain := e2, b.Ins2, b.EOS2w, b.EOS2
	if o.SamePrompt {
		posE, posIns, posEOS, posEOSPlain = e1, b.Ins1, b.EOS1w, b.EOS1
	}
	anchor := insertAll(e1, w1, b.Ins1)
	positive := insertAll(posE, w1, posIns)
	negative := insertAll(e1, w2, b.Ins1)

	// The three prompts go through the text encoder and the denoiser as one batch of 3B.
	embeds := make([]*Node, len(anchor))
	for k := range anchor {
		embeds[k] = Concatenate([]*Node{anchor[k], positive[k], negative[k]}, 0)
	}
	cond := g.Encode(ctx, embeds, Concatenate([]*Node{b.EOS1w, posEOS, b.EOS1w}, 0))

	// Eq. 6: x_t* = √ᾱ x + √(1−ᾱ) ε1, x_t+ with ε2, x_t− = x_t*.
	posEps := b.Eps2
	if o.SameNoise {
		posEps = b.Eps1
	}
	xtAnchor := addNoise(b.X, b.Eps1, b.SqrtA, b.SqrtB)
	xtPos := addNoise(b.X, posEps, b.SqrtA, b.SqrtB)
	xt := Concatenate([]*Node{xtAnchor, xtPos, xtAnchor}, 0)
	t3 := Concatenate([]*Node{b.T, b.T, b.T}, 0)
	sa3 := Concatenate([]*Node{b.SqrtA, b.SqrtA, b.SqrtA}, 0)
	sb3 := Concatenate([]*Node{b.SqrtB, b.SqrtB, b.SqrtB}, 0)

	// DDIM approximation x̂ = (x_t − √(1−ᾱ) ε̂) / √ᾱ of each prediction (§3.3).
	x0 := predictX0(g.Info().Prediction, xt, g.Denoise(ctx, xt, t3, cond), sa3, sb3)
	B := b.X.Shape().Dimensions[0]
	p := Predictions{
		Anchor: SliceAxis(x0, 0, AxisRange(0, B)),
		Pos:    SliceAxis(x0, 0, AxisRange(B, 2*B)),
		Neg:    SliceAxis(x0, 0, AxisRange(2*B, 3*B)),
	}

	// The plain generator's predictions x̂1, x̂2 from the same noisy latents with the unmodified
	// prompts: eq. 8 compares backgrounds with them, and their subject distance D^m(x̂1, x̂2) is
	// the positive distance without a code, the reference that D(x̂*, x̂+) must fall below for a
	// code to make subjects consistent.
	refCond := g.Encode(ctx, concatEach(e1, posE), Concatenate([]*Node{b.EOS1, posEOSPlain}, 0))
	xtRef := Concatenate([]*Node{xtAnchor, xtPos}, 0)
	sa2 := Concatenate([]*Node{b.SqrtA, b.SqrtA}, 0)
	sb2 := Concatenate([]*Node{b.SqrtB, b.SqrtB}, 0)
	ref := StopGradient(predictX0(g.Info().Prediction, xtRef, g.Denoise(ctx, xtRef, Concatenate([]*Node{b.T, b.T}, 0), refCond), sa2, sb2))
	p.Plain1 = SliceAxis(ref, 0, AxisRange(0, B))
	p.Plain2 = SliceAxis(ref, 0, AxisRange(B, 2*B))
	return p
}

// terms computes eqs. (7)–(9) from the predictions, the subject mask m and λ_neg.
func (o Options) terms(p Predictions, mask, lambdaNeg *Node) Terms {
	m := mask
	if !o.UseMask {
		m = nil
	}
	dPos := distance(o.Distance, p.Anchor, p.Pos, m)
	dNeg := distance(o.Distance, p.Anchor, p.Neg, m)

	// Eq. 7 with the subject mask: L_con = D^m(x̂*, x̂+) + λ_neg / (D^m(x̂*, x̂−) + δ).
	var con *Node
	switch o.Negative {
	case "reciprocal":
		con = Add(dPos, Div(lambdaNeg, AddScalar(dNeg, Delta)))
	case "subtract":
		con = Max(AddScalar(Sub(dPos, Mul(lambdaNeg, dNeg)), o.Margin), ZerosLike(dPos))
	case "none":
		con = dPos
	}
	lCon := ReduceAllMean(con)
	loss := MulScalar(lCon, o.LambdaCon)
	dPlain := distance(o.Distance, p.Plain1, p.Plain2, m)

	// Eq. 8: L_back = D^{1−m}(x̂*, x̂1) + D^{1−m}(x̂+, x̂2) + D^{1−m}(x̂−, x̂1).
	lBack := ScalarZero(lCon.Graph(), lCon.DType())
	if o.Background {
		back := OneMinus(mask)
		lBack = ReduceAllMean(Add(Add(
			distance(o.Distance, p.Anchor, p.Plain1, back),
			distance(o.Distance, p.Pos, p.Plain2, back)),
			distance(o.Distance, p.Neg, p.Plain1, back)))
		// Eq. 9: L = λ_con L_con + λ_back L_back.
		loss = Add(loss, MulScalar(lBack, o.LambdaBack))
	}
	return Terms{Loss: loss, Con: lCon, Pos: ReduceAllMean(dPos), Neg: ReduceAllMean(dNeg), Plain: ReduceAllMean(dPlain),
		Back: lBack, LambdaNeg: lambdaNeg}
}

// Insert places one pseudo-word per row into token embeddings (eq. 4): e [B, L, D], w [B, D],
// plan [B, L, L+1] from models/text/prompt.OneHot; out = plan · concat(e, w) — a matrix product, so
// gradients reach w.
func Insert(e, w, plan *Node) *Node {
	return Einsum("bls,bsd->bld", plan, Concatenate([]*Node{e, InsertAxes(w, 1)}, 1))
}

func insertAll(e, w []*Node, plan *Node) []*Node {
	out := make([]*Node, len(e))
	for k := range e {
		out[k] = Insert(e[k], w[k], plan)
	}
	return out
}

func concatEach(a, b []*Node) []*Node {
	out := make([]*Node, len(a))
	for k := range a {
		out[k] = Concatenate([]*Node{a[k], b[k]}, 0)
	}
	return out
}

// perSample reshapes a [B] vector so it broadcasts over x [B, ...].
func perSample(v, x *Node) *Node {
	dims := make([]int, x.Rank())
	for i := range dims {
		dims[i] = 1
	}
	dims[0] = x.Shape().Dimensions[0]
	return Reshape(v, dims...)
}

// addNoise is eq. 1 / eq. 6: √ᾱ x + √(1−ᾱ) ε.
func addNoise(x, eps, sa, sb *Node) *Node {
	return Add(Mul(perSample(sa, x), x), Mul(perSample(sb, x), eps))
}

// predictX0 is the DDIM approximation of the clean latent from a denoiser output.
func predictX0(prediction string, xt, out, sa, sb *Node) *Node {
	a, b := perSample(sa, xt), perSample(sb, xt)
	if prediction == "v" {
		return Sub(Mul(a, xt), Mul(b, out)) // x̂ = √ᾱ x_t − √(1−ᾱ) v
	}
	return Div(Sub(xt, Mul(b, out)), a) // x̂ = (x_t − √(1−ᾱ) ε̂) / √ᾱ
}

// distance is L_dis per sample ([B]); with a mask m, L_dis^m(x, y) = L_dis(m·x, m·y) (§3.3).
func distance(kind string, x, y, m *Node) *Node {
	if m != nil {
		x, y = Mul(x, m), Mul(y, m)
	}
	axes := make([]int, x.Rank()-1)
	for i := range axes {
		axes[i] = i + 1
	}
	switch kind {
	case "l1":
		return ReduceMean(Abs(Sub(x, y)), axes...)
	case "cosine":
		dot := ReduceSum(Mul(x, y), axes...)
		nx := Sqrt(AddScalar(ReduceSum(Mul(x, x), axes...), 1e-8))
		ny := Sqrt(AddScalar(ReduceSum(Mul(y, y), axes...), 1e-8))
		return OneMinus(Div(dot, Mul(nx, ny)))
	}
	d := Sub(x, y)
	return ReduceMean(Mul(d, d), axes...)
}
