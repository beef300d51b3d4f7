package baselines

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/cocoflow/cocoflow/models/family/tiny"
)

// StoryDiffusion is Consistent Self-Attention (Zhou et al., "StoryDiffusion", 2024; public code
// github.com/HVision-NKU/StoryDiffusion, SpatialAttnProcessor2_0 and cal_attn_mask_xl in
// utils/gradio_utils.py): the images of one identity are denoised in one batch, and in the
// later half of the denoiser (its code: the UNet's up blocks) each image's self-attention keys
// and values are its own tokens plus a random sample of the other images' tokens. The sample is
// one random keep flag per token of the batch, drawn once per generation with probability Rate
// (sa32 = sa64 = 0.5 in its code) and shared by every query, with an image's own tokens always
// kept; conditional and unconditional rows share within their own branch. The first PlainSteps
// steps run plain (its code: cur_step < 1).
//
// Where this departs: its code also skips the shared attention at random on some calls (with
// probability 0.3 in the first 40 % of steps, 0.1 after); here every step after the first uses
// it, a deterministic choice that gives the method its strongest consistency. "The later half"
// is blocks FromLayer … Depth-1 of the tiny DiT, which has no up and down blocks.
type StoryDiffusion struct {
	Rate       float64 // probability that another image's token is among an image's keys
	FromLayer  int     // first block with consistent self-attention
	PlainSteps int     // steps at the start that run the plain denoiser
	Seed       uint64  // seed of the token sample (with the group's noise seeds)
}

// Copies is 1.
func (StoryDiffusion) Copies() int { return 1 }

// Inputs: the score bias of the token sample, [rows, 1, 1, n·L].
func (StoryDiffusion) Inputs(l Layout) []shapes.Shape {
	return []shapes.Shape{shapes.Make(dtypes.Float32, l.Rows(), 1, 1, l.Images*l.Tokens)}
}

// Hook shares the keys and values of the group in blocks >= FromLayer (a group of one image
// attends to itself, exactly as the plain denoiser).
func (m StoryDiffusion) Hook(l Layout, in []*graph.Node) (tiny.Hook, func() []*graph.Node) {
	return &sharedHook{from: m.FromLayer, l: l, bias: in[0]}, func() []*graph.Node { return nil }
}

// Start draws the group's token sample.
func (m StoryDiffusion) Start(l Layout, g Group) (Run, error) {
	if m.Rate < 0 || m.Rate > 1 {
		return nil, fmt.Errorf("storydiffusion: rate = %g, want 0 … 1", m.Rate)
	}
	r := rand.New(rand.NewPCG(m.Seed, groupHash(g)))
	keep := make([]bool, l.Images*l.Tokens)
	for j := range keep {
		keep[j] = r.Float64() < m.Rate
	}
	none := make([]bool, len(keep))
	return &storyRun{plain: m.PlainSteps, bias: sampleBias(l, keep), ownOnly: sampleBias(l, none)}, nil
}

// sampleBias is the score bias [rows, 1, 1, n·L] that keeps, for every row, the tokens flagged
// in keep and all of its own image's tokens.
func sampleBias(l Layout, keep []bool) *tensors.Tensor {
	bias := make([]float32, 0, l.Rows()*len(keep))
	for row := range l.Rows() {
		own := row % l.Images
		k := append([]bool(nil), keep...)
		for p := range l.Tokens {
			k[own*l.Tokens+p] = true
		}
		bias = append(bias, maskBias(k)...)
	}
	return tensors.FromFlatDataAndDimensions(bias, l.Rows(), 1, 1, len(keep))
}

// groupHash is a stream number of a group from its noise seeds, so that each group draws its
// own random sample, reproducibly.
func groupHash(g Group) uint64 {
	h := fnv.New64a()
	for _, r := range g.Requests {
		var b [8]byte
		for k := range b {
			b[k] = byte(r.Seed >> (8 * k))
		}
		_, _ = h.Write(b[:])
	}
	return h.Sum64()
}

type storyRun struct {
	plain         int
	bias, ownOnly *tensors.Tensor // the token sample; each image's own tokens alone
}

