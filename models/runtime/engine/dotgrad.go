package engine

import (
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// GoMLX v0.26.0's stock gradients of DotGeneral and Dot broadcast both operands to a
// [batch, lhsCross, rhsCross, contracting] tensor and reduce it: O(M·N·K) memory and elementwise
// work. The gradients here express each operand's gradient as one DotGeneral of the incoming
// adjoint v with the other operand, plus at most one transpose:
//
//	out[b, x, y] = Σ_c lhs[b, x, c] · rhs[b, y, c]
//	∂/∂lhs[b, x, c] = Σ_y v[b, x, y] · rhs[b, y, c]    (contract v's rhs-cross axes with rhs's cross axes)
//	∂/∂rhs[b, y, c] = Σ_x v[b, x, y] · lhs[b, x, c]    (contract v's lhs-cross axes with lhs's cross axes)

var (
	stockMu             sync.Mutex
	stockDotGeneralVJP  graph.VJP
	stockDotVJP         graph.VJP
	gemmGradientsActive bool
)

func init() {
	stockDotGeneralVJP = graph.VJPRegistration[graph.NodeTypeDotGeneral]
	stockDotVJP = graph.VJPRegistration[graph.NodeTypeDot]
	SetGEMMGradients(true)
}

// SetGEMMGradients switches the gradients of DotGeneral and Dot between the GEMM-based ones of
// this package (enabled, the default after import) and GoMLX's stock ones, and returns the
// previous setting. It changes the global graph.VJPRegistration map: call it only while no graph
// is being built (at start-up, or between benchmarks). It cannot fail.
func SetGEMMGradients(enabled bool) (previous bool) {
	stockMu.Lock()
	defer stockMu.Unlock()
	previous = gemmGradientsActive
	if enabled {
		graph.VJPRegistration[graph.NodeTypeDotGeneral] = singleOutputVJP(dotGeneralVJP)
		graph.VJPRegistration[graph.NodeTypeDot] = singleOutputVJP(dotVJP)
	} else {
		graph.VJPRegistration[graph.NodeTypeDotGeneral] = stockDotGeneralVJP
		graph.VJPRegistration[graph.NodeTypeDot] = stockDotVJP
	}
	gemmGradientsActive = enabled
	return previous
}

// GEMMGradients reports whether the GEMM-based gradients of DotGeneral and Dot are active.
func GEMMGradients() bool {
	stockMu.Lock()
	defer stockMu.Unlock()
	return gemmGradientsActive
}

func singleOutputVJP(fn func(node, v *graph.Node) []*graph.Node) graph.VJP {
	return func(node *graph.Node, vjps []*graph.Node, _ shapes.Shape) []*graph.Node {
		return fn(node, vjps[0])
	}
}

// dotAxes is the axis configuration of a DotGeneral: which lhs/rhs axes are contracted and
// which are batch axes (pairwise aligned); all others are cross axes.
type dotAxes struct {
	lhsContracting, lhsBatch []int
	rhsContracting, rhsBatch []int
}

// dotGeneralFields are the unexported fields of GoMLX's nodeInputsDotGeneral that hold the axes.
var dotGeneralFields = [4]string{"lhsContractingAxes", "lhsBatchAxes", "rhsContractingAxes", "rhsBatchAxes"}

// readDotGeneralAxes reads the axes of a DotGeneral node. GoMLX keeps them in unexported fields of
// the node's inputs struct, so they are read by reflection and then validated against the
// operand and output shapes; any mismatch means GoMLX's internals changed and is reported as such.
func readDotGeneralAxes(node *graph.Node) (dotAxes, error) {
	if node.Type() != graph.NodeTypeDotGeneral {
		return dotAxes{}, fmt.Errorf("node %s is a %s, want DotGeneral", node, node.Type())
	}
	field := reflect.ValueOf(node).Elem().FieldByName("inputs")
	if !field.IsValid() {
		return dotAxes{}, fmt.Errorf("graph.Node has no field %q (GoMLX internals changed; engine supports v0.26.0)", "inputs")
	}
	if field.Kind() != reflect.Interface || field.IsNil() {
		return dotAxes{}, fmt.Errorf("graph.Node.inputs is %s, want a non-nil interface (GoMLX internals changed; engine supports v0.26.0)", field.Kind())
	}
	ax, err := axesFromInputsStruct(field.Elem())
	if err != nil {
		return dotAxes{}, err
	}
	inputs := node.Inputs()
	if len(inputs) != 2 {
		return dotAxes{}, fmt.Errorf("DotGeneral node has %d inputs, want 2", len(inputs))
	}
	if err := ax.check(inputs[0].Shape(), inputs[1].Shape(), node.Shape()); err != nil {
		return dotAxes{}, fmt.Errorf("DotGeneral axes read by reflection are inconsistent (GoMLX internals changed; engine supports v0.26.0): %w", err)
	}
	return ax, nil
}

// axesFromInputsStruct reads the four axis lists from a (pointer to a) struct with the fields of
// GoMLX v0.26.0's nodeInputsDotGeneral. It returns an error naming the field that is missing or
// has the wrong type.
func axesFromInputsStruct(v reflect.Value) (dotAxes, error) {
	lists, err := intSliceFields(v, "DotGeneral", dotGeneralFields[:]...)
	if err != nil {
		return dotAxes{}, err
	}
	return dotAxes{lhsContracting: lists[0], lhsBatch: lists[1], rhsContracting: lists[2], rhsBatch: lists[3]}, nil
}

// check verifies that the axes are valid for the operand shapes and produce the output shape.
func (ax dotAxes) check(lhs, rhs, out shapes.Shape) error {
	if len(ax.lhsContracting) != len(ax.rhsContracting) || len(ax.lhsBatch) != len(ax.rhsBatch) {
		return fmt.Errorf("axis counts differ: contracting %v vs %v, batch %v vs %v", ax.lhsContracting, ax.rhsContracting, ax.lhsBatch, ax.rhsBatch)
	}
	lhsCross, err := crossAxes(lhs.Rank(), ax.lhsContracting, ax.lhsBatch)
	if err != nil {
		return fmt.Errorf("lhs %s: %w", lhs, err)
	}
	rhsCross, err := crossAxes(rhs.Rank(), ax.rhsContracting, ax.rhsBatch)
	if err != nil {
		return fmt.Errorf("rhs %s: %w", rhs, err)
	}
	for i := range ax.lhsContracting {
		if lhs.Dimensions[ax.lhsContracting[i]] != rhs.Dimensions[ax.rhsContracting[i]] {
			return fmt.Errorf("contracting axis pair %d: lhs dim %d != rhs dim %d", i, lhs.Dimensions[ax.lhsContracting[i]], rhs.Dimensions[ax.rhsContracting[i]])
		}
	}
	want := make([]int, 0, out.Rank())
	for _, a := range ax.lhsBatch {
		want = append(want, lhs.Dimensions[a])
	}
	for _, a := range lhsCross {
		want = append(want, lhs.Dimensions[a])
	}
	for _, a := range rhsCross {
		want = append(want, rhs.Dimensions[a])
	}
	if !slices.Equal(want, out.Dimensions) {
		return fmt.Errorf("axes %+v on lhs %s and rhs %s give output dims %v, but the node's output is %s", ax, lhs, rhs, want, out)
	}
	return nil
}

// crossAxes returns, in increasing order, the axes of a rank-r operand that are neither
// contracting nor batch axes; it fails on out-of-range or repeated axes.
func crossAxes(rank int, contracting, batch []int) ([]int, error) {
	used := make([]bool, rank)
	for _, list := range [][]int{contracting, batch} {
		for _, a := range list {
			if a < 0 || a >= rank {
				return nil, fmt.Errorf("axis %d out of range for rank %d", a, rank)
			}
			if used[a] {
				return nil, fmt.Errorf("axis %d used twice", a)
			}
			used[a] = true
		}
	}
	var cross []int
	for a, u := range used {
		if !u {
			cross = append(cross, a)
		}
	}
	return cross, nil
}

// dotGeneralVJP is the GEMM-based gradient of a DotGeneral node. Graph-building functions in
// GoMLX report errors by panicking with an error value, which GoMLX's Exec turns into a returned
// error; a failure to read the node's axes is reported that way, loudly, never silently.
func dotGeneralVJP(node, v *graph.Node) []*graph.Node {
	ax, err := readDotGeneralAxes(node)
	if err != nil {
		panic(fmt.Errorf("engine: GEMM gradient of %s: %w", node, err))
	}
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	return dotGeneralGrads(v, lhs, rhs, ax)
}

// dotVJP is the GEMM-based gradient of a Dot node (vector·vector, matrix·vector, matrix·matrix):
// Dot contracts the last axis of lhs with the first axis of rhs.
func dotVJP(node, v *graph.Node) []*graph.Node {
	lhs, rhs := node.Inputs()[0], node.Inputs()[1]
	ax := dotAxes{lhsContracting: []int{lhs.Rank() - 1}, rhsContracting: []int{0}}
	if err := ax.check(lhs.Shape(), rhs.Shape(), node.Shape()); err != nil {
		panic(fmt.Errorf("engine: GEMM gradient of %s: %w", node, err))
	}
	return dotGeneralGrads(v, lhs, rhs, ax)
}

// dotGeneralGrads returns the gradients of Σ v·DotGeneral(lhs, rhs) w.r.t. lhs and rhs.
func dotGeneralGrads(v, lhs, rhs *graph.Node, ax dotAxes) []*graph.Node {
	lhsCross, _ := crossAxes(lhs.Rank(), ax.lhsContracting, ax.lhsBatch)
	rhsCross, _ := crossAxes(rhs.Rank(), ax.rhsContracting, ax.rhsBatch)
	nb := len(ax.lhsBatch)
	// Positions of the batch, lhs-cross and rhs-cross axes in v (the output's layout).
	vBatch := axisRange(0, nb)
	vLhsCross := axisRange(nb, len(lhsCross))
	vRhsCross := axisRange(nb+len(lhsCross), len(rhsCross))
	return []*graph.Node{
		operandGrad(v, vBatch, vLhsCross, vRhsCross, lhs.Rank(), ax.lhsBatch, lhsCross, ax.lhsContracting, rhs, ax.rhsBatch, rhsCross, ax.rhsContracting),
		operandGrad(v, vBatch, vRhsCross, vLhsCross, rhs.Rank(), ax.rhsBatch, rhsCross, ax.rhsContracting, lhs, ax.lhsBatch, lhsCross, ax.lhsContracting),
	}
}

// operandGrad computes the gradient for one operand ("this") as a DotGeneral of v with the other
// operand, contracting v's other-cross axes with the other operand's cross axes, then transposes
// the result into this operand's axis order. The result of DotGeneral(A, B) is laid out as
// [batch, A's remaining axes, B's remaining axes]; both operand orders are tried and the one that
// needs no transpose is preferred.
func operandGrad(v *graph.Node, vBatch, vThisCross, vOtherCross []int, thisRank int, thisBatch, thisCross, thisContracting []int,
	other *graph.Node, otherBatch, otherCross, otherContracting []int) *graph.Node {
	nb := len(thisBatch)
	// The other operand's remaining axes after contracting its cross axes are its contracting
	// axes, in increasing order: sortedPos[k] is where otherContracting[k] lands among them.
	sortedOther := slices.Clone(otherContracting)
	slices.Sort(sortedOther)
	otherPos := make([]int, len(otherContracting))
	for k, a := range otherContracting {
		otherPos[k] = slices.Index(sortedOther, a)
	}
	// permutation[thisAxis] = axis of the DotGeneral result holding it.
	perm := func(vFirst bool) []int {
		p := make([]int, thisRank)
		crossStart, contrStart := nb+len(sortedOther), nb
		if vFirst {
			crossStart, contrStart = nb, nb+len(thisCross)
		}
		for i, a := range thisBatch {
			p[a] = i
		}
		for j, a := range thisCross {
			p[a] = crossStart + j
		}
		for k, a := range thisContracting {
			p[a] = contrStart + otherPos[k]
		}
		return p
	}
	pv, po := perm(true), perm(false)
	var g *graph.Node
	p := pv
	if !isIdentity(pv) && isIdentity(po) {
		g = graph.DotGeneral(other, otherCross, otherBatch, v, vOtherCross, vBatch)
		p = po
	} else {
		g = graph.DotGeneral(v, vOtherCross, vBatch, other, otherCross, otherBatch)
	}
	if isIdentity(p) {
		return g
	}
	return graph.TransposeAllAxes(g, p...)
}

func axisRange(start, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = start + i
	}
	return s
}

func isIdentity(p []int) bool {
	for i, a := range p {
		if i != a {
			return false
		}
	}
	return true
}
