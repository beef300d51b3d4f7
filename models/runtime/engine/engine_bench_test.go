package engine

// Benchmarks that size the project's tiny models: one training step (forward + backward + Adam)
// and one forward pass of a small transformer on patch tokens with cross-attention to text
// tokens, on the pure-Go backend, with the GEMM or the stock DotGeneral gradient and with two
// executor configurations. Run, for instance:
//
//	go test ./models/runtime/engine -run '^$' -bench . -benchtime=3x -count=3
//
// Each sub-benchmark compiles its graph and runs one warm-up step before the timer starts, and
// reports s/step and GFLOP/s (matrix-multiply FLOPs only; a training step counts 3× the forward
// FLOPs).
//
// Medians of 3 runs on the 2-core development machine (shared with other jobs, load ≈ 2):
//
//	train B32  W96 D3:  gemm par-1 1.97 s (2.8 GFLOP/s), seq 2.81 s; stock par-1 13.9 s (0.40 GFLOP/s)
//	train B32  W96 D4:  gemm par-1 3.17 s, seq 3.66 s
//	train B32 W128 D3:  gemm par-1 2.54 s (3.8 GFLOP/s), seq 3.90 s
//	train B32 W128 D4:  gemm par-1 3.79 s (3.4 GFLOP/s), seq 5.29 s
//	forward B64 W96 D3: par-1 1.60 s, seq 1.70 s;  W128 D4: par-1 2.74 s, seq 3.21 s

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// tinyDiT is the benchmark transformer: patch tokens [B, L, P] → width W, depth blocks of
// (self-attention, cross-attention to T text tokens of width W, MLP ×4), → [B, L, P].
type tinyDiT struct {
	Batch, Tokens, Patch, Width, Depth, Heads, TextTokens int
}

func (m tinyDiT) String() string { return fmt.Sprintf("W%d_D%d_B%d", m.Width, m.Depth, m.Batch) }

// forwardFLOPs counts the multiply-adds (×2) of every matrix multiply of one forward pass.
func (m tinyDiT) forwardFLOPs() float64 {
	L, T, W, P := float64(m.Tokens), float64(m.TextTokens), float64(m.Width), float64(m.Patch)
	perBlock := 0.0
	perBlock += 4 * 2 * L * W * W     // self-attention q, k, v, out
	perBlock += 2 * 2 * L * L * W     // scores and attention·values
	perBlock += 2*2*L*W*W + 2*2*T*W*W // cross-attention q, out; k, v on text
	perBlock += 2 * 2 * L * T * W     // cross scores and attention·values
	perBlock += 2 * 2 * L * W * 4 * W // MLP
	embed := 2*L*P*W + 2*L*W*P        // patch embedding in and out
	return float64(m.Batch) * (embed + float64(m.Depth)*perBlock)
}

func dense(ctx *context.Context, x *graph.Node, out int) *graph.Node {
	in := x.Shape().Dimensions[x.Rank()-1]
	w := ctx.VariableWithShape("w", shapes.Make(x.DType(), in, out)).ValueGraph(x.Graph())
	b := ctx.VariableWithShape("b", shapes.Make(x.DType(), out)).ValueGraph(x.Graph())
	y := graph.DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{0}, nil)
	return graph.Add(y, graph.ExpandLeftToRank(b, y.Rank()))
}

// layerNorm normalises the last axis; it uses Div/Sqrt because Rsqrt has no gradient in GoMLX.
func layerNorm(ctx *context.Context, x *graph.Node) *graph.Node {
	w := x.Shape().Dimensions[x.Rank()-1]
	mean := graph.ReduceAndKeep(x, graph.ReduceMean, -1)
	d := graph.Sub(x, mean)
	v := graph.ReduceAndKeep(graph.Mul(d, d), graph.ReduceMean, -1)
	n := graph.Div(d, graph.Sqrt(graph.AddScalar(v, 1e-5)))
	g := ctx.WithInitializer(initializers.One).VariableWithShape("scale", shapes.Make(x.DType(), w)).ValueGraph(x.Graph())
	b := ctx.WithInitializer(initializers.Zero).VariableWithShape("offset", shapes.Make(x.DType(), w)).ValueGraph(x.Graph())
	return graph.Add(graph.Mul(n, graph.ExpandLeftToRank(g, 3)), graph.ExpandLeftToRank(b, 3))
}

