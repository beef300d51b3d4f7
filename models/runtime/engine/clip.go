package engine

import (
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// ClipGlobalNorm returns the gradients scaled so that their global norm ‖g‖ = √(Σ_i ‖g_i‖²)
// is at most maxNorm, g_i · min(1, maxNorm / (‖g‖ + 1e-12)), and ‖g‖ before clipping. With
// maxNorm <= 0 nothing is clipped: grads come back as they are, with their norm. It returns
// a nil norm when there are no gradients.
func ClipGlobalNorm(grads []*graph.Node, maxNorm float64) (clipped []*graph.Node, norm *graph.Node) {
	if len(grads) == 0 {
		return grads, nil
	}
	var sq *graph.Node
	for _, g := range grads {
		s := graph.ReduceAllSum(graph.Square(g))
		if sq == nil {
			sq = s
		} else {
			sq = graph.Add(sq, s)
		}
	}
	norm = graph.Sqrt(sq)
	if maxNorm <= 0 {
		return grads, norm
	}
	gr, dt := norm.Graph(), norm.DType()
	scale := graph.Min(graph.ScalarOne(gr, dt), graph.Div(graph.Scalar(gr, dt, maxNorm), graph.AddScalar(norm, 1e-12)))
	clipped = make([]*graph.Node, len(grads))
	for i, g := range grads {
		clipped[i] = graph.Mul(g, scale)
	}
	return clipped, norm
}