func (r *storyRun) Step(i, _ int) ([]*tensors.Tensor, bool, error) {
	return []*tensors.Tensor{r.bias}, i < r.plain, nil
}

func (r *storyRun) Observe(int, []*tensors.Tensor) error { return nil }

// sharedHook is self-attention over the group's tokens with a score bias [rows, 1, 1, n·L] in
// blocks >= from; plain attention elsewhere and for a group of one.
type sharedHook struct {
	from int
	l    Layout
	bias *graph.Node
}

func (h *sharedHook) SelfAttention(layer int, q, k, v *graph.Node) *graph.Node {
	if layer < h.from || h.l.Images == 1 {
		return tiny.Attend(q, k, v, nil)
	}
	return tiny.Attend(q, groupKeys(k, h.l), groupKeys(v, h.l), h.bias)
}

func (h *sharedHook) CrossAttention(_ int, q, k, v *graph.Node) *graph.Node {
	return tiny.Attend(q, k, v, nil)
}

// StoryBank holds what StoryDiffusion's write mode stored of a group of identity images: per
// step and shared block the keys and values of their tokens, [branches, n·L, H, dh] (its code
// keeps the attention inputs, id_bank[cur_step]; their projections are the same thing for the
// same weights). Reading it needs the same steps and guidance as the writing.
type StoryBank struct {
	From, Steps, Branches, Images int
	K, V                          [][][]float32 // [step][block - From] flat [branches, n·L, H, dh]
}

// StoryWriter is StoryDiffusion's write mode: the group is generated as StoryDiffusion does,
// and the keys and values of its tokens in the shared blocks are stored in Bank at every step.
type StoryWriter struct {
	StoryDiffusion
	Bank *StoryBank // filled by the last group sampled (in place when given)
}

// Hook is StoryDiffusion's, with the keys and values of blocks >= FromLayer as outputs.
func (m *StoryWriter) Hook(l Layout, in []*graph.Node) (tiny.Hook, func() []*graph.Node) {
	h := &recordHook{sharedHook: sharedHook{from: m.FromLayer, l: l, bias: in[0]}}
	return h, func() []*graph.Node { return h.kv }
}

// Start begins a group and an empty bank.
func (m *StoryWriter) Start(l Layout, g Group) (Run, error) {
	r, err := m.StoryDiffusion.Start(l, g)
	if err != nil {
		return nil, err
	}
	if m.Bank == nil {
		m.Bank = &StoryBank{}
	}
	*m.Bank = StoryBank{From: m.FromLayer, Branches: l.Branches, Images: l.Images} // in place: readers hold the pointer
	return &writeRun{storyRun: r.(*storyRun), bank: m.Bank, layers: l.Depth - m.FromLayer}, nil
}

type recordHook struct {
	sharedHook
	kv []*graph.Node
}

func (h *recordHook) SelfAttention(layer int, q, k, v *graph.Node) *graph.Node {
	if layer >= h.from {
		h.kv = append(h.kv, k, v)
	}
	return h.sharedHook.SelfAttention(layer, q, k, v)
}

type writeRun struct {
	*storyRun
	bank   *StoryBank
	layers int
}

func (r *writeRun) Step(i, t int) ([]*tensors.Tensor, bool, error) {
	if i < r.plain { // recorded too, with each image attending to its own tokens alone
		return []*tensors.Tensor{r.ownOnly}, false, nil
	}
	return r.storyRun.Step(i, t)
}

// Observe stores the step's keys and values.
func (r *writeRun) Observe(i int, out []*tensors.Tensor) error {
	if len(out) != 2*r.layers {
		return fmt.Errorf("storydiffusion write: step %d returned %d tensors, want %d", i, len(out), 2*r.layers)
	}
	ks, vs := make([][]float32, r.layers), make([][]float32, r.layers)
	for b := range r.layers {
		var err error
		if ks[b], err = tensors.CopyFlatData[float32](out[2*b]); err != nil {
			return err
		}
		if vs[b], err = tensors.CopyFlatData[float32](out[2*b+1]); err != nil {
			return err
		}
	}
	r.bank.K, r.bank.V = append(r.bank.K, ks), append(r.bank.V, vs)
	r.bank.Steps = len(r.bank.K)
	return nil
}

