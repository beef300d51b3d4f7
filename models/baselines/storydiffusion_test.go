package baselines

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
)

var testOpt = family.SampleOptions{Steps: 4, Guidance: 4, BatchSize: 2}

// TestPlainGroupEqualsSampler: the group sampler with the Plain mechanism, and StoryDiffusion
// on a group of one, give family.Sampler's latents bit for bit.
func TestPlainGroupEqualsSampler(t *testing.T) {
	g := smallTiny(t)
	reqs := requests(g, 2, "a man at the beach", "a woman in the snow")
	want, err := family.Sample(g, reqs, testOpt)
	if err != nil {
		t.Fatal(err)
	}
	if got := groupSample(t, g, Plain{}, testOpt, Group{Requests: reqs}); maxDiff(got, want) != 0 {
		t.Errorf("Plain: differs from family.Sampler by %g", maxDiff(got, want))
	}
	one := testOpt
	one.BatchSize = 1
	want1, err := family.Sample(g, reqs[:1], one)
	if err != nil {
		t.Fatal(err)
	}
	sd := StoryDiffusion{Rate: 0.5, FromLayer: 1, PlainSteps: 1, Seed: 3}
	if got := groupSample(t, g, sd, one, Group{Requests: reqs[:1]}); maxDiff(got, want1) != 0 {
		t.Errorf("StoryDiffusion, group of one: differs from family.Sampler by %g", maxDiff(got, want1))
	}
	// Two images share attention: each one changes, and the same group gives the same latents.
	a := groupSample(t, g, sd, testOpt, Group{Requests: reqs})
	if d := maxDiff(a, want); d < 1e-4 {
		t.Errorf("StoryDiffusion on two images changed the latents by %g only", d)
	}
	if b := groupSample(t, g, sd, testOpt, Group{Requests: reqs}); maxDiff(a, b) != 0 {
		t.Errorf("StoryDiffusion is not deterministic: %g", maxDiff(a, b))
	}
}

// TestSharedAttentionRateOne: with rate 1 and identical images, consistent self-attention over
// the group's tokens equals plain attention (each key appears n times with the same score).
func TestSharedAttentionRateOne(t *testing.T) {
	l := Layout{Images: 3, Copies: 1, Branches: 2, Tokens: 5, Heads: 2, HeadDim: 4, Depth: 2}
	r := rand.New(rand.NewPCG(1, 2))
	one := func() []float32 { return randomTensor(r, l.Branches, 1, l.Tokens, l.Heads, l.HeadDim) }
	tile := func(x []float32) []float32 { // the same image n times in each branch
		var out []float32
		per := len(x) / l.Branches
		for b := range l.Branches {
			for range l.Images {
				out = append(out, x[b*per:(b+1)*per]...)
			}
		}
		return out
	}
	q, k, v := tile(one()), tile(one()), tile(one())
	dims := []int{l.Rows(), l.Tokens, l.Heads, l.HeadDim}
	keep := make([]bool, l.Images*l.Tokens)
	for i := range keep {
		keep[i] = true
	}
	bias := sampleBias(l, keep)
	out := execGraph(t, func(_ *mlctx.Context, in []*graph.Node) []*graph.Node {
		h := &sharedHook{from: 1, l: l, bias: in[3]}
		return []*graph.Node{
			h.SelfAttention(1, in[0], in[1], in[2]),
			tiny.Attend(in[0], in[1], in[2], nil),
			h.SelfAttention(0, in[0], in[1], in[2]),
		}
	}, tensors.FromFlatDataAndDimensions(q, dims...), tensors.FromFlatDataAndDimensions(k, dims...),
		tensors.FromFlatDataAndDimensions(v, dims...), bias)
	if d := maxDiff(out[:1], out[1:2]); d > 1e-5 {
		t.Errorf("rate 1, identical images: shared attention differs from plain by %g", d)
	}
	if !slices.Equal(out[2], out[1]) {
		t.Errorf("a block before FromLayer is not plain attention")
	}
}

// TestStorySample: the token sample keeps about Rate of the other images' tokens and all of an
// image's own, the same for every row of a branch.
func TestStorySample(t *testing.T) {
	l := Layout{Images: 4, Copies: 1, Branches: 2, Tokens: 64, Heads: 2, HeadDim: 4, Depth: 3}
	grp := Group{Requests: make([]family.SampleRequest, 4)}
	run, err := StoryDiffusion{Rate: 0.5, FromLayer: 1, PlainSteps: 1, Seed: 1}.Start(l, grp)
	if err != nil {
		t.Fatal(err)
	}
	in, plain, err := run.Step(0, 999)
	if err != nil || !plain {
		t.Fatalf("step 0: plain = %v, err = %v; want the first step plain", plain, err)
	}
	if _, plain, _ = run.Step(1, 900); plain {
		t.Errorf("step 1 is plain")
	}
	b := tensors.MustCopyFlatData[float32](in[0])
	S := l.Images * l.Tokens
	kept := 0
	for j := range S { // one sample for all rows: row 0's flags on other images are row 1's
		if j/l.Tokens > 1 && (b[j] == 0) != (b[S+j] == 0) {
			t.Fatalf("token %d: rows 0 and 1 disagree", j)
		}
	}
	for row := range l.Rows() {
		own := row % l.Images
		for j := range S {
			keep := b[row*S+j] == 0
			if j/l.Tokens == own && !keep {
				t.Fatalf("row %d drops its own token %d", row, j)
			}
			if j/l.Tokens != own && keep {
				kept++
			}
		}
	}
	frac := float64(kept) / float64(l.Rows()*(S-l.Tokens))
	if frac < 0.4 || frac > 0.6 {
		t.Errorf("kept %.2f of the other images' tokens, want about 0.5", frac)
	}
	if _, err := (StoryDiffusion{Rate: 1.5}).Start(l, grp); err == nil {
		t.Errorf("rate 1.5 accepted")
	}
}

