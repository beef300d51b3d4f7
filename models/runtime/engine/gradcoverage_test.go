package engine

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
)

// TestPureGoGradientCoverage records which ops a transformer or an MLP might use can be
// differentiated on the pure-Go backend of GoMLX v0.26.0. Supported ones must match central
// finite differences (float64); unsupported ones must still fail. When a GoMLX upgrade changes
// an entry, this test fails: update the table and DESIGN.md's list of gaps.
func TestPureGoGradientCoverage(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	img := []int{1, 4, 4, 2} // [batch, height, width, channels]
	tests := []struct {
		name   string
		dims   []int
		fn     func(ctx *context.Context, x *graph.Node) *graph.Node
		wantOK bool
	}{
		{"Sqrt", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Sqrt(x) }, true},
		{"Rsqrt", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Rsqrt(x) }, true},
		{"Erf", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Erf(x) }, true},
		{"Logistic", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Logistic(x) }, true},
		{"Expm1", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Expm1(x) }, true},
		{"Log1p", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Log1p(x) }, true},
		{"Pow", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node {
			return graph.Pow(x, graph.Scalar(x.Graph(), x.DType(), 1.5))
		}, true},
		{"Abs", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Abs(graph.AddScalar(x, -0.8)) }, true},
		{"Relu(Max)", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return activations.Relu(graph.AddScalar(x, -0.8)) }, true},
		{"Clip", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.ClipScalar(x, 0.5, 1.2) }, true},
		{"Softmax", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Mul(graph.Softmax(x, -1), x) }, true},
		{"LogSoftmax", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Mul(graph.LogSoftmax(x, -1), x) }, true},
		{"Gelu(Erf)", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return activations.Gelu(x) }, true},
		{"Swish(Logistic)", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return activations.Swish(x) }, true},
		{"ReduceMax", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.ReduceMax(x, -1) }, true},
		{"ReduceMultiply", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.ReduceMultiply(x, -1) }, false},
		{"Concatenate", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node {
			return graph.Concatenate([]*graph.Node{x, graph.Square(x)}, 0)
		}, true},
		{"Slice", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node {
			return graph.Slice(x, graph.AxisRange(), graph.AxisRange(1, 3))
		}, true},
		{"Slice(strided, 3D)", []int{3, 7, 4}, func(_ *context.Context, x *graph.Node) *graph.Node {
			return graph.Slice(x, graph.AxisRange(1, 3), graph.AxisRange(1, 7).Stride(3), graph.AxisRange(0, 4).Stride(2))
		}, true},
		{"Gather(embedding lookup)", []int{5, 3}, func(_ *context.Context, x *graph.Node) *graph.Node {
			return graph.Gather(x, graph.Const(x.Graph(), [][]int32{{1}, {3}, {1}}))
		}, true},
		{"Where", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node {
			return graph.Where(graph.GreaterThan(x, graph.Scalar(x.Graph(), x.DType(), 1.0)), graph.Square(x), graph.Neg(x))
		}, true},
		{"Identity", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.Identity(x) }, true},
		{"CumSum", []int{2, 3}, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.CumSum(x, 1) }, false},
		{"MeanPool", img, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.MeanPool(x).Window(2).Done() }, false},
		{"MaxPool", img, func(_ *context.Context, x *graph.Node) *graph.Node { return graph.MaxPool(x).Window(2).Done() }, false},
		{"Conv (input gradient)", img, func(_ *context.Context, x *graph.Node) *graph.Node {
			k := graph.OnesLike(graph.Zeros(x.Graph(), shapes.Make(dtypes.Float64, 3, 3, 2, 2)))
			return graph.Convolve(x, k).StridePerAxis(1, 1).PadSame().Done()
		}, true}, // convgrad.go's Reverse-free gradient
		{"Conv (input gradient, stride 2)", img, func(_ *context.Context, x *graph.Node) *graph.Node {
			k := graph.OnesLike(graph.Zeros(x.Graph(), shapes.Make(dtypes.Float64, 3, 3, 2, 2)))
			return graph.Convolve(x, k).StridePerAxis(2, 2).PadSame().Done()
		}, true},
		{"layers.LayerNormalization", []int{2, 3}, func(ctx *context.Context, x *graph.Node) *graph.Node {
			return graph.Mul(layers.LayerNormalization(ctx, x, -1).Done(), x)
		}, true},
		{"layers.Dense", []int{2, 3}, func(ctx *context.Context, x *graph.Node) *graph.Node {
			return layers.Dense(ctx, x, true, 4)
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			size := 1
			for _, d := range tc.dims {
				size *= d
			}
			x0 := make([]float64, size)
			for i := range x0 {
				x0[i] = 0.3 + 1.1*math.Mod(float64(i)*0.618034, 1) // in [0.3, 1.4), distinct values
			}
			ctx := context.New()
			ctx.SetParam(context.ParamInitialSeed, int64(1))
			var grad []float64
			err := catch(func() {
				e, err := context.NewExec(b, ctx, func(ctx *context.Context, x *graph.Node) []*graph.Node {
					y := scalarOf(tc.fn(ctx, x))
					return []*graph.Node{y, graph.Gradient(y, x)[0]}
				})
				if err != nil {
					panic(err)
				}
				defer e.Finalize()
				out, err := e.Exec(tensors.FromFlatDataAndDimensions(x0, tc.dims...))
				if err != nil {
					panic(err)
				}
				grad = tensors.MustCopyFlatData[float64](out[1])
			})
			if ok := err == nil; ok != tc.wantOK {
				t.Fatalf("gradient supported = %v, want %v (error: %v) -- GoMLX changed: update this table and DESIGN.md", ok, tc.wantOK, err)
			}
			if err != nil {
				t.Logf("unsupported as expected: %.200v", err)
				return
			}
			loss, err := context.NewExec(b, ctx.Reuse(), func(ctx *context.Context, x *graph.Node) *graph.Node {
				return scalarOf(tc.fn(ctx, x))
			})
			if err != nil {
				t.Fatal(err)
			}
			defer loss.Finalize()
			f := func(x []float64) float64 {
				out, err := loss.Exec(tensors.FromFlatDataAndDimensions(x, tc.dims...))
				if err != nil {
					t.Fatal(err)
				}
				return out[0].Value().(float64)
			}
			const h = 1e-6
			for i := range x0 {
				xp, xm := append([]float64{}, x0...), append([]float64{}, x0...)
				xp[i] += h
				xm[i] -= h
				if fd := (f(xp) - f(xm)) / (2 * h); math.Abs(fd-grad[i]) > 1e-5*max(1, math.Abs(fd)) {
					t.Errorf("d/dx[%d]: gradient %v, finite difference %v", i, grad[i], fd)
				}
			}
		})
	}
}

// scalarOf is Σ y + y²/2: a loss whose adjoint 1 + y differs across elements.
func scalarOf(y *graph.Node) *graph.Node {
	return graph.ReduceAllSum(graph.Add(y, graph.MulScalar(graph.Mul(y, y), 0.5)))
}
