package cocoins

import (
	"math"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/models/text/prompt"
)

// run executes a graph function of no inputs and returns its outputs as flat float32 slices.
func run(t *testing.T, fn func(g *Graph) []*Node) [][]float32 {
	t.Helper()
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewExec(b, func(g *Graph) []*Node { return fn(g) })
	if err != nil {
		t.Fatal(err)
	}
	outs, err := e.Exec()
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		res[i] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestInsertMatchesPlan: the graph insertion (eq. 4) equals models/text/prompt's host insertion,
// including the EOS shift and the padding dropped at the end.
func TestInsertMatchesPlan(t *testing.T) {
	const L, D = 6, 3
	e := make([]float32, L*D)
	for i := range e {
		e[i] = float32(i + 1)
	}
	w := []float32{-1, -2, -3}
	plan, err := prompt.NewPlan(L, 3, []int{2}, L) // tokens: BOS a CONCEPT EOS pad pad
	if err != nil {
		t.Fatal(err)
	}
	want, err := prompt.Insert(e, D, plan, w)
	if err != nil {
		t.Fatal(err)
	}
	oneHot := prompt.OneHot([]prompt.Plan{plan}, L, 1)
	got := run(t, func(g *Graph) []*Node {
		eN := Const(g, tensors.FromFlatDataAndDimensions(e, 1, L, D))
		wN := Const(g, tensors.FromFlatDataAndDimensions(w, 1, D))
		pN := Const(g, tensors.FromFlatDataAndDimensions(oneHot, 1, L, L+1))
		return []*Node{Insert(eN, wN, pN)}
	})[0]
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("position %d: graph insertion %v, host %v", i/D, got, want)
		}
	}
	// The pseudo-word sits right before the concept token (index 2 -> 3).
	if got[2*D] != -1 || got[3*D] != e[2*D] || plan.EOS != 4 {
		t.Fatalf("insertion at 2: %v (EOS moved to %d)", got, plan.EOS)
	}
}

// TestDistances checks L_dis and the masked L_dis^m on hand-made tensors.
func TestDistances(t *testing.T) {
	x := [][]float32{{1, 2, 3, 4}, {0, 0, 1, 0}}
	y := [][]float32{{1, 0, 3, 0}, {0, 0, 1, 0}}
	m := [][]float32{{0, 1, 0, 0}, {1, 1, 1, 1}}
	out := run(t, func(g *Graph) []*Node {
		xn, yn, mn := Const(g, x), Const(g, y), Const(g, m)
		return []*Node{
			distance("mse", xn, yn, nil), distance("mse", xn, yn, mn),
			distance("l1", xn, yn, nil), distance("cosine", xn, yn, nil),
		}
	})
	checks := []struct {
		name string
		got  []float32
		want []float64
	}{
		{"mse", out[0], []float64{(4 + 16) / 4.0, 0}},
		{"masked mse", out[1], []float64{4 / 4.0, 0}},
		{"l1", out[2], []float64{(2 + 4) / 4.0, 0}},
		{"cosine", out[3], []float64{1 - 10/(math.Sqrt(30)*math.Sqrt(10)), 0}},
	}
	for _, c := range checks {
		for i := range c.want {
			if !near(float64(c.got[i]), c.want[i], 1e-5) {
				t.Errorf("%s sample %d = %v, want %v", c.name, i, c.got[i], c.want[i])
			}
		}
	}
}

