package engine

import (
	"context"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// TestFitResumeMatchesStraightRun: 6 steps in one Fit equal 3 steps, a fresh process-like
// context resumed from the checkpoint directory, and 3 more.
func TestFitResumeMatchesStraightRun(t *testing.T) {
	newCtx := func() *mlctx.Context {
		ctx := mlctx.New()
		ctx.In("m").VariableWithValue("w", [][]float32{{0.1, -0.2}, {0.3, 0.4}})
		if err := ctx.SetRNGStateFromSeed(7); err != nil {
			t.Fatal(err)
		}
		return ctx
	}
	graphFn := func(ctx *mlctx.Context, x *graph.Node) *graph.Node {
		g := x.Graph()
		w := ctx.In("m").VariableWithShape("w", shapes.Make(dtypes.Float32, 2, 2)).ValueGraph(g)
		h := graph.Dot(x, w)
		h = graph.Add(h, graph.MulScalar(ctx.RandomNormal(g, h.Shape()), 0.1))
		loss := graph.ReduceAllMean(graph.Mul(h, h))
		optimizers.Adam().LearningRate(0.05).Done().UpdateGraph(ctx, g, loss)
		return loss
	}
	batch := func(step int) ([]any, error) {
		return []any{[][]float32{{1 + float32(step%2), 1}, {1, -1}}}, nil
	}
	var losses []float64
	straight := newCtx()
	if err := Fit(context.Background(), straight, graphFn, batch, FitOptions{Steps: 6}, func(step int, out []float64, _ time.Duration) {
		losses = append(losses, out[0])
	}); err != nil {
		t.Fatal(err)
	}
	if len(losses) != 6 || losses[5] >= losses[0] {
		t.Fatalf("losses %v: want 6 values, falling", losses)
	}
	dir := t.TempDir()
	if err := Fit(context.Background(), newCtx(), graphFn, batch, FitOptions{Steps: 3, CheckpointDir: dir}, nil); err != nil {
		t.Fatal(err)
	}
	resumed := newCtx()
	calls := 0
	if err := Fit(context.Background(), resumed, graphFn, batch, FitOptions{Steps: 6, CheckpointDir: dir}, func(int, []float64, time.Duration) { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls != 3 {
		t.Fatalf("resumed run made %d steps, want 3", calls)
	}
	equalContexts(t, resumed, straight)

	// A cancelled run saves where it stopped.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir2 := t.TempDir()
	if err := Fit(ctx, newCtx(), graphFn, batch, FitOptions{Steps: 6, CheckpointDir: dir2}, nil); err == nil {
		t.Fatal("want the context error")
	}
	meta, err := Load(mlctx.New(), dir2)
	if err != nil || meta["step"] != "0" {
		t.Fatalf("checkpoint after cancel: meta %v err %v", meta, err)
	}

	// A checkpoint of another configuration (other Meta) is not resumed: the run starts afresh
	// and its result equals the straight run's.
	dir3 := t.TempDir()
	if err := Fit(context.Background(), newCtx(), graphFn, batch, FitOptions{Steps: 3, CheckpointDir: dir3, Meta: map[string]string{"fingerprint": "a"}}, nil); err != nil {
		t.Fatal(err)
	}
	fresh := newCtx()
	calls = 0
	if err := Fit(context.Background(), fresh, graphFn, batch, FitOptions{Steps: 6, CheckpointDir: dir3, Meta: map[string]string{"fingerprint": "b"}}, func(int, []float64, time.Duration) { calls++ }); err != nil {
		t.Fatal(err)
	}
	if calls != 6 {
		t.Fatalf("run over another configuration's checkpoint made %d steps, want all 6", calls)
	}
	equalContexts(t, fresh, straight)
	if m, err := Load(mlctx.New(), dir3); err != nil || m["fingerprint"] != "b" || m["step"] != "6" {
		t.Fatalf("checkpoint after the fresh run: meta %v err %v", m, err)
	}
}
