package tinyface

import (
	"fmt"
	"math"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
)

// The building blocks of the tiny metric networks, made only of matrix multiplies (the pure-Go
// backend runs convolutions slowly, see DESIGN.md): dense layers, layer norm, a pre-norm
// transformer block, and the image tower (patch ViT or MLP) built from them. models/judges/tinyclip
// reuses them for its image and text towers.

// Tower kinds.
const (
	KindViT = "vit" // patch tokens, transformer blocks, mean pool
	KindMLP = "mlp" // all patch tokens flattened, residual MLP blocks
)

// TowerConfig is the architecture of the image tower.
type TowerConfig struct {
	Kind  string `json:"kind"`  // KindViT or KindMLP
	Crop  int    `json:"crop"`  // side of the central square the tower sees (a fixed "face crop"); 0 means ImageSize
	Patch int    `json:"patch"` // patch side in pixels; the crop must be a multiple of it
	Width int    `json:"width"` // token width (ViT) or hidden width (MLP)
	Depth int    `json:"depth"` // transformer blocks (ViT) or residual MLP blocks (MLP)
	Heads int    `json:"heads"` // attention heads; Width must be a multiple of it (ViT only)
	MLP   int    `json:"mlp"`   // hidden width of each block's MLP
	// Embed, for the MLP tower, maps every patch through one shared Dense+GELU of this width
	// before flattening (a strided-convolution-like local feature layer); 0 flattens raw patches.
	Embed int `json:"embed,omitempty"`
}

// CropSize returns the side of the central square the tower reads.
func (c TowerConfig) CropSize() int {
	if c.Crop == 0 {
		return ImageSize
	}
	return c.Crop
}

// Validate returns an error naming the first field that cannot build a tower, or nil.
func (c TowerConfig) Validate() error {
	switch {
	case c.Kind != KindViT && c.Kind != KindMLP:
		return fmt.Errorf("tower config: kind %q: want %q or %q", c.Kind, KindViT, KindMLP)
	case c.Crop < 0 || c.Crop > ImageSize || (ImageSize-c.Crop)%2 != 0:
		return fmt.Errorf("tower config: crop %d: want 0 or an even-margin side in [1, %d]", c.Crop, ImageSize)
	case c.Patch < 1 || c.CropSize()%c.Patch != 0:
		return fmt.Errorf("tower config: patch %d: want a divisor of the crop size %d", c.Patch, c.CropSize())
	case c.Width < 1:
		return fmt.Errorf("tower config: width %d: want at least 1", c.Width)
	case c.Depth < 0:
		return fmt.Errorf("tower config: depth %d: want at least 0", c.Depth)
	case c.Kind == KindViT && (c.Heads < 1 || c.Width%c.Heads != 0):
		return fmt.Errorf("tower config: heads %d: want a divisor of the width %d", c.Heads, c.Width)
	case c.MLP < 1:
		return fmt.Errorf("tower config: mlp %d: want at least 1", c.MLP)
	case c.Embed < 0 || (c.Embed > 0 && c.Kind != KindMLP):
		return fmt.Errorf("tower config: embed %d: want 0, or a width for the %q tower", c.Embed, KindMLP)
	}
	return nil
}

// Tokens returns the number of patch tokens of one image.
func (c TowerConfig) Tokens() int { return (c.CropSize() / c.Patch) * (c.CropSize() / c.Patch) }

// TokenDim returns the features of one patch token (Patch·Patch·3).
func (c TowerConfig) TokenDim() int { return c.Patch * c.Patch * 3 }

// Tower builds the image tower on patch tokens [B, Tokens, TokenDim] (from Patchify) and returns
// layer-normalised features [B, Width]. A ViT embeds the tokens, adds learned position
// embeddings, runs Depth transformer blocks and mean-pools; an MLP flattens the tokens, maps them
// to Width and runs Depth residual MLP blocks. Variables live under ctx. Like every graph
// function, it panics (GoMLX style) on inconsistent shapes; callers building graphs inside
// context.Exec get that back as an error.
func Tower(ctx *context.Context, cfg TowerConfig, tokens *graph.Node) *graph.Node {
	if cfg.Kind == KindMLP {
		b := tokens.Shape().Dimensions[0]
		if cfg.Embed > 0 {
			tokens = GELU(Dense(ctx.In("patch_embed"), tokens, cfg.Embed))
		}
		x := GELU(Dense(ctx.In("in"), graph.Reshape(tokens, b, -1), cfg.Width))
		for i := range cfg.Depth {
			blk := ctx.In(fmt.Sprintf("block%d", i))
			h := LayerNorm(blk.In("ln"), x)
			x = graph.Add(x, Dense(blk.In("mlp2"), GELU(Dense(blk.In("mlp1"), h, cfg.MLP)), cfg.Width))
		}
		return LayerNorm(ctx.In("ln_final"), x)
	}
	x := Dense(ctx.In("patch_embed"), tokens, cfg.Width)
	x = graph.Add(x, graph.ExpandLeftToRank(Embedding(ctx, "pos", cfg.Tokens(), cfg.Width, x.Graph()), 3))
	for i := range cfg.Depth {
		x = Block(ctx.In(fmt.Sprintf("block%d", i)), x, cfg.Heads, cfg.MLP, nil)
	}
	pooled := graph.ReduceMean(x, 1)
	return LayerNorm(ctx.In("ln_final"), pooled)
}

// DefaultEmbeddingStd is the standard deviation of Embedding's initial values.
const DefaultEmbeddingStd = 0.02