// StoryReader is StoryDiffusion's read mode: each image of a later group attends, in the
// shared blocks, to its own tokens and to every token stored in Bank (its code: the id bank
// concatenated before the image's own hidden states, no random sample), after PlainSteps plain
// steps. The images of the group do not attend to each other: they can be generated one at a
// time.
type StoryReader struct {
	PlainSteps int
	Bank       *StoryBank
}

// Copies is 1.
func (StoryReader) Copies() int { return 1 }

// Inputs: per shared block the stored keys and values, [branches, n_bank·L, H, dh] each.
func (m StoryReader) Inputs(l Layout) []shapes.Shape {
	var out []shapes.Shape
	for range 2 * (l.Depth - m.Bank.From) {
		out = append(out, shapes.Make(dtypes.Float32, l.Branches, m.Bank.Images*l.Tokens, l.Heads, l.HeadDim))
	}
	return out
}

// Hook attends to the bank and the image's own tokens in blocks >= Bank.From.
func (m StoryReader) Hook(l Layout, in []*graph.Node) (tiny.Hook, func() []*graph.Node) {
	return &readHook{from: m.Bank.From, l: l, bank: in}, func() []*graph.Node { return nil }
}

// Start checks that the bank was written with the reader's steps and guidance.
func (m StoryReader) Start(l Layout, _ Group) (Run, error) {
	b := m.Bank
	if b == nil || b.Steps == 0 {
		return nil, fmt.Errorf("storydiffusion read: the bank is empty (write a group first)")
	}
	if b.Branches != l.Branches {
		return nil, fmt.Errorf("storydiffusion read: the bank has %d branches, this sampler %d (guidance differs)", b.Branches, l.Branches)
	}
	return &readRun{m: m, l: l}, nil
}

type readRun struct {
	m StoryReader
	l Layout
}

func (r *readRun) Step(i, _ int) ([]*tensors.Tensor, bool, error) {
	b := r.m.Bank
	if i >= b.Steps {
		return nil, false, fmt.Errorf("storydiffusion read: step %d, the bank holds %d steps", i, b.Steps)
	}
	if i < r.m.PlainSteps {
		return nil, true, nil
	}
	dims := []int{b.Branches, b.Images * r.l.Tokens, r.l.Heads, r.l.HeadDim}
	var in []*tensors.Tensor
	for layer := range b.K[i] {
		in = append(in, tensors.FromFlatDataAndDimensions(b.K[i][layer], dims...), tensors.FromFlatDataAndDimensions(b.V[i][layer], dims...))
	}
	return in, false, nil
}

func (r *readRun) Observe(int, []*tensors.Tensor) error { return nil }

type readHook struct {
	from int
	l    Layout
	bank []*graph.Node
}

// withBank puts the bank of each row's branch before the row's own tokens: x [rows, L, H, dh]
// and bank [branches, M, H, dh] give [rows, M+L, H, dh].
func (h *readHook) withBank(x, bank *graph.Node) *graph.Node {
	d, M := x.Shape().Dimensions, bank.Shape().Dimensions[1]
	per := h.l.Rows() / h.l.Branches
	b := graph.BroadcastToDims(graph.Reshape(bank, h.l.Branches, 1, M, d[2], d[3]), h.l.Branches, per, M, d[2], d[3])
	return graph.Concatenate([]*graph.Node{graph.Reshape(b, h.l.Rows(), M, d[2], d[3]), x}, 1)
}

func (h *readHook) SelfAttention(layer int, q, k, v *graph.Node) *graph.Node {
	if layer < h.from {
		return tiny.Attend(q, k, v, nil)
	}
	b := 2 * (layer - h.from)
	return tiny.Attend(q, h.withBank(k, h.bank[b]), h.withBank(v, h.bank[b+1]), nil)
}

func (h *readHook) CrossAttention(_ int, q, k, v *graph.Node) *graph.Node {
	return tiny.Attend(q, k, v, nil)
}