// attention is multi-head attention of x [B, L, W] over kv [B, S, W] with separate q/k/v
// projections (slicing a fused projection would need Pad in the gradient).
func attention(ctx *context.Context, x, kv *graph.Node, heads int) *graph.Node {
	B, L, W := x.Shape().Dimensions[0], x.Shape().Dimensions[1], x.Shape().Dimensions[2]
	S, dh := kv.Shape().Dimensions[1], W/heads
	q := graph.Reshape(dense(ctx.In("q"), x, W), B, L, heads, dh)
	k := graph.Reshape(dense(ctx.In("k"), kv, W), B, S, heads, dh)
	v := graph.Reshape(dense(ctx.In("v"), kv, W), B, S, heads, dh)
	scores := graph.DotGeneral(q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2}) // [B, H, L, S]
	attn := graph.Softmax(graph.MulScalar(scores, 1/math.Sqrt(float64(dh))), -1)
	o := graph.DotGeneral(attn, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, H, L, dh]
	o = graph.Reshape(graph.TransposeAllAxes(o, 0, 2, 1, 3), B, L, W)
	return dense(ctx.In("o"), o, W)
}

// gelu is the tanh approximation of GELU.
func gelu(x *graph.Node) *graph.Node {
	inner := graph.MulScalar(graph.Add(x, graph.MulScalar(graph.Mul(graph.Mul(x, x), x), 0.044715)), math.Sqrt(2/math.Pi))
	return graph.Mul(graph.MulScalar(x, 0.5), graph.AddScalar(graph.Tanh(inner), 1))
}

func (m tinyDiT) forward(ctx *context.Context, patches, text *graph.Node) *graph.Node {
	x := dense(ctx.In("embed"), patches, m.Width)
	pos := ctx.In("embed").VariableWithShape("pos", shapes.Make(x.DType(), m.Tokens, m.Width)).ValueGraph(x.Graph())
	x = graph.Add(x, graph.ExpandLeftToRank(pos, 3))
	for i := range m.Depth {
		blk := ctx.In(fmt.Sprintf("block%d", i))
		h := layerNorm(blk.In("ln1"), x)
		x = graph.Add(x, attention(blk.In("self"), h, h, m.Heads))
		x = graph.Add(x, attention(blk.In("cross"), layerNorm(blk.In("ln2"), x), text, m.Heads))
		h = layerNorm(blk.In("ln3"), x)
		x = graph.Add(x, dense(blk.In("mlp2"), gelu(dense(blk.In("mlp1"), h, 4*m.Width)), m.Width))
	}
	return dense(ctx.In("out"), layerNorm(ctx.In("lnf"), x), m.Patch)
}

func (m tinyDiT) inputs(batch int, seed uint64) (patches, text, target *tensors.Tensor) {
	r := rand.New(rand.NewPCG(seed, 1))
	mk := func(dims ...int) *tensors.Tensor {
		t := tensors.FromShape(shapes.Make(dtypes.Float32, dims...))
		tensors.MutableFlatData(t, func(f []float32) {
			for i := range f {
				f[i] = float32(r.NormFloat64())
			}
		})
		return t
	}
	return mk(batch, m.Tokens, m.Patch), mk(batch, m.TextTokens, m.Width), mk(batch, m.Tokens, m.Patch)
}

// trainExec builds the training step: MSE of the prediction against target, Adam update.
func (m tinyDiT) trainExec(b backends.Backend, ctx *context.Context) (*context.Exec, error) {
	opt := optimizers.Adam().LearningRate(1e-3).Done()
	return context.NewExec(b, ctx, func(ctx *context.Context, patches, text, target *graph.Node) *graph.Node {
		d := graph.Sub(m.forward(ctx, patches, text), target)
		loss := graph.ReduceAllMean(graph.Mul(d, d))
		opt.UpdateGraph(ctx, patches.Graph(), loss)
		return loss
	})
}

func newBenchContext() *context.Context {
	ctx := context.New()
	ctx.SetParam(context.ParamInitialSeed, int64(1))
	return ctx.WithInitializer(initializers.RandomNormalFn(ctx, 0.02))
}

func benchBackend(b *testing.B, config string) backends.Backend {
	be, err := newBackend(config)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(be.Finalize)
	return be
}

var benchExecutors = []struct{ name, config string }{
	{"par-1", "go:parallelism=-1"},
	{"seq", "go:ops_sequential"},
}