// TestStoryWriteRead: a bank written by a group of one image and read back by the same request
// gives the plain latents (every bank token equals one of the image's own, so attention over
// both is plain attention); a bank of another identity changes the image, and a reader with
// more steps than the bank is an error.
func TestStoryWriteRead(t *testing.T) {
	g := smallTiny(t)
	reqs := requests(g, 3, "a man at the beach", "a man in the snow", "a man in a park")
	plain := groupSample(t, g, Plain{}, testOpt, Group{Requests: reqs[2:]})
	sd := StoryDiffusion{Rate: 0.5, FromLayer: 1, PlainSteps: 1, Seed: 3}
	w := &StoryWriter{StoryDiffusion: sd}
	groupSample(t, g, w, testOpt, Group{Requests: reqs[2:]})
	if w.Bank.Steps != testOpt.Steps || len(w.Bank.K[0]) != 1 {
		t.Fatalf("bank: %d steps, %d blocks; want %d, 1", w.Bank.Steps, len(w.Bank.K[0]), testOpt.Steps)
	}
	self := groupSample(t, g, StoryReader{PlainSteps: 1, Bank: w.Bank}, testOpt, Group{Requests: reqs[2:]})
	if d := maxDiff(self, plain); d > 1e-4 {
		t.Errorf("reading an image's own bank: differs from plain by %g", d)
	}
	groupSample(t, g, w, testOpt, Group{Requests: reqs[:2]})
	other := groupSample(t, g, StoryReader{PlainSteps: 1, Bank: w.Bank}, testOpt, Group{Requests: reqs[2:]})
	if d := maxDiff(other, plain); d < 1e-4 {
		t.Errorf("reading another identity's bank changed the image by %g only", d)
	}
	long := testOpt
	long.Steps = 6
	s, err := NewGroupSampler(g, StoryReader{PlainSteps: 1, Bank: w.Bank}, long)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Sample(Group{Requests: reqs[2:]}); err == nil {
		t.Errorf("a 6-step reader of a 4-step bank did not fail")
	}
}

// textEdit is Plain with a TextEditor that appends a copy of the states (S doubles) or scales
// them, and a hook that checks the layout's S against the states it sees.
type textEdit struct {
	Plain
	double bool
	scale  float32
	sawS   *int
}

func (m textEdit) Hook(l Layout, _ []*graph.Node) (tiny.Hook, func() []*graph.Node) {
	*m.sawS = l.Text
	return tiny.PlainAttention{}, func() []*graph.Node { return nil }
}

func (m textEdit) Start(Layout, Group) (Run, error) { return hookedRun{}, nil }

type hookedRun struct{}

func (hookedRun) Step(int, int) ([]*tensors.Tensor, bool, error) { return nil, false, nil }
func (hookedRun) Observe(int, []*tensors.Tensor) error           { return nil }

func (m textEdit) EditText(l Layout, _ Group, states, pooled *tensors.Tensor) (*tensors.Tensor, *tensors.Tensor, error) {
	v := tensors.MustCopyFlatData[float32](states)
	d := states.Shape().Dimensions
	if m.double { // each row's states, then the same again
		per := d[1] * d[2]
		var out []float32
		for r := range d[0] {
			out = append(out, v[r*per:(r+1)*per]...)
			out = append(out, v[r*per:(r+1)*per]...)
		}
		return tensors.FromFlatDataAndDimensions(out, d[0], 2*d[1], d[2]), pooled, nil
	}
	for i := range v {
		v[i] *= m.scale
	}
	return tensors.FromFlatDataAndDimensions(v, d...), pooled, nil
}

// TestTextEditor: an editor's states reach the denoiser: scaling by 1 keeps the plain latents,
// by 0 changes them; appending a copy of every state doubles the hook's S and keeps the output
// up to rounding (each key appears twice with the same score).
func TestTextEditor(t *testing.T) {
	g := smallTiny(t)
	reqs := requests(g, 2, "a man at the beach", "a woman in the snow")
	plain := groupSample(t, g, Plain{}, testOpt, Group{Requests: reqs})
	var S int
	if got := groupSample(t, g, textEdit{scale: 1, sawS: &S}, testOpt, Group{Requests: reqs}); maxDiff(got, plain) != 0 {
		t.Errorf("scale 1: differs from plain by %g", maxDiff(got, plain))
	}
	if got := groupSample(t, g, textEdit{scale: 0, sawS: &S}, testOpt, Group{Requests: reqs}); maxDiff(got, plain) < 1e-4 {
		t.Errorf("scale 0 changed the latents by %g only", maxDiff(got, plain))
	}
	single := S
	got := groupSample(t, g, textEdit{double: true, sawS: &S}, testOpt, Group{Requests: reqs})
	if S != 2*single {
		t.Errorf("hook saw S = %d, want %d", S, 2*single)
	}
	if d := maxDiff(got, plain); d > 1e-4 {
		t.Errorf("duplicated states: differs from plain by %g", d)
	}
}
