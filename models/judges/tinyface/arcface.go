package tinyface

import (
	"github.com/gomlx/gomlx/pkg/core/graph"
)

// ArcFaceLoss is the additive angular margin loss of ArcFace (Deng et al., 2019) on unit-norm
// embeddings emb [B, D], class centers [C, D] (normalised here) and integer labels [B]:
//
//	cos θ_j = ⟨emb, W_j/‖W_j‖⟩
//	logit_j = s·cos(θ_y + m)  for j = y,   s·cos θ_j otherwise
//	loss    = mean over the batch of −log softmax(logit)_y
//
// The margin m is a scalar node so that it can follow a schedule. When θ_y + m would pass π
// (cos θ_y ≤ cos(π − m)), cos(θ_y + m) is no longer decreasing in θ_y; there the target logit is
// s·(cos θ_y − m·sin m), as in the reference implementation. It returns the loss (scalar) and
// the plain cosines [B, C] (for accuracy and monitoring).
func ArcFaceLoss(emb, centers, labels *graph.Node, scale float64, margin *graph.Node) (loss, cos *graph.Node) {
	classes := centers.Shape().Dimensions[0]
	w := graph.L2Normalize(centers, -1)
	cos = graph.DotGeneral(emb, []int{1}, nil, w, []int{1}, nil) // [B, C]
	onehot := graph.OneHot(labels, classes, cos.DType())
	cosY := graph.ReduceSum(graph.Mul(cos, onehot), -1) // [B]
	cosY = graph.ClipScalar(cosY, -1, 1)
	sinY := graph.Sqrt(graph.MaxScalar(graph.OneMinus(graph.Mul(cosY, cosY)), 1e-9))
	cosM, sinM := graph.Cos(margin), graph.Sin(margin)
	phi := graph.Sub(graph.Mul(cosY, cosM), graph.Mul(sinY, sinM))
	fallback := graph.Sub(cosY, graph.Mul(margin, sinM))
	phi = graph.Where(graph.GreaterThan(cosY, graph.Neg(cosM)), phi, fallback) // cos(π − m) = −cos m
	// Replace the target cosine by phi: cos + onehot·(phi − cos_y).
	logits := graph.Add(cos, graph.Mul(onehot, graph.InsertAxes(graph.Sub(phi, cosY), -1)))
	logits = graph.MulScalar(logits, scale)
	logp := graph.LogSoftmax(logits, -1)
	loss = graph.Neg(graph.ReduceAllMean(graph.ReduceSum(graph.Mul(logp, onehot), -1)))
	return loss, cos
}