func BenchmarkTrainStep(b *testing.B) {
	type run struct {
		model tinyDiT
		gemm  bool
		exec  string
	}
	small := tinyDiT{Batch: 32, Tokens: 64, Patch: 48, Width: 96, Depth: 3, Heads: 4, TextTokens: 16}
	var runs []run
	for _, m := range []tinyDiT{small,
		{Batch: 32, Tokens: 64, Patch: 48, Width: 96, Depth: 4, Heads: 4, TextTokens: 16},
		{Batch: 32, Tokens: 64, Patch: 48, Width: 128, Depth: 3, Heads: 4, TextTokens: 16},
		{Batch: 32, Tokens: 64, Patch: 48, Width: 128, Depth: 4, Heads: 4, TextTokens: 16}} {
		for _, e := range benchExecutors {
			runs = append(runs, run{m, true, e.name})
		}
	}
	runs = append(runs, run{small, false, "par-1"}) // the stock gradient is slow: smallest config only
	for _, r := range runs {
		grad := "gemm"
		if !r.gemm {
			grad = "stock"
		}
		b.Run(fmt.Sprintf("%s/%s/%s", r.model, grad, r.exec), func(b *testing.B) {
			var config string
			for _, e := range benchExecutors {
				if e.name == r.exec {
					config = e.config
				}
			}
			be := benchBackend(b, config)
			prev := SetGEMMGradients(r.gemm)
			defer SetGEMMGradients(prev)
			ctx := newBenchContext()
			e, err := r.model.trainExec(be, ctx)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Finalize()
			patches, text, target := r.model.inputs(r.model.Batch, 1)
			if _, err := e.Exec(patches, text, target); err != nil { // compile + warm-up
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := e.Exec(patches, text, target); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			perStep := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(perStep, "s/step")
			b.ReportMetric(3*r.model.forwardFLOPs()/perStep/1e9, "GFLOP/s")
		})
	}
}

func BenchmarkForward(b *testing.B) {
	for _, m := range []tinyDiT{
		{Batch: 64, Tokens: 64, Patch: 48, Width: 96, Depth: 3, Heads: 4, TextTokens: 16},
		{Batch: 64, Tokens: 64, Patch: 48, Width: 128, Depth: 4, Heads: 4, TextTokens: 16},
	} {
		for _, ex := range benchExecutors {
			b.Run(fmt.Sprintf("%s/%s", m, ex.name), func(b *testing.B) {
				be := benchBackend(b, ex.config)
				e, err := context.NewExec(be, newBenchContext(), func(ctx *context.Context, patches, text *graph.Node) *graph.Node {
					return m.forward(ctx, patches, text)
				})
				if err != nil {
					b.Fatal(err)
				}
				defer e.Finalize()
				patches, text, _ := m.inputs(m.Batch, 2)
				if _, err := e.Exec(patches, text); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for range b.N {
					if _, err := e.Exec(patches, text); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				perStep := b.Elapsed().Seconds() / float64(b.N)
				b.ReportMetric(perStep, "s/step")
				b.ReportMetric(m.forwardFLOPs()/perStep/1e9, "GFLOP/s")
			})
		}
	}
}

// TestTinyDiTTrains runs the benchmark transformer at toy size with both gradients: the loss must
// fall over a few Adam steps, the two gradients must give the same losses, and no op used is
// missing on the pure-Go backend.
func TestTinyDiTTrains(t *testing.T) {
	m := tinyDiT{Batch: 2, Tokens: 8, Patch: 6, Width: 16, Depth: 2, Heads: 4, TextTokens: 3}
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	patches, text, target := m.inputs(m.Batch, 3)
	losses := map[bool][]float32{}
	defer SetGEMMGradients(true)
	for _, gemm := range []bool{true, false} {
		SetGEMMGradients(gemm)
		e, err := m.trainExec(b, newBenchContext())
		if err != nil {
			t.Fatal(err)
		}
		for range 8 {
			out, err := e.Exec(patches, text, target)
			if err != nil {
				t.Fatal(err)
			}
			losses[gemm] = append(losses[gemm], out[0].Value().(float32))
		}
		e.Finalize()
	}
	l := losses[true]
	if !(l[len(l)-1] < 0.9*l[0]) {
		t.Errorf("loss did not fall: %v", l)
	}
	for i := range l {
		if d := math.Abs(float64(l[i] - losses[false][i])); d > 1e-4*math.Abs(float64(l[i])) {
			t.Errorf("step %d: GEMM loss %v vs stock loss %v", i, l[i], losses[false][i])
		}
	}
	if f := m.forwardFLOPs(); f <= 0 {
		t.Errorf("forwardFLOPs = %v", f)
	}
}
