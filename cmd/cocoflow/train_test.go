package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/pipeline"
	"github.com/cocoflow/cocoflow/stages"
)

// smallGenerator saves an untrained tiny generator small enough to train in a few seconds.
func smallGenerator(t *testing.T) string {
	t.Helper()
	tok, err := tiny.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	cfg := tiny.DefaultConfig(tok.VocabSize())
	cfg.TextWidth, cfg.TextDepth, cfg.TextHeads = 16, 1, 2
	cfg.Width, cfg.Depth, cfg.Heads, cfg.MLPRatio, cfg.TimeDim = 16, 1, 2, 2, 16
	g, err := tiny.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "gen")
	if err := g.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func killTrainConfig(gen string) string {
	return fmt.Sprintf(`name: k
seed: 3
stages:
  - id: ingest
    uses: ingest
    with: {identities: 10, images_per_identity: 3, shard_size: 8}
  - id: caption
    uses: caption
    inputs: {images: ingest}
  - id: mask
    uses: mask
    inputs: {images: ingest}
  - id: encode
    uses: encode
    inputs: {images: ingest, captions: caption, masks: mask}
  - id: triplets
    uses: triplets
    inputs: {images: ingest, latents: encode.latents, tokens: encode.tokens}
  - id: train
    uses: train
    inputs: {triplets: triplets}
    with: {model_dir: %q, steps: 40, batch: 2, code_dim: 8, width: 16, checkpoint_every: 5}
`, gen)
}

func trainLogRows(t *testing.T, dir string) []stages.TrainLogRow {
	t.Helper()
	files, err := pipeline.ShardFiles(filepath.Join(dir, "runs", "k", "train", "log"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []stages.TrainLogRow
	for _, f := range files {
		rs, err := pipeline.ReadFile[stages.TrainLogRow](f)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, rs...)
	}
	return rows
}

// TestKillNineDuringTrainingKeepsTheWholeLog kills training (SIGKILL) between two checkpoints,
// reruns it, and checks that the log has every step once with the values of an uninterrupted
// run, and that the loss plot is the same image.
func TestKillNineDuringTrainingKeepsTheWholeLog(t *testing.T) {
	gen := smallGenerator(t)
	clean := t.TempDir()
	writeFile(t, filepath.Join(clean, "c.yaml"), killTrainConfig(gen))
	if _, stderr, code := cocoflow(t, clean, "run", "c.yaml"); code != 0 {
		t.Fatalf("uninterrupted run: %s", stderr)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), killTrainConfig(gen))
	cmd := exec.Command(bin, "run", "c.yaml")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the log shows step 7 or later: past the checkpoint at 5, before the one at 10.
	csv := filepath.Join(dir, "runs", "k", "train", "train_log.csv")
	deadline := time.Now().Add(120 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(csv); err == nil && strings.Count(string(data), "\n") >= 1+8 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(dir, "runs", "k", "train", "log", pipeline.ManifestFile)); err == nil {
		t.Fatal("the training finished before it could be killed; give it more steps")
	}
	_, stderr, code := cocoflow(t, dir, "run", "c.yaml")
	if code != 0 {
		t.Fatalf("rerun after kill: %s", stderr)
	}
	if !strings.Contains(stderr, "msg=resuming stage=train") {
		t.Errorf("the rerun's progress should say it resumes:\n%s", stderr)
	}

	want, got := trainLogRows(t, clean), trainLogRows(t, dir)
	if len(got) != 40 || len(want) != 40 {
		t.Fatalf("log rows: %d after kill and rerun, %d uninterrupted, want 40", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		w.Seconds, g.Seconds = 0, 0
		if w != g || int(g.Step) != i {
			t.Fatalf("log row %d: %+v after kill and rerun, %+v uninterrupted", i, g, w)
		}
	}
	a, _ := os.ReadFile(filepath.Join(clean, "runs", "k", "train", "train_loss.png"))
	b, _ := os.ReadFile(filepath.Join(dir, "runs", "k", "train", "train_loss.png"))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("train_loss.png differs from the uninterrupted run's")
	}
}