// TestPredictX0 inverts the noising of eq. 6 with the true noise (DDIM approximation) and
// converts v-predictions.
func TestPredictX0(t *testing.T) {
	x := [][]float32{{0.5, -1}, {2, 0}}
	eps := [][]float32{{0.1, 0.3}, {-0.7, 1}}
	sa := []float32{0.8, 0.3}
	sb := []float32{0.6, float32(math.Sqrt(1 - 0.09))}
	out := run(t, func(g *Graph) []*Node {
		xn, en, a, b := Const(g, x), Const(g, eps), Const(g, sa), Const(g, sb)
		xt := addNoise(xn, en, a, b)
		// v = √ᾱ ε − √(1−ᾱ) x
		v := Sub(Mul(perSample(a, xn), en), Mul(perSample(b, xn), xn))
		return []*Node{predictX0("epsilon", xt, en, a, b), predictX0("v", xt, v, a, b)}
	})
	for k, name := range []string{"epsilon", "v"} {
		for i, row := range x {
			for j, want := range row {
				if got := out[k][i*2+j]; !near(float64(got), float64(want), 1e-5) {
					t.Errorf("%s: x̂[%d][%d] = %v, want %v", name, i, j, got, want)
				}
			}
		}
	}
}

func TestLambdaNegSchedule(t *testing.T) {
	cases := []struct {
		gamma, beta float64
		k, K        int
		schedule    bool
		want        float64
	}{
		{0.01, 2, 0, 100, true, 0},
		{0.01, 2, 50, 100, true, 0.0025},
		{0.01, 2, 100, 100, true, 0.01},
		{0.01, 1, 25, 100, true, 0.0025},
		{0.01, 2, 10, 100, false, 0.01},
	}
	for _, c := range cases {
		o := Options{Gamma: c.gamma, Beta: c.beta, Schedule: c.schedule}
		if got := o.LambdaNeg(c.k, c.K); !near(got, c.want, 1e-12) {
			t.Errorf("LambdaNeg(%v, %v, %d/%d, %v) = %v, want %v", c.gamma, c.beta, c.k, c.K, c.schedule, got, c.want)
		}
	}
}

// method is the paper's full method: reciprocal negatives, masked MSE, background loss, the
// λ_neg schedule.
func method() Options {
	return Options{Negative: "reciprocal", Margin: 0.1, Distance: "mse", UseMask: true, Background: true,
		LambdaCon: 1, LambdaBack: 1, Gamma: 0.002, Beta: 2, Schedule: true}
}

func TestOptionsValidate(t *testing.T) {
	o := method()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.Negative = "divide"
	if err := o.Validate(); err == nil {
		t.Fatal("want an error for negative=divide")
	}
}

