package stages

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/cocoins"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/pipeline"
)

// smallGenerator saves an untrained tiny generator small enough for tests to run in seconds.
func smallGenerator(t *testing.T) string { return saveSmallGenerator(t, 2) }

// saveSmallGenerator saves an untrained tiny generator of width 16 with one block and the
// given MLP ratio, and returns its folder.
func saveSmallGenerator(tb testing.TB, mlpRatio int) string {
	tb.Helper()
	tok, err := tiny.Tokenizer()
	if err != nil {
		tb.Fatal(err)
	}
	cfg := tiny.DefaultConfig(tok.VocabSize())
	cfg.TextWidth, cfg.TextDepth, cfg.TextHeads = 16, 1, 2
	cfg.Width, cfg.Depth, cfg.Heads, cfg.MLPRatio, cfg.TimeDim = 16, 1, 2, mlpRatio, 16
	g, err := tiny.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	dir := filepath.Join(tb.TempDir(), "gen")
	if err := g.Save(dir); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func trainConfig(genDir string, steps int) string {
	return tinyPrep + fmt.Sprintf(`  - id: train
    uses: train
    inputs: {triplets: triplets}
    with: {model_dir: %q, steps: %d, batch: 2, code_dim: 8, width: 16, checkpoint_every: 2}
`, genDir, steps)
}

func mapperWeights(t *testing.T, dir string) []byte {
	t.Helper()
	rows := readAll[MapperRow](t, filepath.Join(dir, "p", "train", "mapper"))
	if len(rows) != 1 || len(rows[0].Weights) == 0 || !strings.Contains(rows[0].Config, `"code_dim":8`) {
		t.Fatalf("mapper rows: %d", len(rows))
	}
	return rows[0].Weights
}

func TestTrainStageRunsAndResumesIdentically(t *testing.T) {
	gen := smallGenerator(t)
	straight := t.TempDir()
	rm, err := runConfig(t, straight, trainConfig(gen, 6))
	if err != nil {
		t.Fatal(err)
	}
	train := rm.Stages[len(rm.Stages)-1]
	if train.Status != pipeline.StatusRan || train.Records["frozen_generator_sha256"] == nil {
		t.Fatalf("train stage: %+v", train)
	}
	logs := readAll[TrainLogRow](t, filepath.Join(straight, "p", "train", "log"))
	if len(logs) != 6 || logs[0].LambdaNeg != 0 || logs[5].LambdaNeg <= logs[3].LambdaNeg {
		t.Fatalf("log rows: %+v", logs)
	}
	for _, f := range []string{"train_log.csv", "train_loss.png"} {
		if _, err := os.Stat(filepath.Join(straight, "p", "train", f)); err != nil {
			t.Fatal(err)
		}
	}
	// The CSV holds the same rows, the no-code positive distance included.
	csvRows, err := readTrainLog(filepath.Join(straight, "p", "train", "train_log.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(csvRows) != len(logs) {
		t.Fatalf("train_log.csv has %d rows, log has %d", len(csvRows), len(logs))
	}
	for i, r := range logs {
		if r.Plain <= 0 || csvRows[i].Plain != r.Plain || csvRows[i].Pos != r.Pos {
			t.Errorf("step %d: d_plain %g (csv %g), d_pos %g (csv %g): want a positive no-code distance, the same in both", i, r.Plain, csvRows[i].Plain, r.Pos, csvRows[i].Pos)
		}
	}
	want := mapperWeights(t, straight)

	// Interrupt a second run once its first checkpoint exists, then rerun it.
	dir := t.TempDir()
	cfg, err := pipeline.ParseConfig("test.yaml", []byte(trainConfig(gen, 6)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		ckpt := filepath.Join(dir, "p", "train", "checkpoints", "checkpoint.bin")
		for ctx.Err() == nil {
			if _, err := os.Stat(ckpt); err == nil {
				cancel()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := pipeline.Run(ctx, cfg, pipeline.Options{Workdir: dir}); err == nil {
		t.Fatal("the interrupted run should fail with the context error")
	}
	cancel()
	checkpointHoldsNoGenerator(t, gen, filepath.Join(dir, "p", "train", "checkpoints"))
	var out bytes.Buffer
	if _, err := pipeline.Run(context.Background(), cfg, pipeline.Options{Workdir: dir, Log: slog.New(slog.NewTextHandler(&out, nil))}); err != nil {
		t.Fatal(err)
	}
	if got := mapperWeights(t, dir); !bytes.Equal(got, want) {
		t.Fatal("resumed training gave different mapper weights than an uninterrupted run")
	}
	sameTrainLog(t, straight, dir)
	// The progress report starts where the checkpoint left off.
	if !regexp.MustCompile(`msg=resuming stage=train what=train done=[1-5] total=6 unit=steps`).MatchString(out.String()) ||
		!regexp.MustCompile(`msg=done stage=train what=train steps=6 resumed_at=[1-5] `).MatchString(out.String()) {
		t.Errorf("resumed training should report resuming at its checkpoint and done at 6 steps:\n%s", out.String())
	}
}

// sameTrainLog checks that the training in dir logged what the one in want did: the log
// dataset and train_log.csv with every step once and the same values (seconds aside), and the
// same train_loss.png.
func sameTrainLog(t *testing.T, want, dir string) {
	t.Helper()
	strip := func(rows []TrainLogRow) []TrainLogRow {
		out := append([]TrainLogRow(nil), rows...)
		for i := range out {
			out[i].Seconds = 0
		}
		return out
	}
	csv := func(root string) []TrainLogRow {
		rows, err := readTrainLog(filepath.Join(root, "p", "train", "train_log.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	for what, pair := range map[string][2][]TrainLogRow{
		"log dataset":   {readAll[TrainLogRow](t, filepath.Join(want, "p", "train", "log")), readAll[TrainLogRow](t, filepath.Join(dir, "p", "train", "log"))},
		"train_log.csv": {csv(want), csv(dir)},
	} {
		w, g := strip(pair[0]), strip(pair[1])
		if len(g) != len(w) {
			t.Fatalf("%s: %d rows after the resume, %d uninterrupted", what, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("%s row %d: %+v after the resume, %+v uninterrupted", what, i, g[i], w[i])
			}
		}
	}
	a, _ := os.ReadFile(filepath.Join(want, "p", "train", "train_loss.png"))
	b, _ := os.ReadFile(filepath.Join(dir, "p", "train", "train_loss.png"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("train_loss.png differs between the resumed and the uninterrupted run")
	}
}

// checkpointHoldsNoGenerator fails unless the checkpoint in ckptDir holds the mapper and none of
// the generator's (frozen) weights, which come from the generator's own folder: a checkpoint of
// SDXL training would otherwise copy GBs every few steps.
func checkpointHoldsNoGenerator(t *testing.T, genDir, ckptDir string) {
	t.Helper()
	g, err := tiny.Load(genDir)
	if err != nil {
		t.Fatal(err)
	}
	frozen := map[string]bool{}
	for v := range g.Context().IterVariables() {
		frozen[v.ScopeAndName()] = true
	}
	saved := mlctx.New()
	if _, err := engine.Load(saved, ckptDir); err != nil {
		t.Fatal(err)
	}
	mapperVars := 0
	for v := range saved.IterVariables() {
		if frozen[v.ScopeAndName()] {
			t.Errorf("checkpoint holds generator variable %s", v.ScopeAndName())
		}
		if strings.HasPrefix(v.ScopeAndName(), "/"+cocoins.MapperScope+"/") {
			mapperVars++
		}
	}
	if len(frozen) == 0 || mapperVars == 0 {
		t.Errorf("generator has %d variables, checkpoint %d mapper variables: want both > 0", len(frozen), mapperVars)
	}
}

func TestTrainRejectsBadTriplets(t *testing.T) {
	gen := smallGenerator(t)
	dir := t.TempDir()
	if _, err := runConfig(t, dir, tinyPrep); err != nil {
		t.Fatal(err)
	}
	// Corrupt one triplet: a concept position outside its caption.
	ds, err := pipeline.OpenDataset(filepath.Join(dir, "p", "triplets", "triplets"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pipeline.ReadShard[TripletRow](ds, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows[0].I = 40
	rows[0].Split = "train"
	bad := filepath.Join(t.TempDir(), "bad")
	badCfg := fmt.Sprintf(`name: b
stages:
  - id: fake
    uses: test-rows
  - id: train
    uses: train
    inputs: {triplets: fake}
    with: {model_dir: %q, steps: 1, batch: 2, code_dim: 8, width: 16}
`, gen)
	testRows = rows
	_, err = runConfig(t, bad, badCfg)
	if err == nil || !strings.Contains(err.Error(), "concept position 40 of p1") || !strings.Contains(err.Error(), rows[0].ID) {
		t.Fatalf("want an error naming the bad triplet, got %v", err)
	}
}

// testRows is what the test-rows kind writes: a way to hand a stage malformed input.
var testRows []TripletRow

func init() { registerRows("test-rows", "rows", &testRows) }

// registerRows registers a test kind that writes *rows, as they are when it runs, to its one
// output: a way to hand a stage malformed input.
func registerRows[T any](name, output string, rows *[]T) {
	pipeline.Register(pipeline.Spec[struct{}]{
		Name: name, Version: "1",
		Outputs: []pipeline.Port{{Name: output}},
		Run: func(ctx context.Context, job *pipeline.Job, _ *struct{}) error {
			return pipeline.WriteRows(job, job.Output(output), *rows, 100)
		},
	})
}
