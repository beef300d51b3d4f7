package baselines

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// smallTiny is a very small tiny generator (2 blocks, word skip) pretrained for a few steps on
// random latents, so that none of its layers is still zero.
func smallTiny(t testing.TB) *tiny.Generator {
	t.Helper()
	tok, err := tiny.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	cfg := tiny.DefaultConfig(tok.VocabSize())
	cfg.TextWidth, cfg.TextDepth, cfg.TextHeads = 16, 1, 2
	cfg.Width, cfg.Depth, cfg.Heads, cfg.MLPRatio, cfg.TimeDim = 16, 2, 2, 2, 8
	cfg.ImageSize, cfg.LatentShape, cfg.WordSkip = 8, []int{4, 4, 12}, true
	r := rand.New(rand.NewPCG(1, 1))
	var data tiny.Data
	for i := range 8 {
		lat := make([]float32, 4*4*12)
		for j := range lat {
			lat[j] = float32(r.NormFloat64())
		}
		data.Latents = append(data.Latents, lat)
		data.Captions = append(data.Captions, [][]int32{tok.Encode([]string{"a man", "a woman at the beach"}[i%2]).IDs})
	}
	opt := tiny.DefaultPretrainOptions()
	opt.Steps, opt.BatchSize, opt.LearningRate, opt.WarmupSteps, opt.EMADecay = 4, 4, 0.05, 1, 0
	g, err := tiny.Pretrain(context.Background(), cfg, data, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// requests are n requests of the prompts (cycled) with seeds 10, 11, …
func requests(g *tiny.Generator, n int, prompts ...string) []family.SampleRequest {
	out := make([]family.SampleRequest, n)
	for i := range out {
		out[i] = family.SampleRequest{IDs: g.Tokenizer().Encode(prompts[i%len(prompts)]).IDs, Seed: uint64(10 + i)}
	}
	return out
}

func groupSample(t *testing.T, g *tiny.Generator, m Mechanism, opt family.SampleOptions, grp Group) [][]float32 {
	t.Helper()
	s, err := NewGroupSampler(g, m, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Sample(grp)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func maxDiff(a, b [][]float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return math.Inf(1)
		}
		for j := range a[i] {
			d = max(d, math.Abs(float64(a[i][j]-b[i][j])))
		}
	}
	return d
}

func randomTensor(r *rand.Rand, dims ...int) []float32 {
	n := 1
	for _, d := range dims {
		n *= d
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// execGraph compiles fn (no variables) and runs it once on args, returning flat outputs.
func execGraph(t *testing.T, fn func(ctx *mlctx.Context, in []*graph.Node) []*graph.Node, args ...any) [][]float32 {
	t.Helper()
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	e, err := mlctx.NewExec(b, mlctx.New(), fn)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	outs, err := e.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		res[i] = tensors.MustCopyFlatData[float32](o)
	}
	return res
}
