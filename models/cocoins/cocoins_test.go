package cocoins

import (
	"math"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/cocoflow/cocoflow/models/engine"
	"github.com/cocoflow/cocoflow/models/prompt"
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

// TestInsertMatchesPlan: the graph insertion (eq. 4) equals models/prompt's host insertion,
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
		if got := LambdaNeg(c.gamma, c.beta, c.k, c.K, c.schedule); !near(got, c.want, 1e-12) {
			t.Errorf("LambdaNeg(%v, %v, %d/%d, %v) = %v, want %v", c.gamma, c.beta, c.k, c.K, c.schedule, got, c.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.Negative = "divide"
	if err := o.Validate(); err == nil {
		t.Fatal("want an error for negative=divide")
	}
}