// lossTerms evaluates Loss on the committed tiny generator for two triplets whose captions
// differ, returning D+, D−, Plain and L_back.
func lossTerms(t *testing.T, o Options) (pos, neg, plain, back float64) {
	t.Helper()
	g, err := tiny.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	tok := g.Tokenizer()
	info := g.Info()
	mcfg := MapperConfig{CodeDim: 4, Layers: 2, Width: 8, Activation: "gelu", Rescale: "none", OutDims: []int{info.Encoders[0].Dim}}
	L := info.Encoders[0].MaxLength

	// Per caption: padded ids, the plan inserting one word before the class word, EOS indices.
	captions := [2][2]string{
		{"a man is looking at the camera.", "a photo of a man in the park."},
		{"a girl with red hair.", "a portrait of a girl at the beach."},
	}
	caps := [2]*Captions{NewCaptions(L, tok.Pad()), NewCaptions(L, tok.Pad())}
	for _, pair := range captions {
		for k, c := range pair {
			enc := tok.Encode(c)
			word := "man"
			if strings.Contains(c, "girl") {
				word = "girl"
			}
			if err := caps[k].Add(enc.IDs, text.ConceptIndex(enc, word)); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids1, ins1, eos1, eos1w := caps[0].Tensors()
	ids2, ins2, eos2, eos2w := caps[1].Tensors()
	const B = 2
	lat := append([]int{B}, info.LatentShape...)
	size := 1
	for _, d := range info.LatentShape {
		size *= d
	}
	normal := func(seed uint64, n int) []float32 { return diffusion.GaussianNoise(seed, 7, n) }
	mask := make([]float32, B*info.LatentShape[0]*info.LatentShape[1])
	for i := range mask {
		mask[i] = float32(i % 2) // a checkerboard "subject", so both D^m and D^{1−m} see pixels
	}
	in := Inputs[any]{
		X:    tensors.FromFlatDataAndDimensions(normal(1, B*size), lat...),
		Mask: tensors.FromFlatDataAndDimensions(mask, B, info.LatentShape[0], info.LatentShape[1], 1),
		IDs1: ids1, IDs2: ids2, Ins1: ins1, Ins2: ins2, EOS1: eos1, EOS2: eos2, EOS1w: eos1w, EOS2w: eos2w,
		Z1: tensors.FromFlatDataAndDimensions(normal(2, B*4), B, 4), Z2: tensors.FromFlatDataAndDimensions(normal(3, B*4), B, 4),
		Eps1: tensors.FromFlatDataAndDimensions(normal(4, B*size), lat...), Eps2: tensors.FromFlatDataAndDimensions(normal(5, B*size), lat...),
		T: []int32{300, 700}, SqrtA: []float32{0.8, 0.4}, SqrtB: []float32{0.6, 0.9165}, LambdaNeg: float32(0.002),
	}
	backend, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	exec, err := context.NewExec(backend, g.Context(), func(ctx *context.Context, in []*Node) []*Node {
		terms := Loss(ctx, g, mcfg, batchOf(in), o)
		return []*Node{terms.Pos, terms.Neg, terms.Plain, terms.Back}
	})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := exec.Exec(in.list()...)
	if err != nil {
		t.Fatal(err)
	}
	v := func(i int) float64 { return float64(tensors.MustCopyFlatData[float32](outs[i])[0]) }
	return v(0), v(1), v(2), v(3)
}

// TestLossTriplets checks eqs. 5–6 through the whole loss: with the anchor's prompt and noise
// for the positive (Table 5's "=, =") the anchor and the positive are one sample, so D+ and
// the plain generator's positive distance are exactly zero while another code still differs;
// with other prompts and noise (the method) all three distances are positive.
func TestLossTriplets(t *testing.T) {
	o := method()
	o.SamePrompt, o.SameNoise = true, true
	pos, neg, plain, back := lossTerms(t, o)
	if pos != 0 || plain != 0 {
		t.Errorf("same prompt and noise: D+ = %g, plain D = %g, want 0 (one sample twice)", pos, plain)
	}
	if neg <= 0 || back <= 0 {
		t.Errorf("same prompt and noise: D− = %g, L_back = %g, want > 0 (another code; a pseudo-word changes the background)", neg, back)
	}
	pos, neg, plain, _ = lossTerms(t, method())
	if pos <= 0 || neg <= 0 || plain <= 0 {
		t.Errorf("other prompt and noise: D+ = %g, D− = %g, plain D = %g, want all > 0", pos, neg, plain)
	}
}

// TestTermsOnHandMadePredictions reads eqs. (7)–(9) off Terms for x̂ tensors made by hand, so a
// wrong form of the negative term, of λ_neg, δ, the mask or the weights would fail. Two
// samples of four latent cells; the subject is the first two cells.
func TestTermsOnHandMadePredictions(t *testing.T) {
	anchor := [][]float32{{1, 2, 0, 0}, {0, 1, 1, 0}}
	pos := [][]float32{{1, 0, 0, 1}, {0, 1, 1, 2}}    // D+^m per sample: (0+4)/4 = 1, 0
	neg := [][]float32{{3, 2, 0, 0}, {0, 3, 1, 0}}    // D−^m: 4/4 = 1, 4/4 = 1
	plain1 := [][]float32{{0, 0, 2, 0}, {0, 0, 1, 2}} // x̂1
	plain2 := [][]float32{{0, 0, 0, 0}, {0, 0, 0, 0}} // x̂2
	mask := [][]float32{{1, 1, 0, 0}, {1, 1, 0, 0}}
	const lambda = 0.5
	// D^m(x̂1, x̂2): 0, 0. Background distances D^{1−m} per sample:
	// (x̂*, x̂1): (4+0)/4 = 1, (0+4)/4 = 1;  (x̂+, x̂2): 1/4, (1+4)/4 = 5/4;  (x̂−, x̂1): 1, 1.
	back := (1 + 0.25 + 1 + 1 + 1.25 + 1) / 2.0
	dPos, dNeg := []float64{1, 0}, []float64{1, 1}
	for _, tc := range []struct {
		negative string
		con      float64
	}{
		{"reciprocal", (dPos[0] + lambda/(dNeg[0]+Delta) + dPos[1] + lambda/(dNeg[1]+Delta)) / 2},
		{"subtract", (math.Max(dPos[0]-lambda*dNeg[0]+0.1, 0) + math.Max(dPos[1]-lambda*dNeg[1]+0.1, 0)) / 2},
		{"none", (dPos[0] + dPos[1]) / 2},
	} {
		o := method()
		o.Negative, o.LambdaCon, o.LambdaBack = tc.negative, 2, 0.25
		out := run(t, func(g *Graph) []*Node {
			p := Predictions{Anchor: Const(g, anchor), Pos: Const(g, pos), Neg: Const(g, neg), Plain1: Const(g, plain1), Plain2: Const(g, plain2)}
			terms := o.terms(p, Const(g, mask), Const(g, float32(lambda)))
			return []*Node{terms.Con, terms.Loss, terms.Pos, terms.Neg, terms.Plain, terms.Back, terms.LambdaNeg}
		})
		got := func(i int) float64 { return float64(out[i][0]) }
		want := []float64{tc.con, 2*tc.con + 0.25*back, 0.5, 1, 0, back, lambda}
		for i, name := range []string{"Con", "Loss", "Pos", "Neg", "Plain", "Back", "LambdaNeg"} {
			if !near(got(i), want[i], 1e-5*math.Max(1, math.Abs(want[i]))) {
				t.Errorf("%s: Terms.%s = %.6f, want %.6f", tc.negative, name, got(i), want[i])
			}
		}
	}
	// Without the mask the distances cover the whole latent, and without the background loss
	// L = λ_con L_con.
	o := method()
	o.UseMask, o.Background = false, false
	out := run(t, func(g *Graph) []*Node {
		p := Predictions{Anchor: Const(g, anchor), Pos: Const(g, pos), Neg: Const(g, neg), Plain1: Const(g, plain1), Plain2: Const(g, plain2)}
		terms := o.terms(p, Const(g, mask), Const(g, float32(lambda)))
		return []*Node{terms.Pos, terms.Loss, terms.Back}
	})
	// D+ over all cells: (0+4+0+1)/4 = 5/4, (0+0+0+4)/4 = 1; D−: 1, 1.
	wantCon := (1.25 + lambda/(1+Delta) + 1 + lambda/(1+Delta)) / 2
	if p, l, b := float64(out[0][0]), float64(out[1][0]), float64(out[2][0]); !near(p, 1.125, 1e-5) || !near(l, wantCon, 1e-5) || b != 0 {
		t.Errorf("unmasked, no background: D+ %.6f, L %.6f, L_back %g; want 1.125, %.6f, 0", p, l, b, wantCon)
	}
}

// TestInputsOrder: a Batch read from graph inputs puts every input in the field it was given
// in on the host, so the order of slots serves both sides.
func TestInputsOrder(t *testing.T) {
	var host Inputs[any]
	for i, p := range host.slots() {
		*p = float32(i)
	}
	out := run(t, func(g *Graph) []*Node {
		vals := host.list()
		nodes := make([]*Node, len(vals))
		for i, v := range vals {
			nodes[i] = Const(g, v)
		}
		b := batchOf(nodes)
		return []*Node{b.X, b.Mask, b.Z2, b.SqrtB, b.LambdaNeg}
	})
	for i, want := range []float32{0, 1, 11, 16, 17} {
		if out[i][0] != want {
			t.Errorf("output %d reads input %v, want %v", i, out[i][0], want)
		}
	}
}
