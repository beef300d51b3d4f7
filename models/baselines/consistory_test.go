package baselines

import (
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
)

// TestOtsu: on a bimodal array the threshold falls between the modes and splits them exactly.
func TestOtsu(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var v []float32
	for i := range 60 {
		if i%3 == 0 {
			v = append(v, 0.8+0.05*float32(r.NormFloat64()))
		} else {
			v = append(v, 0.1+0.03*float32(r.NormFloat64()))
		}
	}
	thr := Otsu(v)
	if thr < 0.3 || thr > 0.6 {
		t.Errorf("threshold %g, want between the modes 0.1 and 0.8", thr)
	}
	for i, x := range v {
		if (x > thr) != (i%3 == 0) {
			t.Errorf("value %d (%g) on the wrong side of %g", i, x, thr)
		}
	}
	if got := Otsu([]float32{0, 0, 1, 1}); got != 0.5 {
		t.Errorf("Otsu(0 0 1 1) = %g, want 0.5", got)
	}
	if got := Otsu([]float32{2, 2, 2}); got != 2 {
		t.Errorf("Otsu of equal values = %g, want 2 (nothing above)", got)
	}
}

// consiLayout is a small hand-made layout: 3 images, shared pass and twin, guided.
var consiLayout = Layout{Images: 3, Copies: 2, Branches: 2, Tokens: 4, Heads: 2, HeadDim: 3, Depth: 2, Text: 6, Prompt: 3}

// consiSelf runs the ConsiStory hook's self-attention of block 1 and plain attention on
// hand-made q, k, v with the inputs of a run's step.
func consiSelf(t *testing.T, m ConsiStory, run *consiRun, step int, q, k, v []float32) (hooked, plain []float32) {
	t.Helper()
	l := consiLayout
	in, _, err := run.Step(step, 500)
	if err != nil {
		t.Fatal(err)
	}
	dims := []int{l.Rows(), l.Tokens, l.Heads, l.HeadDim}
	args := []any{tensors.FromFlatDataAndDimensions(q, dims...), tensors.FromFlatDataAndDimensions(k, dims...), tensors.FromFlatDataAndDimensions(v, dims...)}
	for _, x := range in {
		args = append(args, x)
	}
	out := execGraph(t, func(_ *mlctx.Context, n []*graph.Node) []*graph.Node {
		h, _ := m.Hook(l, n[3:])
		return []*graph.Node{h.SelfAttention(1, n[0], n[1], n[2]), tiny.Attend(n[0], n[1], n[2], nil)}
	}, args...)
	return out[0], out[1]
}

// TestConsiStoryEmptyMaskIsPlain: with all-zero subject masks the shared attention, and with
// no blending and no injection the whole block, equals plain attention; with masks, the
// anchors' subject tokens change the output of the other images.
func TestConsiStoryEmptyMaskIsPlain(t *testing.T) {
	l := consiLayout
	m := ConsiStory{Anchors: 2, MaskDropout: 0.5, FromLayer: 1, MaskSteps: 2, InjectFrom: 0, InjectTo: 10, InjectAlpha: 0.8, Seed: 1}
	grp := Group{Requests: make([]family.SampleRequest, 3), Subject: [][]int{{1}, {1}, {2}}}
	r := rand.New(rand.NewPCG(7, 8))
	n := l.Rows() * l.Tokens * l.Heads * l.HeadDim
	q, k, v := randomTensor(r, n), randomTensor(r, n), randomTensor(r, n)
	run0, err := m.Start(l, grp)
	if err != nil {
		t.Fatal(err)
	}
	run := run0.(*consiRun)
	zero := make([][]float32, l.Images)
	for i := range zero {
		zero[i] = make([]float32, l.Tokens) // a constant map: Otsu leaves every token out
	}
	run.maps = [][][]float32{zero}
	for i, mk := range run.Masks() {
		for p, on := range mk {
			if on {
				t.Fatalf("all-zero map: image %d token %d in the mask", i, p)
			}
		}
	}
	hooked, plain := consiSelf(t, m, run, 3, q, k, v)
	if d := maxDiff([][]float32{hooked}, [][]float32{plain}); d > 1e-6 {
		t.Errorf("all-zero masks: differs from plain attention by %g", d)
	}
	// Masks on two tokens of each image, no dropout: non-anchor image 2 now sees the anchors.
	m.MaskDropout = 0
	run.m = m
	on := make([][]float32, l.Images)
	for i := range on {
		on[i] = []float32{1, 0, 1, 0}
	}
	run.maps = [][][]float32{on}
	hooked, plain = consiSelf(t, m, run, 3, q, k, v)
	per := l.Tokens * l.Heads * l.HeadDim
	row := l.Row(0, 0, 2)
	if d := maxDiff([][]float32{hooked[row*per : (row+1)*per]}, [][]float32{plain[row*per : (row+1)*per]}); d < 1e-3 {
		t.Errorf("masked anchors changed image 2 by %g only", d)
	}
	twin := l.Row(0, 1, 2)
	if d := maxDiff([][]float32{hooked[twin*per : (twin+1)*per]}, [][]float32{plain[twin*per : (twin+1)*per]}); d > 1e-6 {
		t.Errorf("the vanilla twin is not plain attention: %g", d)
	}
}

