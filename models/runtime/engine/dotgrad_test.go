package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// dotCase is one DotGeneral layout: operand dimensions and the axes of each kind.
type dotCase struct {
	name                  string
	lhsDims, rhsDims      []int
	lhsContract, lhsBatch []int
	rhsContract, rhsBatch []int
	useDot                bool // build with graph.Dot instead of DotGeneral
}

func (c dotCase) String() string {
	if c.name != "" {
		return c.name
	}
	return fmt.Sprintf("lhs%v_c%v_b%v/rhs%v_c%v_b%v", c.lhsDims, c.lhsContract, c.lhsBatch, c.rhsDims, c.rhsContract, c.rhsBatch)
}

// randomDotCase draws a DotGeneral layout with 0–2 batch, 0–2 contracting and 0–2 cross axes on
// each side (at least one axis per operand), placed in random axis positions.
func randomDotCase(r *rand.Rand) dotCase {
	for {
		nb, nc, nlx, nrx := r.IntN(3), r.IntN(3), r.IntN(3), r.IntN(3)
		if nb+nc+nlx == 0 || nb+nc+nrx == 0 {
			continue
		}
		dim := func() int { return 1 + r.IntN(4) }
		batchDims, contrDims := make([]int, nb), make([]int, nc)
		for i := range batchDims {
			batchDims[i] = dim()
		}
		for i := range contrDims {
			contrDims[i] = dim()
		}
		build := func(nx int) (dims, contract, batch []int) {
			rank := nb + nc + nx
			pos := r.Perm(rank) // pos[k]: axis of the k-th logical axis
			dims = make([]int, rank)
			batch, contract = make([]int, nb), make([]int, nc)
			for i := range nb {
				batch[i] = pos[i]
				dims[pos[i]] = batchDims[i]
			}
			for i := range nc {
				contract[i] = pos[nb+i]
				dims[pos[nb+i]] = contrDims[i]
			}
			for i := range nx {
				dims[pos[nb+nc+i]] = dim()
			}
			return dims, contract, batch
		}
		c := dotCase{}
		c.lhsDims, c.lhsContract, c.lhsBatch = build(nlx)
		c.rhsDims, c.rhsContract, c.rhsBatch = build(nrx)
		return c
	}
}

