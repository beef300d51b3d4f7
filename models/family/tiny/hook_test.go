package tiny

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// layerLog is a hook that computes plain attention and records which layers it saw; with
// zeroCross it replaces the cross-attention output by zeros.
type layerLog struct {
	self, cross []int
	zeroCross   bool
}

func (h *layerLog) SelfAttention(layer int, q, k, v *graph.Node) *graph.Node {
	h.self = append(h.self, layer)
	return Attend(q, k, v, nil)
}

func (h *layerLog) CrossAttention(layer int, q, k, v *graph.Node) *graph.Node {
	h.cross = append(h.cross, layer)
	if h.zeroCross {
		return graph.ZerosLike(q)
	}
	return Attend(q, k, v, nil)
}

// TestPlainHookIsBitIdentical: the denoiser built with the no-op hook gives the same bits as the
// plain denoiser, every layer is offered to the hook once, and a hook that changes attention
// changes the output (so the hooked path is really the one that ran).
func TestPlainHookIsBitIdentical(t *testing.T) {
	cfg := testConfig(t)
	cfg.Depth, cfg.WordSkip = 2, true
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	randomizeZeros(t, g)
	r := rand.New(rand.NewPCG(3, 4))
	xt := make([]float32, 3*4*4*12)
	for i := range xt {
		xt[i] = float32(r.NormFloat64())
	}
	ids := make([]int32, 3*MaxLength)
	for i := range ids {
		ids[i] = int32(4 + i%7)
	}
	log, zero := &layerLog{}, &layerLog{zeroCross: true}
	out := run(t, g, func(ctx *context.Context, ids, eos, xt, ts *graph.Node) []*graph.Node {
		c := g.Encode(ctx, g.Embed(ctx, ids), eos)
		return []*graph.Node{
			g.Denoise(ctx, xt, ts, c),
			g.DenoiseHooked(ctx, xt, ts, c, PlainAttention{}),
			g.DenoiseHooked(ctx, xt, ts, c, log),
			g.DenoiseHooked(ctx, xt, ts, c, zero),
		}
	}, tensors.FromFlatDataAndDimensions(ids, 3, MaxLength), []int32{3, 5, 2},
		tensors.FromFlatDataAndDimensions(xt, 3, 4, 4, 12), []int32{10, 500, 990})
	plain := flat(t, out[0])
	for i, name := range []string{"PlainAttention", "recording hook"} {
		if got := flat(t, out[1+i]); !slices.Equal(got, plain) {
			t.Errorf("%s: differs from the plain denoiser by up to %g", name, maxDiff(got, plain))
		}
	}
	if !slices.Equal(log.self, []int{0, 1}) || !slices.Equal(log.cross, []int{0, 1}) {
		t.Errorf("layers offered: self %v, cross %v; want [0 1] each", log.self, log.cross)
	}
	if d := maxDiff(flat(t, out[3]), plain); d < 1e-4 {
		t.Errorf("zeroing cross-attention changed the output by %g only", d)
	}
}
