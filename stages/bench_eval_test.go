package stages

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/pipeline"
)

// benchGenerator returns the committed tiny generator's folder, or an untrained generator of
// the default architecture (the same cost) when the build has no committed weights.
func benchGenerator(b *testing.B) string {
	g, err := tiny.LoadDefault()
	if errors.Is(err, tiny.ErrNoDefaultWeights) {
		tok, terr := tiny.Tokenizer()
		if terr != nil {
			b.Fatal(terr)
		}
		g, err = tiny.New(tiny.DefaultConfig(tok.VocabSize()))
	}
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(b.TempDir(), "gen")
	if err := g.Save(dir); err != nil {
		b.Fatal(err)
	}
	return dir
}

// trainSecondsPerStep runs the train stage for steps steps on the bench prep's triplets through
// the generator in genDir and returns the seconds per step after the first (graph compilation).
func trainSecondsPerStep(b *testing.B, genDir string, steps int) float64 {
	dir, _ := benchPrep(b)
	cfg, err := pipeline.ParseConfig("bench-train.yaml", []byte(fmt.Sprintf(`name: bench-train
stages:
  - id: train
    uses: train
    inputs: {triplets: bench/triplets}
    with: {model_dir: %q, steps: %d, batch: 8, checkpoint_every: 1000}
`, genDir, steps)))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := pipeline.Run(context.Background(), cfg, pipeline.Options{Workdir: dir, Force: true}); err != nil {
		b.Fatal(err)
	}
	ds, err := pipeline.OpenDataset(filepath.Join(dir, "bench-train", "train", "log"))
	if err != nil {
		b.Fatal(err)
	}
	rows, err := pipeline.ReadAll[TrainLogRow](ds)
	if err != nil {
		b.Fatal(err)
	}
	n := len(rows)
	return float64(rows[n-1].Seconds-rows[0].Seconds) / float64(n-1)
}

// BenchmarkTrainStep measures CoCoIns training steps/s (batch 8) through the default tiny
// generator, and the share of a step spent in the frozen model: 1 − t(minimal generator) /
// t(default generator), where the minimal generator (width 16, one block) leaves the mapper,
// the loss and the optimizer as they are. That share is a lower bound: the minimal generator
// still costs something.
func BenchmarkTrainStep(b *testing.B) {
	const steps = 8
	full := benchGenerator(b)
	smallDir := saveSmallGenerator(b, 1)
	b.ResetTimer()
	var tFull, tSmall float64
	for i := 0; i < b.N; i++ {
		tFull += trainSecondsPerStep(b, full, steps)
		tSmall += trainSecondsPerStep(b, smallDir, steps)
	}
	tFull /= float64(b.N)
	tSmall /= float64(b.N)
	b.ReportMetric(1/tFull, "steps/s")
	b.ReportMetric(tFull, "s/step")
	b.ReportMetric(100*(1-tSmall/tFull), "%frozen≥")
}

// BenchmarkEvaluateScore measures evaluation throughput: images scored per second (identity
// embedding, CLIP image embedding of the image and of its subject region, CLIP text of its
// prompt, CLIP-T), with the committed tiny metric models.
func BenchmarkEvaluateScore(b *testing.B) {
	dir, _ := benchPrep(b)
	ds, err := pipeline.OpenDataset(filepath.Join(dir, "bench", "ingest", "images"))
	if err != nil {
		b.Fatal(err)
	}
	real, err := pipeline.ReadAll[ImageRow](ds)
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]EvalImageRow, len(real))
	for i, r := range real {
		img, err := imageio.Decode(r.Image)
		if err != nil {
			b.Fatal(err)
		}
		png, err := imageio.PNG(img)
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = EvalImageRow{ID: r.ID, Method: "dataset", Group: fmt.Sprint(r.Identity), Prompt: "a " + r.Class + " is looking at the camera.", Image: png}
	}
	sc, err := newScorer(&evaluateParams{Metrics: []string{"face_sim", "face_div", "clip_t", "dreamsim"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := sc.score(rows[:8], nil); err != nil { // compile outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := sc.score(rows, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "images/s")
}
