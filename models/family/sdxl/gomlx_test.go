package sdxl

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text/prompt"
)

// imported returns the fixture generator with its graphs imported into GoMLX.
func imported(t *testing.T) *Generator {
	t.Helper()
	g := loadFixture(t)
	start := time.Now()
	ctx := g.Context()
	if err := g.importErr(); err != nil {
		t.Fatal(err)
	}
	t.Logf("GoMLX import %v; rewrites: text_encoder %v, text_encoder_2 %v, unet %v", time.Since(start).Round(time.Millisecond), g.imported[0].Rewrites, g.imported[1].Rewrites, g.imported[2].Rewrites)
	for v := range ctx.IterVariables() {
		if v.Trainable {
			t.Errorf("generator variable %s is trainable", v.ScopeAndName())
		}
	}
	return g
}

// run compiles fn on the generator's context and runs it once.
func run(t *testing.T, g *Generator, fn func(ctx *context.Context, in []*Node) []*Node, inputs ...any) [][]float32 {
	t.Helper()
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	exec, err := context.NewExec(b, g.Context().Reuse(), fn)
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	outs, err := exec.Exec(inputs...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		if res[i], err = tensors.CopyFlatData[float32](o); err != nil {
			t.Fatal(err)
		}
		o.FinalizeAll()
	}
	return res
}

// Parity of the imported graphs with the torch references (which ONNX Runtime matches, see
// TestSurgeryMatchesTheExport and TestUNetAndVAEMatchTorch): Embed and Encode of the reference
// prompts, and Denoise of the reference UNet inputs.
func TestGoMLXForwardMatchesTorch(t *testing.T) {
	g := imported(t)
	r := loadRef(t)
	ids64 := r.Text1["input_ids"].ints(t)
	B, L := int(r.Text1["input_ids"].Shape[0]), int(r.Text1["input_ids"].Shape[1])
	ids := make([]int32, len(ids64))
	eos := make([]int32, B)
	for i, v := range ids64 {
		ids[i] = int32(v)
		if v == int64(r.Eos) && eos[i/L] == 0 {
			eos[i/L] = int32(i % L)
		}
	}
	out := run(t, g, func(ctx *context.Context, in []*Node) []*Node {
		c := g.Encode(ctx, g.Embed(ctx, in[0]), in[1])
		return []*Node{c.States, c.Pooled}
	}, tensors.FromFlatDataAndDimensions(ids, B, L), eos)
	d1, d2 := g.enc[0].dim, g.enc[1].dim
	p1, p2 := r.Text1["penultimate"].floats(t), r.Text2["penultimate"].floats(t)
	var s1, s2 []float32
	for i := range B * L {
		s1 = append(s1, out[0][i*(d1+d2):i*(d1+d2)+d1]...)
		s2 = append(s2, out[0][i*(d1+d2)+d1:(i+1)*(d1+d2)]...)
	}
	for _, c := range []struct {
		name      string
		got, want []float32
	}{{"text_encoder penultimate", s1, p1}, {"text_encoder_2 penultimate", s2, p2}, {"text_encoder_2 text_embeds", out[1], r.Text2["text_embeds"].floats(t)}} {
		d := maxDiff(t, c.name, c.got, c.want)
		t.Logf("%s: GoMLX vs torch max |diff| %.3g (scale %.3g)", c.name, d, maxAbs(c.want))
		if d > 1e-4*max(1, maxAbs(c.want)) {
			t.Errorf("%s: GoMLX vs torch: %.3g", c.name, d)
		}
	}

	var ts float32
	if err := json.Unmarshal(r.UNet["timestep"], &ts); err != nil {
		t.Fatal(err)
	}
	in := func(name string) *tensors.Tensor {
		rt := r.unetTensor(t, name)
		dims := make([]int, len(rt.Shape))
		for i, d := range rt.Shape {
			dims[i] = int(d)
		}
		return tensors.FromFlatDataAndDimensions(rt.floats(t), dims...)
	}
	unet := run(t, g, func(ctx *context.Context, in []*Node) []*Node {
		c := family.Cond{States: in[2], Pooled: in[3], Extra: map[string]*Node{unetTimeIDs: in[4]}}
		return []*Node{g.Denoise(ctx, in[0], in[1], c)}
	}, in(unetSample), []int32{int32(ts)}, in(unetStates), in(unetPooled), in(unetTimeIDs))
	want := r.unetTensor(t, unetOut).floats(t)
	d := maxDiff(t, "unet", unet[0], want)
	t.Logf("unet: GoMLX vs torch max |diff| %.3g (scale %.3g)", d, maxAbs(want))
	if d > 1e-4*max(1, maxAbs(want)) {
		t.Errorf("unet: GoMLX vs torch: %.3g", d)
	}
}

