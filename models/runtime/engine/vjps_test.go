package engine

import (
	"reflect"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
)

func TestReadSliceSpec(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	g := graph.NewGraph(b, "slice")
	x := graph.Parameter(g, "x", shapesF32(5, 7))
	s := graph.Slice(x, graph.AxisRange(1, 4), graph.AxisRange(2, 7).Stride(2))
	spec, err := readSliceSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	want := sliceSpec{starts: []int{1, 2}, limits: []int{4, 7}, strides: []int{1, 2}}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("got %+v, want %+v", spec, want)
	}
	if _, err := readSliceSpec(x); err == nil || !strings.Contains(err.Error(), "want Slice") {
		t.Errorf("reading a Parameter: got %v, want a 'want Slice' error", err)
	}
	type changed struct{ starts, limits []int }
	if _, err := intSliceFields(reflect.ValueOf(&changed{}), "Slice", "starts", "limits", "strides"); err == nil ||
		!strings.Contains(err.Error(), `no field "strides"`) || !strings.Contains(err.Error(), "GoMLX internals changed") {
		t.Errorf("struct without strides: got %v, want a loud 'GoMLX internals changed' error", err)
	}
}
