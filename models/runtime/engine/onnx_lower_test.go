package engine

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
)

// opCase is a one-node ONNX graph (plus Constant nodes for its constant inputs) and what it must
// compute, written out by hand from the ONNX operator definitions.
type opCase struct {
	name    string
	opset   int64
	op      string
	attrs   []*onnxgraph.Attr
	x       []float64 // the graph input "x", float32 (or int64 when xInt)
	xDims   []int64
	xInt    bool
	consts  []*onnxgraph.Tensor // further inputs, in order, as Constant nodes ("" name: omitted input)
	outputs int
	want    [][]float64
	rewrite string // the rewrite that must have been applied
}

func sAttr(name, v string) *onnxgraph.Attr {
	return &onnxgraph.Attr{Name: name, Type: onnxgraph.AttrString, S: []byte(v)}
}
func iAttr(name string, v int64) *onnxgraph.Attr {
	return &onnxgraph.Attr{Name: name, Type: onnxgraph.AttrInt, I: v}
}
func isAttr(name string, v ...int64) *onnxgraph.Attr {
	return &onnxgraph.Attr{Name: name, Type: onnxgraph.AttrInts, Ints: v}
}
func fAttr(name string, v float32) *onnxgraph.Attr {
	return &onnxgraph.Attr{Name: name, Type: onnxgraph.AttrFloat, F: v}
}
func f32(name string, dims []int64, v ...float64) *onnxgraph.Tensor {
	return onnxgraph.NewTensor(name, onnxgraph.Float, dims, v...)
}
func i64(name string, dims []int64, v ...int64) *onnxgraph.Tensor {
	return onnxgraph.NewInt64Tensor(name, dims, v...)
}

// model builds the case's graph.
func (c opCase) model() *onnxgraph.Model {
	dt := onnxgraph.Float
	if c.xInt {
		dt = onnxgraph.Int64
	}
	dims := make([]onnxgraph.Dim, len(c.xDims))
	for i, d := range c.xDims {
		dims[i] = onnxgraph.Dim{Value: d}
	}
	g := &onnxgraph.Graph{Name: c.name, Inputs: []*onnxgraph.ValueInfo{{Name: "x", Type: onnxgraph.NewTensorType(dt, dims...)}}}
	node := &onnxgraph.Node{Name: "op", OpType: c.op, Inputs: []string{"x"}, Attrs: c.attrs}
	for _, t := range c.consts {
		if t == nil {
			node.Inputs = append(node.Inputs, "")
			continue
		}
		g.Nodes = append(g.Nodes, &onnxgraph.Node{Name: "c_" + t.Name, OpType: "Constant", Outputs: []string{t.Name},
			Attrs: []*onnxgraph.Attr{{Name: "value", Type: onnxgraph.AttrTensor, T: t}}})
		node.Inputs = append(node.Inputs, t.Name)
	}
	for i := range max(c.outputs, 1) {
		name := "y" + string(rune('0'+i))
		node.Outputs = append(node.Outputs, name)
		g.Outputs = append(g.Outputs, &onnxgraph.ValueInfo{Name: name, Type: onnxgraph.NewTensorType(onnxgraph.Float)})
	}
	g.Nodes = append(g.Nodes, node)
	return &onnxgraph.Model{IRVersion: 8, Opsets: []onnxgraph.Opset{{Version: c.opset}}, Graph: g}
}

func normalizeRows(x []float64, rows int, eps float64) []float64 {
	n := len(x) / rows
	out := make([]float64, len(x))
	for r := range rows {
		row := x[r*n : (r+1)*n]
		mean, v := 0.0, 0.0
		for _, a := range row {
			mean += a
		}
		mean /= float64(n)
		for _, a := range row {
			v += (a - mean) * (a - mean)
		}
		v /= float64(n)
		for i, a := range row {
			out[r*n+i] = (a - mean) / math.Sqrt(v+eps)
		}
	}
	return out
}