func randomTensor(r *rand.Rand, dims []int) *tensors.Tensor {
	size := 1
	for _, d := range dims {
		size *= d
	}
	data := make([]float32, size)
	for i := range data {
		data[i] = float32(r.Float64()*2 - 1)
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// dotGrads returns the gradients of Σ w·dot(lhs, rhs) w.r.t. lhs and rhs, and the largest
// number of elements of any node in the graph.
func dotGrads(t *testing.T, c dotCase, lhs, rhs, w *tensors.Tensor) (gl, gr []float32, maxNode int) {
	t.Helper()
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExec(b, func(lhs, rhs, w *graph.Node) []*graph.Node {
		var out *graph.Node
		if c.useDot {
			out = graph.Dot(lhs, rhs)
		} else {
			out = graph.DotGeneral(lhs, c.lhsContract, c.lhsBatch, rhs, c.rhsContract, c.rhsBatch)
		}
		loss := graph.ReduceAllSum(graph.Mul(out, w))
		return graph.Gradient(loss, lhs, rhs)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	res, g, err := exec.ExecWithGraph(lhs, rhs, w)
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	for _, n := range g.Nodes() {
		if n.NumOutputs() == 1 && n.Shape().Size() > maxNode {
			maxNode = n.Shape().Size()
		}
	}
	return tensors.MustCopyFlatData[float32](res[0]), tensors.MustCopyFlatData[float32](res[1]), maxNode
}

// outputDims computes the DotGeneral output dimensions: batch, lhs cross, rhs cross.
func (c dotCase) outputDims(t *testing.T) []int {
	if c.useDot {
		out := append([]int{}, c.lhsDims[:len(c.lhsDims)-1]...)
		return append(out, c.rhsDims[1:]...)
	}
	lx, err := crossAxes(len(c.lhsDims), c.lhsContract, c.lhsBatch)
	if err != nil {
		t.Fatal(err)
	}
	rx, err := crossAxes(len(c.rhsDims), c.rhsContract, c.rhsBatch)
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, a := range c.lhsBatch {
		out = append(out, c.lhsDims[a])
	}
	for _, a := range lx {
		out = append(out, c.lhsDims[a])
	}
	for _, a := range rx {
		out = append(out, c.rhsDims[a])
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

func TestGEMMGradientsMatchStock(t *testing.T) {
	cases := []dotCase{
		{name: "matmul", lhsDims: []int{3, 4}, rhsDims: []int{4, 5}, lhsContract: []int{1}, rhsContract: []int{0}},
		{name: "matmul_rhs_transposed", lhsDims: []int{3, 4}, rhsDims: []int{5, 4}, lhsContract: []int{1}, rhsContract: []int{1}},
		{name: "dense_3d", lhsDims: []int{2, 3, 4}, rhsDims: []int{4, 6}, lhsContract: []int{2}, rhsContract: []int{0}},
		{name: "attention_scores", lhsDims: []int{2, 3, 5, 4}, rhsDims: []int{2, 3, 6, 4}, lhsContract: []int{3}, lhsBatch: []int{0, 1}, rhsContract: []int{3}, rhsBatch: []int{0, 1}},
		{name: "batch_in_middle", lhsDims: []int{3, 2, 4}, rhsDims: []int{4, 5, 2}, lhsContract: []int{2}, lhsBatch: []int{1}, rhsContract: []int{0}, rhsBatch: []int{2}},
		{name: "two_contracting_swapped", lhsDims: []int{2, 3, 4}, rhsDims: []int{4, 5, 3}, lhsContract: []int{1, 2}, rhsContract: []int{2, 0}},
		{name: "batch_order_swapped", lhsDims: []int{2, 3, 4}, rhsDims: []int{3, 2, 4}, lhsContract: []int{2}, lhsBatch: []int{0, 1}, rhsContract: []int{2}, rhsBatch: []int{1, 0}},
		{name: "rank1_dot", lhsDims: []int{5}, rhsDims: []int{5}, lhsContract: []int{0}, rhsContract: []int{0}},
		{name: "outer_product", lhsDims: []int{3}, rhsDims: []int{4}},
		{name: "all_batch", lhsDims: []int{3, 2}, rhsDims: []int{3, 2}, lhsBatch: []int{0, 1}, rhsBatch: []int{0, 1}},
		{name: "Dot_vec_vec", lhsDims: []int{4}, rhsDims: []int{4}, useDot: true},
		{name: "Dot_mat_vec", lhsDims: []int{3, 4}, rhsDims: []int{4}, useDot: true},
		{name: "Dot_mat_mat", lhsDims: []int{3, 4}, rhsDims: []int{4, 5}, useDot: true},
	}
	r := rand.New(rand.NewPCG(7, 11))
	for range 60 {
		cases = append(cases, randomDotCase(r))
	}
	defer SetGEMMGradients(true)
	for _, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			lhs, rhs := randomTensor(r, c.lhsDims), randomTensor(r, c.rhsDims)
			w := randomTensor(r, c.outputDims(t))
			SetGEMMGradients(false)
			sl, sr, _ := dotGrads(t, c, lhs, rhs, w)
			SetGEMMGradients(true)
			gl, gr, maxNode := dotGrads(t, c, lhs, rhs, w)
			if d := maxAbsDiff(gl, sl); d > 1e-4 {
				t.Errorf("lhs gradient differs from stock by %g:\n gemm  %v\n stock %v", d, gl, sl)
			}
			if d := maxAbsDiff(gr, sr); d > 1e-4 {
				t.Errorf("rhs gradient differs from stock by %g:\n gemm  %v\n stock %v", d, gr, sr)
			}
			// The GEMM gradient never materialises anything bigger than an operand or the output.
			limit := max(lhs.Shape().Size(), rhs.Shape().Size(), w.Shape().Size())
			if maxNode > limit {
				t.Errorf("GEMM gradient graph has a node of %d elements, want ≤ %d", maxNode, limit)
			}
		})
	}
}

func TestReadDotGeneralAxesFromNode(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	g := graph.NewGraph(b, "axes")
	lhs := graph.Parameter(g, "lhs", shapes.Make(dtypes.Float32, 2, 3, 4))
	rhs := graph.Parameter(g, "rhs", shapes.Make(dtypes.Float32, 4, 2, 5))
	out := graph.DotGeneral(lhs, []int{2}, []int{0}, rhs, []int{0}, []int{1})
	got, err := readDotGeneralAxes(out)
	if err != nil {
		t.Fatal(err)
	}
	want := dotAxes{lhsContracting: []int{2}, lhsBatch: []int{0}, rhsContracting: []int{0}, rhsBatch: []int{1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := readDotGeneralAxes(lhs); err == nil || !strings.Contains(err.Error(), "want DotGeneral") {
		t.Errorf("reading axes of a Parameter: got err %v, want a 'want DotGeneral' error", err)
	}
}

// TestAxesFromChangedStruct checks that a change of GoMLX's internal struct is reported loudly.
func TestAxesFromChangedStruct(t *testing.T) {
	type renamed struct {
		lhsContractingAxes []int
		lhsBatchDims       []int // renamed field
		rhsContractingAxes []int
		rhsBatchAxes       []int
	}
	type retyped struct {
		lhsContractingAxes []int
		lhsBatchAxes       []int
		rhsContractingAxes []int64 // changed type
		rhsBatchAxes       []int
	}
	type current struct {
		lhsContractingAxes []int
		lhsBatchAxes       []int
		rhsContractingAxes []int
		rhsBatchAxes       []int
	}
	tests := []struct {
		name    string
		value   any
		wantErr string
	}{
		{"renamed", &renamed{}, `no field "lhsBatchAxes"`},
		{"retyped", &retyped{}, `rhsContractingAxes is []int64, want []int`},
		{"not a struct", new(int), "want a struct"},
		{"current", &current{lhsContractingAxes: []int{1}, rhsContractingAxes: []int{0}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ax, err := axesFromInputsStruct(reflect.ValueOf(tc.value))
			if tc.wantErr == "" {
				if err != nil || !reflect.DeepEqual(ax.lhsContracting, []int{1}) {
					t.Fatalf("got %+v, %v; want lhsContracting [1] and no error", ax, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "GoMLX internals changed") {
				t.Fatalf("got error %v, want one containing %q and 'GoMLX internals changed'", err, tc.wantErr)
			}
		})
	}
}

func TestDotAxesCheck(t *testing.T) {
	s := func(d ...int) shapes.Shape { return shapes.Make(dtypes.Float32, d...) }
	tests := []struct {
		name     string
		ax       dotAxes
		lhs, rhs shapes.Shape
		out      shapes.Shape
		wantErr  string
	}{
		{"ok", dotAxes{lhsContracting: []int{1}, rhsContracting: []int{0}}, s(2, 3), s(3, 4), s(2, 4), ""},
		{"wrong output", dotAxes{lhsContracting: []int{1}, rhsContracting: []int{0}}, s(2, 3), s(3, 4), s(4, 2), "give output dims"},
		{"out of range", dotAxes{lhsContracting: []int{2}, rhsContracting: []int{0}}, s(2, 3), s(3, 4), s(2, 4), "out of range"},
		{"repeated", dotAxes{lhsContracting: []int{1}, lhsBatch: []int{1}, rhsContracting: []int{0}, rhsBatch: []int{1}}, s(2, 3), s(3, 4), s(2, 4), "used twice"},
		{"count mismatch", dotAxes{lhsContracting: []int{1}}, s(2, 3), s(3, 4), s(2, 4), "axis counts differ"},
		{"dim mismatch", dotAxes{lhsContracting: []int{0}, rhsContracting: []int{0}}, s(2, 3), s(3, 4), s(3, 4), "lhs dim 2 != rhs dim 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ax.check(tc.lhs, tc.rhs, tc.out)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestSetGEMMGradients(t *testing.T) {
	defer SetGEMMGradients(true)
	if !GEMMGradients() {
		t.Fatal("GEMM gradients not active after package init")
	}
	if prev := SetGEMMGradients(false); !prev {
		t.Error("SetGEMMGradients(false) returned previous=false, want true")
	}
	if GEMMGradients() || !strings.Contains(Describe(), "dot_gradients=stock") {
		t.Errorf("after SetGEMMGradients(false): active=%v, Describe=%q", GEMMGradients(), Describe())
	}
	SetGEMMGradients(true)
	if !strings.Contains(Describe(), "dot_gradients=gemm") {
		t.Errorf("Describe()=%q, want dot_gradients=gemm", Describe())
	}
}