// The gradient of a scalar loss with respect to the pseudo-words inserted before the concept
// token, through Embed, the insertion, both text encoders and the UNet, against torch autograd.
func TestGradientMatchesTorch(t *testing.T) {
	g := imported(t)
	gr := loadRef(t).Gradient
	tok := g.Tokenizer()
	L := tok.MaxLength()
	ids := make([]int32, L)
	for i := range ids {
		ids[i] = tok.Pad()
	}
	copy(ids, gr.IDs)
	plan, err := prompt.NewPlan(L, len(gr.IDs)-1, []int{gr.Concept}, L)
	if err != nil {
		t.Fatal(err)
	}
	if plan.EOS != gr.EOS {
		t.Fatalf("plan EOS %d, reference %d", plan.EOS, gr.EOS)
	}
	m := prompt.OneHot([]prompt.Plan{plan}, L, 1)
	dims := func(rt refTensor) []int {
		d := make([]int, len(rt.Shape))
		for i, v := range rt.Shape {
			d[i] = int(v)
		}
		return d
	}
	out := run(t, g, func(ctx *context.Context, in []*Node) []*Node {
		ids, plan, w1, w2, x, weight := in[0], in[1], in[2], in[3], in[4], in[5]
		e := g.Embed(ctx, ids)
		for k, w := range []*Node{w1, w2} { // eq. 4: plan · concat(e, w)
			e[k] = Einsum("bls,bsd->bld", plan, Concatenate([]*Node{e[k], InsertAxes(w, 1)}, 1))
		}
		eos := Const(ids.Graph(), []int32{int32(gr.EOS)})
		c := g.Encode(ctx, e, eos)
		eps := g.Denoise(ctx, x, Const(ids.Graph(), []int32{int32(gr.Timestep)}), c)
		loss := ReduceAllSum(Mul(eps, weight))
		grads := Gradient(loss, w1, w2)
		return []*Node{loss, grads[0], grads[1], c.States, c.Pooled}
	}, tensors.FromFlatDataAndDimensions(ids, 1, L), tensors.FromFlatDataAndDimensions(m, 1, L, L+1),
		tensors.FromFlatDataAndDimensions(gr.W1, 1, len(gr.W1)), tensors.FromFlatDataAndDimensions(gr.W2, 1, len(gr.W2)),
		tensors.FromFlatDataAndDimensions(gr.X.floats(t), dims(gr.X)...), tensors.FromFlatDataAndDimensions(gr.Weight.floats(t), dims(gr.Weight)...))
	t.Logf("loss: GoMLX %.6g, torch %.6g", out[0][0], gr.Loss)
	if math.Abs(float64(out[0][0])-gr.Loss) > 1e-4*math.Max(1, math.Abs(gr.Loss)) {
		t.Errorf("loss %.6g, torch %.6g", out[0][0], gr.Loss)
	}
	if d := maxDiff(t, "text_embeds", out[4], gr.TextEmbeds.floats(t)); d > 1e-4 {
		t.Errorf("text_embeds after insertion: %.3g", d)
	}
	for k, c := range []struct {
		got, want []float32
	}{{out[1], gr.GradW1}, {out[2], gr.GradW2}} {
		d := maxDiff(t, "gradient", c.got, c.want)
		rel := d / maxAbs(c.want)
		t.Logf("d loss / d w%d: max |GoMLX - torch| %.3g, relative to max |grad| %.3g: %.2g", k+1, d, maxAbs(c.want), rel)
		if rel > 1e-3 {
			t.Errorf("gradient w.r.t. w%d differs from torch by %.3g (relative %.2g)", k+1, d, rel)
		}
	}
	_ = dtypes.Float32
}
