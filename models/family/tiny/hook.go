package tiny

import (
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
)

// Hook takes the place of the denoiser's attention while a graph is built, so that the images of
// one batch can be denoised together: share self-attention keys and values (StoryDiffusion,
// ConsiStory), read cross-attention probabilities (ConsiStory's subject masks) or add text keys
// (1Prompt1Story). Layer is the block index 0 … Depth-1. The heads come projected and split,
// q [B, L, H, dh] and k, v [B, S, H, dh], in the rows of the denoiser's batch (for a guided
// sampler: the conditional rows, then the unconditional ones); a method returns the attention
// output [B, L, H, dh], which the block projects as usual. Self-attention has S = L latent
// tokens; cross-attention has S text states (2 × MaxLength with WordSkip: the contextual states,
// then the words'). A hook that returns Attend(q, k, v, nil) for both leaves every bit of the
// denoiser's output as it is.
//
// Hooks are called while a graph is built, not while it runs: what changes from one step to the
// next (masks, stored tokens, switches) enters as graph inputs the hook's owner feeds, and what
// it wants to read back (probabilities, features) it keeps as nodes to return as outputs.
type Hook interface {
	SelfAttention(layer int, q, k, v *graph.Node) *graph.Node
	CrossAttention(layer int, q, k, v *graph.Node) *graph.Node
}

// PlainAttention is the Hook that changes nothing: both attentions are Attend without a bias.
type PlainAttention struct{}

// SelfAttention returns Attend(q, k, v, nil).
func (PlainAttention) SelfAttention(_ int, q, k, v *graph.Node) *graph.Node {
	return Attend(q, k, v, nil)
}

// CrossAttention returns Attend(q, k, v, nil).
func (PlainAttention) CrossAttention(_ int, q, k, v *graph.Node) *graph.Node {
	return Attend(q, k, v, nil)
}

// DenoiseHooked is Denoise with hook in place of each block's self- and cross-attention (nil:
// the plain denoiser). It panics, like every graph function, when the hook returns heads of
// another shape than the queries'.
func (g *Generator) DenoiseHooked(ctx *context.Context, xt, t *graph.Node, cond family.Cond, hook Hook) *graph.Node {
	return g.m.denoise(root(ctx), xt, t, cond.States, cond.Pooled, hook)
}
