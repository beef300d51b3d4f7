package engine

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestClipGlobalNorm: gradients [3, 4] and [12] have global norm 13; a limit of 6.5 halves
// them, a limit above 13 or none (0) leaves them as they are.
func TestClipGlobalNorm(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max   float64
		scale float32
	}{{6.5, 0.5}, {26, 1}, {0, 1}, {-1, 1}} {
		exec, err := graph.NewExec(b, func(g *graph.Graph) []*graph.Node {
			clipped, norm := ClipGlobalNorm([]*graph.Node{graph.Const(g, []float32{3, 4}), graph.Const(g, []float32{12})}, tc.max)
			return append(clipped, norm)
		})
		if err != nil {
			t.Fatal(err)
		}
		outs, err := exec.Exec()
		if err != nil {
			t.Fatal(err)
		}
		a, c := tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1])
		norm := tensors.MustCopyFlatData[float32](outs[2])[0]
		if norm != 13 {
			t.Errorf("max %g: norm %g, want 13", tc.max, norm)
		}
		want := []float32{3 * tc.scale, 4 * tc.scale, 12 * tc.scale}
		for i, got := range []float32{a[0], a[1], c[0]} {
			if math.Abs(float64(got-want[i])) > 1e-6 {
				t.Errorf("max %g: clipped gradients %v %v, want %v", tc.max, a, c, want)
				break
			}
		}
	}
	if clipped, norm := ClipGlobalNorm(nil, 1); clipped != nil || norm != nil {
		t.Errorf("no gradients: %v, %v", clipped, norm)
	}
}
