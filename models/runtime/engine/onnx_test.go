package engine

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// fixtureRef is testdata/fixture_ref.json, written by tools/engine_fixture.py.
type fixtureRef struct {
	XShape []int     `json:"x_shape"`
	YShape []int     `json:"y_shape"`
	X      []float64 `json:"x"`
	R      []float64 `json:"r"`
	Y      []float64 `json:"y"`
	GradX  []float64 `json:"grad_x"`
}

func readFixtureRef(t *testing.T) fixtureRef {
	t.Helper()
	raw, err := os.ReadFile("testdata/fixture_ref.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref fixtureRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("testdata/fixture_ref.json: %v", err)
	}
	if len(ref.X) != 24 || len(ref.GradX) != 24 || len(ref.Y) != 24 || len(ref.R) != 24 {
		t.Fatalf("testdata/fixture_ref.json: want 24 values in x, r, y, grad_x; got %d, %d, %d, %d", len(ref.X), len(ref.R), len(ref.Y), len(ref.GradX))
	}
	return ref
}

// onnxLossAndGrad returns y = net(x) and the gradient of Σ r·y w.r.t. x, through the imported
// network, in the network's dtype converted to float64.
func onnxLossAndGrad(t *testing.T, imp *Imported, ctx *context.Context, x, r *tensors.Tensor) (y, grad []float64) {
	t.Helper()
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	e, err := context.NewExec(b, ctx, func(ctx *context.Context, x, r *graph.Node) []*graph.Node {
		y := imp.Call(ctx, x)[0]
		loss := graph.ReduceAllSum(graph.Mul(y, r))
		return []*graph.Node{graph.ConvertDType(y, dtypes.Float64), graph.ConvertDType(graph.Gradient(loss, x)[0], dtypes.Float64)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	out, err := e.Exec(x, r)
	if err != nil {
		t.Fatal(err)
	}
	return tensors.MustCopyFlatData[float64](out[0]), tensors.MustCopyFlatData[float64](out[1])
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func maxDiff64(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(a[i]-b[i]))
	}
	return m
}

func TestImportONNXGradientFloat64(t *testing.T) {
	ref := readFixtureRef(t)
	imp, err := ImportONNX("testdata/fixture_f64.onnx")
	if err != nil {
		t.Fatal(err)
	}
	if len(imp.InputNames) != 1 || imp.InputNames[0] != "x" || len(imp.OutputNames) != 1 || imp.Scope != "onnx_fixture_f64" {
		t.Fatalf("inputs %q outputs %q scope %q; want [x] [y] onnx_fixture_f64", imp.InputNames, imp.OutputNames, imp.Scope)
	}
	ctx := context.New()
	x := tensors.FromFlatDataAndDimensions(ref.X, ref.XShape...)
	r := tensors.FromFlatDataAndDimensions(ref.R, ref.YShape...)
	y, grad := onnxLossAndGrad(t, imp, ctx, x, r)
	if d := maxDiff64(y, ref.Y); d > 1e-12 {
		t.Errorf("output differs from torch by %g", d)
	}
	if d := maxDiff64(grad, ref.GradX); d > 1e-12 {
		t.Errorf("gradient differs from torch autograd by %g:\n got  %v\n want %v", d, grad, ref.GradX)
	}

	// Central finite differences of the scalar Σ r·net(x), in float64 with step h = 1e-5:
	// truncation error O(h²·f''') ≈ 1e-10 and rounding error O(ε/h) ≈ 1e-11 here.
	b, _ := Backend()
	lossExec, err := context.NewExec(b, ctx.Reuse(), func(ctx *context.Context, x, r *graph.Node) *graph.Node {
		return graph.ReduceAllSum(graph.Mul(imp.Call(ctx, x)[0], r))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lossExec.Finalize()
	loss := func(xs []float64) float64 {
		out, err := lossExec.Exec(tensors.FromFlatDataAndDimensions(xs, ref.XShape...), r)
		if err != nil {
			t.Fatal(err)
		}
		return out[0].Value().(float64)
	}
	const h = 1e-5
	fd := make([]float64, len(ref.X))
	for i := range ref.X {
		xp, xm := append([]float64{}, ref.X...), append([]float64{}, ref.X...)
		xp[i] += h
		xm[i] -= h
		fd[i] = (loss(xp) - loss(xm)) / (2 * h)
	}
	t.Logf("float64: max |y-torch| %.3g, max |grad-torch| %.3g, max |grad-fd| %.3g", maxDiff64(y, ref.Y), maxDiff64(grad, ref.GradX), maxDiff64(grad, fd))
	if d := maxDiff64(grad, fd); d > 1e-8 {
		t.Errorf("gradient differs from central finite differences by %g:\n grad %v\n fd   %v", d, grad, fd)
	}
	if maxDiff64(grad, make([]float64, len(grad))) < 1e-3 {
		t.Error("gradient is ~zero: the comparison would be vacuous")
	}

	// Weights are frozen variables in the import's scope.
	vars := imp.Variables(ctx)
	if len(vars) == 0 {
		t.Fatal("no variables created for the ONNX weights")
	}
	for _, v := range vars {
		if v.Trainable {
			t.Errorf("variable %s is trainable, want frozen", v.ScopeAndName())
		}
		if !strings.HasPrefix(v.Scope(), "/onnx_fixture_f64/") {
			t.Errorf("variable %s outside scope /onnx_fixture_f64", v.ScopeAndName())
		}
	}
}

// TestImportONNXFloat32 checks the float32 export against the float64 torch reference. Tolerance
// 2e-6: inputs, weights and outputs are O(1), float32 rounding is 6e-8 relative, and about ten
// rounding steps accumulate along the deepest path (two matmuls of width ≤ 6, softmax, tanh), so
// errors of a few 1e-7 are expected (measured: 1.7e-7).
func TestImportONNXFloat32(t *testing.T) {
	ref := readFixtureRef(t)
	imp, err := ImportONNX("testdata/fixture_f32.onnx")
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromFlatDataAndDimensions(toF32(ref.X), ref.XShape...)
	r := tensors.FromFlatDataAndDimensions(toF32(ref.R), ref.YShape...)
	y, grad := onnxLossAndGrad(t, imp, context.New(), x, r)
	t.Logf("float32: max |y-torch| %.3g, max |grad-torch| %.3g", maxDiff64(y, ref.Y), maxDiff64(grad, ref.GradX))
	if d := maxDiff64(y, ref.Y); d > 2e-6 {
		t.Errorf("float32 output differs from torch float64 by %g", d)
	}
	if d := maxDiff64(grad, ref.GradX); d > 2e-6 {
		t.Errorf("float32 gradient differs from torch float64 by %g", d)
	}
}

func TestImportONNXErrors(t *testing.T) {
	// Sigmoid, which onnx-gomlx v0.3.4 lacks, is rewritten at import and computes σ(x).
	sig, err := ImportONNX("testdata/unsupported_sigmoid.onnx")
	if err != nil {
		t.Fatalf("Sigmoid: %v", err)
	}
	b, _ := Backend()
	x := []float32{-30, -3, -0.5, 0, 0.5, 3, 30, 1}
	got, err := context.ExecOnce(b, context.New(), func(ctx *context.Context, x *graph.Node) *graph.Node {
		return sig.Call(ctx, x)[0]
	}, tensors.FromFlatDataAndDimensions(append(x, make([]float32, 16)...), 2, 3, 4))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range tensors.MustCopyFlatData[float32](got)[:len(x)] {
		if want := 1 / (1 + math.Exp(-float64(x[i]))); math.Abs(float64(v)-want) > 1e-7 {
			t.Errorf("sigmoid(%g) = %g, want %g", x[i], v, want)
		}
	}
	if _, err := ImportONNX("testdata/no_such.onnx"); err == nil || !strings.Contains(err.Error(), "no_such.onnx") {
		t.Errorf("missing file: got %v, want an error naming the file", err)
	}
	bad := t.TempDir() + "/bad.onnx"
	if err := os.WriteFile(bad, []byte("\xff\xff not a protobuf"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportONNX(bad); err == nil {
		t.Error("garbage file: got no error")
	}

	imp, err := ImportONNX("testdata/fixture_f32.onnx")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		fn      func(ctx *context.Context, x *graph.Node) *graph.Node
		wantErr string
	}{
		{"two inputs", func(ctx *context.Context, x *graph.Node) *graph.Node { return imp.Call(ctx, x, x)[0] }, "takes 1 inputs"},
		{"wrong shape", func(ctx *context.Context, x *graph.Node) *graph.Node {
			return imp.Call(ctx, graph.Reshape(x, 4, 3, 2))[0]
		}, "fixture_f32.onnx"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := context.ExecOnce(b, context.New(), tc.fn, tensors.FromShape(shapesF32(2, 3, 4)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
