package engine

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// Gradients GoMLX v0.26.0 lacks, or that need ops the pure-Go backend lacks, registered at init
// so that models (and imported ONNX graphs) can use these ops in training:
//
//   - Identity: no gradient at all (onnx-gomlx emits it for ONNX Identity nodes); it passes v on.
//   - Rsqrt: no gradient; d x^(-1/2) = -½·y³ with y = rsqrt(x).
//   - Expm1: no gradient; d (eˣ-1) = y + 1.
//   - Slice: the stock gradient uses Pad, which the pure-Go backend lacks; here it is built from
//     Concatenate with zeros (and Reshape for strides), so fused projections can be sliced.
//
// Entries GoMLX already defines for Identity, Rsqrt and Expm1 are left alone (a later GoMLX may add them).

func init() {
	for nt, fn := range map[graph.NodeType]func(node, v *graph.Node) []*graph.Node{
		graph.NodeTypeIdentity: func(_, v *graph.Node) []*graph.Node { return []*graph.Node{v} },
		graph.NodeTypeRsqrt: func(node, v *graph.Node) []*graph.Node {
			return []*graph.Node{graph.Mul(v, graph.MulScalar(graph.Mul(graph.Mul(node, node), node), -0.5))}
		},
		graph.NodeTypeExpm1: func(node, v *graph.Node) []*graph.Node {
			return []*graph.Node{graph.Mul(v, graph.AddScalar(node, 1))}
		},
	} {
		if _, ok := graph.VJPRegistration[nt]; !ok {
			graph.VJPRegistration[nt] = singleOutputVJP(fn)
		}
	}
	graph.VJPRegistration[graph.NodeTypeSlice] = singleOutputVJP(sliceVJP)
}

// sliceSpec is the configuration of a Slice node: per axis, start, limit (exclusive) and stride.
type sliceSpec struct{ starts, limits, strides []int }

// readSliceSpec reads the unexported starts/limits/strides of a Slice node by reflection and
// checks them against the input and output shapes.
func readSliceSpec(node *graph.Node) (sliceSpec, error) {
	if node.Type() != graph.NodeTypeSlice {
		return sliceSpec{}, fmt.Errorf("node %s is a %s, want Slice", node, node.Type())
	}
	field := reflect.ValueOf(node).Elem().FieldByName("inputs")
	if !field.IsValid() || field.Kind() != reflect.Interface || field.IsNil() {
		return sliceSpec{}, fmt.Errorf("graph.Node has no usable field %q (GoMLX internals changed; engine supports v0.26.0)", "inputs")
	}
	lists, err := intSliceFields(field.Elem(), "Slice", "starts", "limits", "strides")
	if err != nil {
		return sliceSpec{}, err
	}
	spec := sliceSpec{starts: lists[0], limits: lists[1], strides: lists[2]}
	x := node.Inputs()[0].Shape()
	rank := x.Rank()
	if len(spec.starts) != rank || len(spec.limits) != rank || len(spec.strides) != rank {
		return sliceSpec{}, fmt.Errorf("Slice spec %+v read by reflection does not match input rank %d (GoMLX internals changed; engine supports v0.26.0)", spec, rank)
	}
	for a := range rank {
		st, lim, s := spec.starts[a], spec.limits[a], spec.strides[a]
		if s < 1 {
			s = 1
			spec.strides[a] = 1
		}
		n := 0
		if lim > st {
			n = (lim - st + s - 1) / s
		}
		if st < 0 || lim > x.Dimensions[a] || n != node.Shape().Dimensions[a] {
			return sliceSpec{}, fmt.Errorf("Slice spec %+v read by reflection is inconsistent with input %s and output %s at axis %d (GoMLX internals changed; engine supports v0.26.0)", spec, x, node.Shape(), a)
		}
	}
	return spec, nil
}

// intSliceFields reads []int fields by name from a (pointer to a) struct.
func intSliceFields(v reflect.Value, what string, names ...string) ([][]int, error) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil, fmt.Errorf("%s inputs are nil", what)
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("%s inputs are a %s, want a struct (GoMLX internals changed; engine supports v0.26.0)", what, v.Kind())
	}
	out := make([][]int, len(names))
	for i, name := range names {
		f := v.FieldByName(name)
		if !f.IsValid() {
			return nil, fmt.Errorf("%s inputs struct %s has no field %q (GoMLX internals changed; engine supports v0.26.0)", what, v.Type(), name)
		}
		if f.Kind() != reflect.Slice || f.Type().Elem().Kind() != reflect.Int {
			return nil, fmt.Errorf("%s inputs field %s.%s is %s, want []int (GoMLX internals changed; engine supports v0.26.0)", what, v.Type(), name, f.Type())
		}
		out[i] = make([]int, f.Len())
		for j := range out[i] {
			out[i][j] = int(f.Index(j).Int())
		}
	}
	return out, nil
}

// sliceVJP scatters v back into zeros of the input's shape, one axis at a time: strided axes
// interleave v with zeros (Concatenate on a new axis, then Reshape), and every axis is padded
// before and after by concatenating zeros.
func sliceVJP(node, v *graph.Node) []*graph.Node {
	spec, err := readSliceSpec(node)
	if err != nil {
		panic(fmt.Errorf("engine: gradient of %s: %w", node, err))
	}
	x := node.Inputs()[0]
	g := v
	for a := range x.Rank() {
		st, s, D := spec.starts[a], spec.strides[a], x.Shape().Dimensions[a]
		n := g.Shape().Dimensions[a]
		if n > 0 && s > 1 {
			// [.., n, ..] → [.., n, s, ..] with v at position 0 of the new axis → [.., n·s, ..].
			spread := graph.Concatenate([]*graph.Node{graph.InsertAxes(g, a+1), zerosWithDim(g, a, s-1, true)}, a+1)
			dims := slices.Clone(g.Shape().Dimensions)
			dims[a] = n * s
			g = graph.Reshape(spread, dims...)
			if keep := (n-1)*s + 1; keep < n*s {
				g = graph.SliceAxis(g, a, graph.AxisRange(0, keep))
			}
		}
		m := g.Shape().Dimensions[a]
		parts := make([]*graph.Node, 0, 3)
		if st > 0 {
			parts = append(parts, zerosWithDim(g, a, st, false))
		}
		if m > 0 {
			parts = append(parts, g)
		}
		if after := D - st - m; after > 0 {
			parts = append(parts, zerosWithDim(g, a, after, false))
		}
		switch {
		case len(parts) == 1:
			g = parts[0]
		case len(parts) > 1:
			g = graph.Concatenate(parts, a)
		}
	}
	return []*graph.Node{g}
}

// zerosWithDim returns zeros shaped like g but with dimension d at axis a (or, with newAxis, with
// a new axis of dimension d inserted after axis a).
func zerosWithDim(g *graph.Node, a, d int, newAxis bool) *graph.Node {
	dims := slices.Clone(g.Shape().Dimensions)
	if newAxis {
		dims = slices.Insert(dims, a+1, d)
	} else {
		dims[a] = d
	}
	return graph.Zeros(g.Graph(), shapes.Make(g.DType(), dims...))
}