// TestInjectFeatures: with weight 1 a token's output becomes exactly its nearest allowed
// neighbour's; with weight 0 it is unchanged.
func TestInjectFeatures(t *testing.T) {
	l := Layout{Images: 2, Copies: 1, Branches: 1, Tokens: 2, Heads: 1, HeadDim: 2}
	// image 0: tokens (1,0), (0,1); image 1: tokens (0.9,0.1), (-1,0).
	o := []float32{1, 0, 0, 1, 0.9, 0.1, -1, 0}
	w := []float32{0, 0, 1, 1} // inject into image 1's tokens
	keys := []bool{true, true, false, false}
	bias := append(append([]float32{}, maskBias([]bool{false, false, true, true})...), maskBias(keys)...)
	out := execGraph(t, func(_ *mlctx.Context, n []*graph.Node) []*graph.Node {
		return []*graph.Node{injectFeatures(n[0], n[1], n[2], l)}
	}, tensors.FromFlatDataAndDimensions(o, 2, 2, 1, 2), tensors.FromFlatDataAndDimensions(w, 2, 2, 1), tensors.FromFlatDataAndDimensions(bias, 2, 1, 4))
	want := []float32{1, 0, 0, 1, 1, 0, 0, 1} // (0.9,0.1) → (1,0); (-1,0) → nearest of image 0 by cosine is (0,1)
	for i := range want {
		if d := out[0][i] - want[i]; d > 1e-6 || d < -1e-6 {
			t.Fatalf("injected %v, want %v", out[0], want)
		}
	}
}

// TestConsiStorySample: on a real (small) generator, a group of one is the plain sample up to
// rounding (no anchors to share with), a group of three changes and is deterministic, and the
// run's masks come from the subject word.
func TestConsiStorySample(t *testing.T) {
	g := smallTiny(t)
	reqs := requests(g, 3, "a man at the beach", "a man in the snow", "a man in a park")
	grp := Group{Requests: reqs, Subject: [][]int{{2}, {2}, {2}}}
	m := ConsiStory{Anchors: 2, MaskDropout: 0.5, FromLayer: 1, MaskSteps: 2, BlendSteps: 1, QueryBlend: 0.5,
		InjectFrom: 1, InjectTo: 3, InjectAlpha: 0.8, Seed: 2}
	plain := groupSample(t, g, Plain{}, testOpt, Group{Requests: reqs})
	one := groupSample(t, g, m, testOpt, Group{Requests: reqs[:1], Subject: grp.Subject[:1]})
	if d := maxDiff(one, plain[:1]); d > 1e-4 {
		t.Errorf("group of one differs from the plain sample by %g", d)
	}
	a := groupSample(t, g, m, testOpt, grp)
	if d := maxDiff(a, plain); d < 1e-4 {
		t.Errorf("ConsiStory on three images changed them by %g only", d)
	}
	if b := groupSample(t, g, m, testOpt, grp); maxDiff(a, b) != 0 {
		t.Errorf("not deterministic: %g", maxDiff(a, b))
	}
	if _, err := m.Start(Layout{Images: 3, Prompt: 24}, Group{Requests: reqs, Subject: [][]int{{2}, {}, {2}}}); err == nil {
		t.Errorf("a request without a subject word was accepted")
	}
}
