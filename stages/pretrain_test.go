package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/pipeline"
)

// pretrainPrep makes the inputs of the pretrain stage in a temporary workdir: 12 identities x 3
// synthfaces images, 30% of the identities held out as split=test. It returns the workdir.
func pretrainPrep(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	_, err := runConfig(t, dir, prepConfig("name: p\nseed: 5", "{identities: 12, images_per_identity: 3, test_fraction: 0.3, shard_size: 16}", false))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// pretrainConfig is a pretrain run on prep's datasets with tiny models and 3 steps each; extra
// is added to its `with:` block.
func pretrainConfig(prep, extra string) string {
	ds := func(stage, port string) string { return filepath.Join(prep, "p", stage, port) }
	return fmt.Sprintf(`name: pt
seed: 5
stages:
  - id: pretrain
    uses: pretrain
    inputs: {images: %q, latents: %q, tokens: %q, captions: %q}
    with:
      generator_config: '{"text_width": 16, "text_depth": 1, "text_heads": 2, "width": 16, "depth": 1, "heads": 2, "time_dim": 16}'
      generator_steps: 3
      generator_batch: 4
      generator_warmup: 1
      generator_eval_samples: 5
      face_config: '{"tower": {"width": 16, "mlp": 16}, "dim": 8}'
      face_steps: 3
      face_batch: 4
      face_warmup: 1
      clip_config: '{"image": {"width": 16, "mlp": 16, "embed": 4}, "text": {"width": 16, "heads": 2, "mlp": 16}, "dim": 8}'
      clip_steps: 3
      clip_batch: 4
      clip_warmup: 1
      checkpoint_every: 1
%s`, ds("ingest", "images"), ds("encode", "latents"), ds("encode", "tokens"), ds("caption", "captions"), extra)
}

// countSteps sets the step hook to count steps per model (and call also, if not nil) until the
// test ends.
func countSteps(t *testing.T, also func(model string, step int)) map[string]int {
	t.Helper()
	counts := map[string]int{}
	pretrainStepHook = func(model string, step int) {
		counts[model]++
		if also != nil {
			also(model, step)
		}
	}
	t.Cleanup(func() { pretrainStepHook = nil })
	return counts
}

// modelWeights returns the variables of each model row's checkpoint, by model and variable.
func modelWeights(t *testing.T, rows []PretrainedModelRow) map[string]map[string]string {
	t.Helper()
	out := map[string]map[string]string{}
	for _, r := range rows {
		dir := t.TempDir()
		for _, f := range r.Files {
			if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		ctx := mlctx.New()
		if _, err := engine.Load(ctx, dir); err != nil {
			t.Fatalf("model %s: %v", r.Name, err)
		}
		out[r.Name] = map[string]string{}
		for v := range ctx.IterVariables() {
			val := v.MustValue()
			h := sha256.New()
			val.ConstBytes(func(b []byte) { h.Write(b) })
			out[r.Name][v.ScopeAndName()] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return out
}

func TestPretrainStageEndToEndResumeAndReuse(t *testing.T) {
	prep := pretrainPrep(t)
	images := readAll[ImageRow](t, filepath.Join(prep, "p", "ingest", "images"))
	held := map[int64]bool{}
	for _, im := range images {
		if im.Split == "test" {
			held[im.Identity] = true
		}
	}
	if len(held) < 2 || len(held) > 8 {
		t.Fatalf("%d held-out identities: the test needs 2 to 8", len(held))
	}

	// An uninterrupted run.
	straight := t.TempDir()
	counts := countSteps(t, nil)
	rm, err := runConfig(t, straight, pretrainConfig(prep, ""))
	if err != nil {
		t.Fatal(err)
	}
	if s := rm.Stages[0]; s.Status != pipeline.StatusRan || s.Records["face"] == nil || s.Records["clip"] == nil || s.Records["generator"] == nil {
		t.Fatalf("pretrain stage: %s, records %v", s.Status, s.Records)
	}
	if counts["generator"] != 3 || counts["face"] != 3 || counts["clip"] != 3 {
		t.Fatalf("steps per model: %v, want 3 each", counts)
	}
	stageDir := filepath.Join(straight, "pt", "pretrain")
	rows := readAll[PretrainedModelRow](t, filepath.Join(stageDir, "models"))
	if len(rows) != 3 || rows[0].Name != "generator" || rows[1].Name != "face" || rows[2].Name != "clip" {
		t.Fatalf("model rows: %d", len(rows))
	}
	wantEval := map[string][]string{"generator": {"eps_mse_caption", "eps_mse_empty"}, "face": {"auc", "same_cos", "diff_cos"}, "clip": {"class_acc", "retrieval_top1"}}
	for _, r := range rows {
		var names []string
		for _, f := range r.Files {
			names = append(names, f.Name)
			if sum := sha256.Sum256(f.Data); hex.EncodeToString(sum[:]) != f.SHA256 {
				t.Errorf("model %s file %s: sha256 column does not match the data", r.Name, f.Name)
			}
		}
		if !slices.Equal(names, []string{"checkpoint.bin", "config.json"}) || r.Steps != 3 || r.Fingerprint == "" {
			t.Errorf("model %s: files %v, steps %d", r.Name, names, r.Steps)
		}
		var eval map[string]any
		if err := json.Unmarshal([]byte(r.Eval), &eval); err != nil {
			t.Fatalf("model %s: eval %q: %v", r.Name, r.Eval, err)
		}
		for _, k := range wantEval[r.Name] {
			if v, ok := eval[k].(float64); !ok || v == 0 {
				t.Errorf("model %s: eval %s = %v, want a number", r.Name, k, eval[k])
			}
		}
		if !json.Valid([]byte(r.Config)) {
			t.Errorf("model %s: config %q is not JSON", r.Name, r.Config)
		}
		for _, f := range []string{r.Name + "_log.csv", r.Name + "_loss.png", filepath.Join(r.Name, "eval.json")} {
			if _, err := os.Stat(filepath.Join(stageDir, f)); err != nil {
				t.Error(err)
			}
		}
	}
	// The final folders load with their packages, and hold the model's weights only.
	final := func(m string) string { return filepath.Join(stageDir, m, "final") }
	if g, err := tiny.Load(final("generator")); err != nil || g.Config().Width != 16 {
		t.Fatalf("tiny.Load: %v", err)
	}
	if m, err := tinyface.Load(final("face")); err != nil || m.Config().Dim != 8 {
		t.Fatalf("tinyface.Load: %v", err)
	}
	if m, err := tinyclip.Load(final("clip")); err != nil || m.Config().Dim != 8 {
		t.Fatalf("tinyclip.Load: %v", err)
	}
	want := modelWeights(t, rows)
	for m, vars := range want {
		for name := range vars {
			for _, state := range []string{"adam", "optimizer", "/ema/", "global_step", "rngstate", "arcface"} {
				if strings.Contains(strings.ToLower(name), state) {
					t.Errorf("model %s: final weights hold training state %s", m, name)
				}
			}
		}
	}
	logs := readAll[PretrainLogRow](t, filepath.Join(stageDir, "log"))
	if len(logs) != 9 {
		t.Fatalf("%d log rows, want 9", len(logs))
	}
	for i, l := range logs {
		m := []string{"generator", "face", "clip"}[i/3]
		metric := map[string]string{"generator": "eps_mse", "face": "accuracy", "clip": "accuracy"}[m]
		if l.Model != m || int(l.Step) != i%3 || l.MetricName != metric || !(l.Loss > 0) {
			t.Errorf("log row %d: %+v", i, l)
		}
	}
	rm, err = runConfig(t, straight, pretrainConfig(prep, ""))
	if err != nil || rm.Stages[0].Status != pipeline.StatusUpToDate {
		t.Fatalf("rerun: %v, want up to date", err)
	}

	// A run cancelled after the identity encoder's second step, then rerun: the generator is
	// not retrained, the identity encoder resumes, and every model ends as in the straight run.
	dir := t.TempDir()
	cfg, err := pipeline.ParseConfig("test.yaml", []byte(pretrainConfig(prep, "")))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	countSteps(t, func(model string, step int) {
		if model == "face" && step == 1 {
			cancel()
		}
	})
	if _, err := pipeline.Run(ctx, cfg, pipeline.Options{Workdir: dir}); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("cancelled run: %v, want the context error", err)
	}
	stageDir = filepath.Join(dir, "pt", "pretrain")
	if _, err := os.Stat(filepath.Join(stageDir, "face", "final")); err == nil {
		t.Fatal("the cancelled identity encoder has a final folder")
	}
	if _, err := os.Stat(filepath.Join(stageDir, "face", "checkpoints", engine.CheckpointFile)); err != nil {
		t.Fatalf("the cancelled identity encoder left no checkpoint: %v", err)
	}
	counts = countSteps(t, nil)
	if _, err := pipeline.Run(context.Background(), cfg, pipeline.Options{Workdir: dir}); err != nil {
		t.Fatal(err)
	}
	if counts["generator"] != 0 || counts["face"] != 1 || counts["clip"] != 3 {
		t.Fatalf("resumed run: steps per model %v, want generator 0, face 1, clip 3", counts)
	}
	resumed := readAll[PretrainedModelRow](t, filepath.Join(stageDir, "models"))
	if got := modelWeights(t, resumed); !sameWeights(got, want) {
		t.Fatal("the resumed run's weights differ from the uninterrupted run's")
	}
	for i, r := range resumed {
		for k, f := range r.Files {
			if f.SHA256 != rows[i].Files[k].SHA256 {
				t.Errorf("model %s: %s differs from the uninterrupted run's (in another workdir)", r.Name, f.Name)
			}
		}
	}
	logs = readAll[PretrainLogRow](t, filepath.Join(stageDir, "log"))
	if len(logs) != 9 || logs[3].Model != "face" || logs[5].Step != 2 {
		t.Fatalf("resumed run: %d log rows, want 9 with face steps 0-2 (kept across the restart)", len(logs))
	}

	// Changing one model's settings retrains that model only (checkpoint_every changes none).
	counts = countSteps(t, nil)
	changed := strings.Replace(pretrainConfig(prep, ""), "face_steps: 3", "face_steps: 4", 1)
	if _, err := runConfig(t, dir, strings.Replace(changed, "checkpoint_every: 1", "checkpoint_every: 2", 1)); err != nil {
		t.Fatal(err)
	}
	if counts["generator"] != 0 || counts["face"] != 4 || counts["clip"] != 0 {
		t.Fatalf("after changing face_steps: steps per model %v, want only face's 4", counts)
	}
}

func sameWeights(a, b map[string]map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb := b[k]
		if len(va) != len(vb) {
			return false
		}
		for n, x := range va {
			if vb[n] != x {
				return false
			}
		}
	}
	return true
}

// testLatents is what the test-latent-rows kind writes: a way to hand pretrain bad latents.
var testLatents []LatentRow

func init() { registerRows("test-latent-rows", "latents", &testLatents) }

func TestPretrainRejectsBadInput(t *testing.T) {
	prep := pretrainPrep(t)
	latents := readAll[LatentRow](t, filepath.Join(prep, "p", "encode", "latents"))
	tokens := filepath.Join(prep, "p", "encode", "tokens")
	tests := []struct {
		name   string
		edit   func(rows []LatentRow)
		models string
		want   []string
	}{
		{"short latent", func(rows []LatentRow) { rows[4].Latent = rows[4].Latent[:100] }, "[generator]",
			[]string{"row 4", latents[4].ID, "100 values", "[8 8 48]"}},
		{"another shape", func(rows []LatentRow) { rows[2].Shape = []int32{4, 4, 192} }, "[generator]",
			[]string{"row 2", latents[2].ID, "shape [4 4 192]"}},
		{"unknown image", func(rows []LatentRow) { rows[7].ID = "sf-999999-00" }, "[generator]",
			[]string{"row 7", "sf-999999-00", "no such image"}},
		{"missing input", func([]LatentRow) {}, "[generator, clip]", []string{`model clip needs input "captions"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testLatents = slices.Clone(latents)
			tc.edit(testLatents)
			cfg := fmt.Sprintf(`name: b
stages:
  - id: fake
    uses: test-latent-rows
  - id: pretrain
    uses: pretrain
    inputs: {images: %q, latents: fake, tokens: %q}
    with: {models: %s, generator_steps: 1}
`, filepath.Join(prep, "p", "ingest", "images"), tokens, tc.models)
			_, err := runConfig(t, t.TempDir(), cfg)
			t.Logf("error: %v", err)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("got %v, want an error containing %q", err, w)
				}
			}
		})
	}
}

func TestPretrainParamErrors(t *testing.T) {
	tests := []struct{ with, want string }{
		{"models: [face, face]", "face is listed twice"},
		{"models: [vae]", "vae"},
		{`generator_config: '{"widht": 8}'`, `unknown field "widht"`},
		{`generator_config: '{"width": 10, "heads": 4}'`, "width 10 is not divisible by heads 4"},
		{`face_config: '{"tower": {"kind": "cnn"}}'`, `kind "cnn"`},
		{`clip_config: '{"dim": 0}'`, "dim 0"},
		{"clip_lr: 0", "clip_lr = 0"},
		{"face_batch: 1", "below the minimum"},
	}
	for _, tc := range tests {
		cfg := fmt.Sprintf("name: x\nstages:\n  - id: pretrain\n    uses: pretrain\n    inputs: {images: /nowhere}\n    with: {%s}\n", tc.with)
		_, err := pipeline.ParseConfig("x.yaml", []byte(cfg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.with, err, tc.want)
		}
	}
}

// TestPretrainDefaultsAreThePackagesDefaults: the stage's defaults train what the packages'
// defaults train.
func TestPretrainDefaultsAreThePackagesDefaults(t *testing.T) {
	kind, ok := pipeline.Lookup("pretrain")
	if !ok {
		t.Fatal("pretrain is not registered")
	}
	p := kind.Params.Defaults().(*pretrainParams)
	if !slices.Equal(p.Models, []string{"generator", "face", "clip"}) || p.EvalSplit != "test" {
		t.Fatalf("models %v, eval split %q", p.Models, p.EvalSplit)
	}
	face, err := p.faceOptions(1)
	if err != nil {
		t.Fatal(err)
	}
	if def := tinyface.DefaultOptions(); !jsonEqual(t, face, def) {
		t.Errorf("face options %+v, want tinyface.DefaultOptions %+v", face, def)
	}
	clip, err := p.clipOptions(1)
	if err != nil {
		t.Fatal(err)
	}
	if def, _ := tinyclip.DefaultOptions(); !jsonEqual(t, clip, def) {
		t.Errorf("clip options %+v, want tinyclip.DefaultOptions %+v", clip, def)
	}
	gen, err := p.generatorConfig()
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := tiny.Tokenizer()
	if !jsonEqual(t, gen, tiny.DefaultConfig(tok.VocabSize())) {
		t.Errorf("generator config %+v is not tiny.DefaultConfig", gen)
	}
	// The learning-rate schedule shows steps, peak, decay and warm-up.
	opt, err := p.generatorOptions(1)
	if err != nil {
		t.Fatal(err)
	}
	def := tiny.DefaultPretrainOptions()
	if opt.BatchSize != def.BatchSize {
		t.Errorf("generator batch %d, the package default %d", opt.BatchSize, def.BatchSize)
	}
	for _, k := range []int{0, 50, 99, 100, 1000, 1999, 2500} {
		if a, b := opt.LearningRateAt(k), def.LearningRateAt(k); toF32(a) != toF32(b) {
			t.Errorf("generator learning rate at step %d: %g, the package default %g", k, a, b)
		}
	}
}

// jsonEqual compares a and b by their JSON (the options hold no functions), ignoring the
// checkpoint settings the stage adds.
func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, "checkpoint_every")
		delete(m, "checkpoint_dir")
		out, _ := json.Marshal(m)
		return string(out)
	}
	return norm(a) == norm(b)
}

func toF32(x float64) float32 { return float32(x) }