// Embedding returns a learned [n, width] table named name under ctx, initialised
// N(0, DefaultEmbeddingStd²).
func Embedding(ctx *context.Context, name string, n, width int, g *graph.Graph) *graph.Node {
	return EmbeddingStd(ctx, name, n, width, DefaultEmbeddingStd, g)
}

// EmbeddingStd is Embedding with initial values of standard deviation std.
func EmbeddingStd(ctx *context.Context, name string, n, width int, std float64, g *graph.Graph) *graph.Node {
	init := initializers.RandomNormalFn(ctx, std)
	return ctx.WithInitializer(init).VariableWithShape(name, shapes.Make(DType, n, width)).ValueGraph(g)
}

// Dense is an affine map of the last axis of x to out features: x·W + b, with W ("w", He
// initialised) and b ("b", zeros) under ctx.
func Dense(ctx *context.Context, x *graph.Node, out int) *graph.Node {
	in := x.Shape().Dimensions[x.Rank()-1]
	w := ctx.VariableWithShape("w", shapes.Make(x.DType(), in, out)).ValueGraph(x.Graph())
	b := ctx.WithInitializer(initializers.Zero).VariableWithShape("b", shapes.Make(x.DType(), out)).ValueGraph(x.Graph())
	y := graph.DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{0}, nil)
	return graph.Add(y, graph.ExpandLeftToRank(b, y.Rank()))
}

// LayerNorm normalises the last axis of x to zero mean and unit variance and applies a learned
// scale ("scale", ones) and offset ("offset", zeros). It uses Div/Sqrt: Rsqrt has no gradient in
// GoMLX v0.26.0.
func LayerNorm(ctx *context.Context, x *graph.Node) *graph.Node {
	w := x.Shape().Dimensions[x.Rank()-1]
	mean := graph.ReduceAndKeep(x, graph.ReduceMean, -1)
	d := graph.Sub(x, mean)
	v := graph.ReduceAndKeep(graph.Mul(d, d), graph.ReduceMean, -1)
	n := graph.Div(d, graph.Sqrt(graph.AddScalar(v, 1e-5)))
	g := ctx.WithInitializer(initializers.One).VariableWithShape("scale", shapes.Make(x.DType(), w)).ValueGraph(x.Graph())
	b := ctx.WithInitializer(initializers.Zero).VariableWithShape("offset", shapes.Make(x.DType(), w)).ValueGraph(x.Graph())
	return graph.Add(graph.Mul(n, graph.ExpandLeftToRank(g, x.Rank())), graph.ExpandLeftToRank(b, x.Rank()))
}

// Block is one pre-norm transformer block on x [B, L, W]: x + Attn(LN(x)), then x + MLP(LN(x))
// with a GELU MLP of hidden width mlp. mask, when not nil, is a [L, L] additive attention bias
// (0 where query i may attend key j, a large negative number elsewhere; see CausalMask).
func Block(ctx *context.Context, x *graph.Node, heads, mlp int, mask *graph.Node) *graph.Node {
	h := LayerNorm(ctx.In("ln1"), x)
	x = graph.Add(x, Attention(ctx.In("attn"), h, heads, mask))
	h = LayerNorm(ctx.In("ln2"), x)
	w := x.Shape().Dimensions[2]
	return graph.Add(x, Dense(ctx.In("mlp2"), GELU(Dense(ctx.In("mlp1"), h, mlp)), w))
}

// Attention is multi-head self-attention on x [B, L, W] with separate q, k, v projections (a
// fused projection would need Slice, whose GoMLX gradient uses Pad, missing on the pure-Go
// backend) and an output projection. mask is as in Block.
func Attention(ctx *context.Context, x *graph.Node, heads int, mask *graph.Node) *graph.Node {
	dims := x.Shape().Dimensions
	b, l, w := dims[0], dims[1], dims[2]
	dh := w / heads
	q := graph.Reshape(Dense(ctx.In("q"), x, w), b, l, heads, dh)
	k := graph.Reshape(Dense(ctx.In("k"), x, w), b, l, heads, dh)
	v := graph.Reshape(Dense(ctx.In("v"), x, w), b, l, heads, dh)
	scores := graph.DotGeneral(q, []int{3}, []int{0, 2}, k, []int{3}, []int{0, 2}) // [B, H, L, L]
	scores = graph.MulScalar(scores, 1/math.Sqrt(float64(dh)))
	if mask != nil {
		scores = graph.Add(scores, graph.ExpandLeftToRank(mask, 4))
	}
	attn := graph.Softmax(scores, -1)
	o := graph.DotGeneral(attn, []int{3}, []int{0, 1}, v, []int{1}, []int{0, 2}) // [B, H, L, dh]
	o = graph.Reshape(graph.TransposeAllAxes(o, 0, 2, 1, 3), b, l, w)
	return Dense(ctx.In("out"), o, w)
}

// CausalMask returns the [n, n] additive attention bias that lets position i attend to
// positions j ≤ i only (0 there, -1e9 elsewhere), in dtype DType.
func CausalMask(g *graph.Graph, n int) *graph.Node {
	allowed := graph.LowerTriangular(g, n)
	return graph.Where(allowed, graph.Scalar(g, DType, 0), graph.Scalar(g, DType, -1e9))
}

// GELU is the tanh approximation of the Gaussian error linear unit.
func GELU(x *graph.Node) *graph.Node {
	inner := graph.MulScalar(graph.Add(x, graph.MulScalar(graph.Mul(graph.Mul(x, x), x), 0.044715)), math.Sqrt(2/math.Pi))
	return graph.Mul(graph.MulScalar(x, 0.5), graph.AddScalar(graph.Tanh(inner), 1))
}