func geluErf(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }
func geluTanh(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

func mapF(x []float64, f func(float64) float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = f(v)
	}
	return out
}

func opCases() []opCase {
	x8 := []float64{0.5, -1, 2, 0.25, 3, -2, 1.5, 0} // [2, 4] or [2, 2, 2]
	x24 := make([]float64, 24)                       // [2, 4, 3]
	for i := range x24 {
		x24[i] = math.Sin(float64(i)*1.3) * 2
	}
	gn := normalizeRows(x24, 4, 1e-5) // [N=2, G=2, 6]
	perGroup := slices.Clone(gn)
	perChannel := slices.Clone(gn)
	for i := range gn {
		group, channel := (i/6)%2, (i/3)%4
		perGroup[i] = gn[i]*[]float64{2, -1}[group] + []float64{0.5, 1}[group]
		perChannel[i] = gn[i]*[]float64{1, 2, 3, 4}[channel] + []float64{0, 0.1, 0.2, 0.3}[channel]
	}
	repeat := func(x []float64, h, w, rh, rw int) []float64 {
		var out []float64
		for i := range h * rh {
			for j := range w * rw {
				out = append(out, x[(i/rh)*w+j/rw])
			}
		}
		return out
	}
	x6 := []float64{1, 2, 3, 4, 5, 6}
	return []opCase{
		{name: "GroupNormalization-18", opset: 18, op: "GroupNormalization", attrs: []*onnxgraph.Attr{iAttr("num_groups", 2)},
			x: x24, xDims: []int64{2, 4, 3}, consts: []*onnxgraph.Tensor{f32("s", []int64{2}, 2, -1), f32("b", []int64{2}, 0.5, 1)},
			want: [][]float64{perGroup}, rewrite: "GroupNormalization"},
		{name: "GroupNormalization-21", opset: 21, op: "GroupNormalization", attrs: []*onnxgraph.Attr{iAttr("num_groups", 2)},
			x: x24, xDims: []int64{2, 4, 3}, consts: []*onnxgraph.Tensor{f32("s", []int64{4}, 1, 2, 3, 4), f32("b", []int64{4}, 0, 0.1, 0.2, 0.3)},
			want: [][]float64{perChannel}, rewrite: "GroupNormalization"},
		{name: "InstanceNormalization affine", opset: 14, op: "InstanceNormalization", attrs: []*onnxgraph.Attr{fAttr("epsilon", 1e-3)},
			x: x24, xDims: []int64{2, 4, 3}, consts: []*onnxgraph.Tensor{f32("s", []int64{4}, 1, 2, 3, 4), f32("b", []int64{4}, 0, 0.1, 0.2, 0.3)},
			want: [][]float64{func() []float64 {
				n := normalizeRows(x24, 8, 1e-3)
				for i := range n {
					c := (i / 3) % 4
					n[i] = n[i]*float64(c+1) + 0.1*float64(c)
				}
				return n
			}()}, rewrite: "InstanceNormalization"},
		{name: "Gelu", opset: 20, op: "Gelu", x: x8, xDims: []int64{2, 4}, want: [][]float64{mapF(x8, geluErf)}, rewrite: "Gelu"},
		{name: "Gelu tanh", opset: 20, op: "Gelu", attrs: []*onnxgraph.Attr{sAttr("approximate", "tanh")}, x: x8, xDims: []int64{2, 4},
			want: [][]float64{mapF(x8, geluTanh)}, rewrite: "Gelu"},
		{name: "Sigmoid", opset: 14, op: "Sigmoid", x: x8, xDims: []int64{2, 4},
			want: [][]float64{mapF(x8, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) })}, rewrite: "Sigmoid"},
		{name: "Resize sizes x2 x3", opset: 13, op: "Resize", attrs: []*onnxgraph.Attr{sAttr("mode", "nearest"), sAttr("coordinate_transformation_mode", "asymmetric"), sAttr("nearest_mode", "floor")},
			x: x6, xDims: []int64{1, 1, 2, 3}, consts: []*onnxgraph.Tensor{nil, nil, i64("sizes", []int64{4}, 1, 1, 4, 9)},
			want: [][]float64{repeat(x6, 2, 3, 2, 3)}, rewrite: "Resize"},
		{name: "Resize scales x3 x2 half_pixel", opset: 13, op: "Resize", attrs: []*onnxgraph.Attr{sAttr("mode", "nearest")},
			x: x6, xDims: []int64{1, 1, 2, 3}, consts: []*onnxgraph.Tensor{nil, f32("scales", []int64{4}, 1, 1, 3, 2)},
			want: [][]float64{repeat(x6, 2, 3, 3, 2)}, rewrite: "Resize"},
		{name: "ArgMax axis 1 keepdims last", opset: 13, op: "ArgMax", attrs: []*onnxgraph.Attr{iAttr("axis", 1), iAttr("select_last_index", 1)},
			x: []float64{3, 7, 7, 1, 5, 5, 5, 2}, xDims: []int64{2, 4}, xInt: true, want: [][]float64{{2, 2}}, rewrite: "ArgMax/ArgMin"},
		{name: "ArgMax axis 1 first", opset: 13, op: "ArgMax", attrs: []*onnxgraph.Attr{iAttr("axis", 1), iAttr("keepdims", 0)},
			x: []float64{3, 7, 7, 1, 5, 5, 5, 2}, xDims: []int64{2, 4}, xInt: true, want: [][]float64{{1, 0}}, rewrite: "ArgMax/ArgMin"},
		{name: "ArgMin axis 0", opset: 13, op: "ArgMin", attrs: []*onnxgraph.Attr{iAttr("axis", 0), iAttr("keepdims", 0)},
			x: x8, xDims: []int64{2, 4}, want: [][]float64{{0, 1, 1, 1}}, rewrite: "ArgMax/ArgMin"},
		{name: "ArgMax axis -2 of 3-D", opset: 13, op: "ArgMax", attrs: []*onnxgraph.Attr{iAttr("axis", -2), iAttr("keepdims", 0)},
			x: x8, xDims: []int64{2, 2, 2}, want: [][]float64{{1, 1, 0, 1}}, rewrite: "ArgMax/ArgMin"},
		{name: "Split attribute", opset: 11, op: "Split", attrs: []*onnxgraph.Attr{iAttr("axis", 1), isAttr("split", 1, 3)},
			x: x8, xDims: []int64{2, 4}, outputs: 2, want: [][]float64{{0.5, 3}, {-1, 2, 0.25, -2, 1.5, 0}}, rewrite: "Split"},
		{name: "Dropout", opset: 13, op: "Dropout", x: x8, xDims: []int64{2, 4}, want: [][]float64{x8}, rewrite: "Dropout"},
		{name: "Gather negative 2-D indices", opset: 13, op: "Gather", attrs: []*onnxgraph.Attr{iAttr("axis", 1)},
			x: x6, xDims: []int64{2, 3}, consts: []*onnxgraph.Tensor{i64("idx", []int64{2, 2}, -1, 0, 1, -3)},
			want: [][]float64{{3, 1, 2, 1, 6, 4, 5, 4}}, rewrite: "Gather:"},
		{name: "Gather negative scalar index", opset: 13, op: "Gather", x: x6, xDims: []int64{2, 3},
			consts: []*onnxgraph.Tensor{i64("idx", nil, -1)}, want: [][]float64{{4, 5, 6}}, rewrite: "Gather:"},
		{name: "GatherND pooling", opset: 13, op: "GatherND", x: x24, xDims: []int64{2, 4, 3},
			consts: []*onnxgraph.Tensor{i64("idx", []int64{2, 2}, 0, 3, 1, -2)},
			want:   [][]float64{append(slices.Clone(x24[9:12]), x24[18:21]...)}, rewrite: "GatherND"},
		{name: "Concat of an empty constant", opset: 13, op: "Concat", attrs: []*onnxgraph.Attr{iAttr("axis", 0)},
			x: x6, xDims: []int64{6}, consts: []*onnxgraph.Tensor{f32("empty", []int64{0})}, want: [][]float64{x6}, rewrite: "Concat:"},
	}
}

// TestLoweredOpsCompute imports one-node graphs of every op Lower rewrites and checks the
// results against the ONNX definitions.
func TestLoweredOpsCompute(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range opCases() {
		t.Run(c.name, func(t *testing.T) {
			imp, err := ImportGraph(c.model())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(imp.Rewrites, func(r onnxgraph.Rewrite) bool { return strings.HasPrefix(r.Name, c.rewrite) }) {
				t.Errorf("rewrites %v, want %q", imp.Rewrites, c.rewrite)
			}
			dims := make([]int, len(c.xDims))
			for i, d := range c.xDims {
				dims[i] = int(d)
			}
			var x *tensors.Tensor
			if c.xInt {
				v := make([]int64, len(c.x))
				for i, f := range c.x {
					v[i] = int64(f)
				}
				x = tensors.FromFlatDataAndDimensions(v, dims...)
			} else {
				x = tensors.FromFlatDataAndDimensions(toF32(c.x), dims...)
			}
			e, err := context.NewExec(b, context.New(), func(ctx *context.Context, x *graph.Node) []*graph.Node {
				var out []*graph.Node
				for _, y := range imp.Call(ctx, x) {
					out = append(out, graph.ConvertDType(y, dtypes.Float64))
				}
				return out
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Finalize()
			out, err := e.Exec(x)
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range c.want {
				got := tensors.MustCopyFlatData[float64](out[i])
				if len(got) != len(want) {
					t.Fatalf("output %d: %d values %v, want %d %v", i, len(got), got, len(want), want)
				}
				for j := range want {
					if math.Abs(got[j]-want[j]) > 2e-6*max(1, math.Abs(want[j])) {
						t.Fatalf("output %d: got %v\nwant %v", i, got, want)
					}
				}
			}
		})
	}
}

// TestLowerRefuses: nodes outside a rewrite's exact meaning are errors naming node and reason.
func TestLowerRefuses(t *testing.T) {
	for _, c := range []struct {
		opCase
		want string
	}{
		{opCase{name: "linear", opset: 13, op: "Resize", attrs: []*onnxgraph.Attr{sAttr("mode", "linear")}, xDims: []int64{1, 1, 2, 2},
			consts: []*onnxgraph.Tensor{nil, f32("scales", []int64{4}, 1, 1, 2, 2)}}, `mode "linear"`},
		{opCase{name: "fractional", opset: 13, op: "Resize", xDims: []int64{1, 1, 2, 2},
			consts: []*onnxgraph.Tensor{nil, f32("scales", []int64{4}, 1, 1, 1.5, 2)}}, "scale 1.5"},
		{opCase{name: "align_corners", opset: 13, op: "Resize", attrs: []*onnxgraph.Attr{sAttr("coordinate_transformation_mode", "align_corners")}, xDims: []int64{1, 1, 2, 2},
			consts: []*onnxgraph.Tensor{nil, f32("scales", []int64{4}, 1, 1, 2, 2)}}, "align_corners"},
		{opCase{name: "dropout training", opset: 13, op: "Dropout", xDims: []int64{2},
			consts: []*onnxgraph.Tensor{f32("ratio", nil, 0.5), onnxgraph.NewTensor("training", onnxgraph.Bool, nil, 1)}}, "training_mode"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ImportGraph(c.model())
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `node "op"`) {
				t.Errorf("got %v, want an error naming node \"op\" and %q", err, c.want)
			}
		})
	}
}
