package stages

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/pipeline"
)

// attentiveGenerator saves a small tiny generator (2 blocks, word skip) pretrained for a few
// steps on random latents: unlike an untrained one, whose zero output layer makes ε̂ ignore
// attention, its images depend on what attention reads.
func attentiveGenerator(t *testing.T) string {
	t.Helper()
	tok, err := tiny.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	cfg := tiny.DefaultConfig(tok.VocabSize())
	cfg.TextWidth, cfg.TextDepth, cfg.TextHeads = 16, 1, 2
	cfg.Width, cfg.Depth, cfg.Heads, cfg.MLPRatio, cfg.TimeDim, cfg.WordSkip = 16, 2, 2, 2, 16, true
	r := rand.New(rand.NewPCG(1, 1))
	var data tiny.Data
	n := cfg.LatentShape[0] * cfg.LatentShape[1] * cfg.LatentShape[2]
	for i := range 8 {
		lat := make([]float32, n)
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
	dir := filepath.Join(t.TempDir(), "gen")
	if err := g.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestEvaluateBaselines runs the baseline rows through evaluate on a small generator: every
// method has its identities and images, the batch methods change the plain generator's images,
// the later-run rows report face_sim_runs, and the cost table says what each method needs.
func TestEvaluateBaselines(t *testing.T) {
	gen := attentiveGenerator(t)
	face, clip := metricModels(t)
	dir := t.TempDir()
	methods := []string{"no_code", "storydiffusion", "consistory", "cocoins_later", "storydiffusion_later"}
	cfg := trainConfig(gen, 2) + fmt.Sprintf(`  - id: eval
    uses: evaluate
    inputs: {mapper: train.mapper}
    with:
      table: table1
      prompt_set: tiny-scenes
      methods: [%s]
      subjects: [man, woman]
      identities_per_subject: 2
      samples_per_identity: 3
      steps: 3
      bootstrap: 20
      cost_table: cost
      shard_size: 6
      model_dir: %q
      face_model: %q
      clip_model: %q
`, strings.Join(methods, ", "), gen, face, clip)
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	imgs := readAll[EvalImageRow](t, filepath.Join(dir, "p", "eval", "images"))
	count := map[string]int{}
	byKey := map[string][]byte{}
	for _, r := range imgs {
		count[r.Method]++
		byKey[fmt.Sprintf("%s|%s|%d", r.Method, r.Prompt, r.Seed)] = r.Image
	}
	for _, m := range methods {
		want := 2 * 2 * 3
		if strings.HasSuffix(m, "_later") {
			want *= 2
		}
		if count[m] != want {
			t.Errorf("%s: %d images, want %d", m, count[m], want)
		}
	}
	same := 0
	for _, r := range imgs {
		if r.Method == "storydiffusion" || r.Method == "consistory" {
			if bytes.Equal(r.Image, byKey[fmt.Sprintf("no_code|%s|%d", r.Prompt, r.Seed)]) {
				same++
			}
		}
	}
	if same > 0 {
		t.Errorf("%d batch-method images are byte for byte the plain generator's", same)
	}
	got := map[string]MetricRow{}
	for _, m := range readAll[MetricRow](t, filepath.Join(dir, "p", "eval", "metrics")) {
		got[m.Table+"/"+m.Method+"."+m.Metric] = m
	}
	for _, m := range methods {
		for _, metric := range []string{"face_sim", "face_div", "clip_t"} {
			if _, ok := got["table1/"+m+"."+metric]; !ok {
				t.Errorf("missing %s %s", m, metric)
			}
		}
		c, ok := got["cost/"+m+".sec_per_image"]
		if !ok || !(c.Value > 0) {
			t.Errorf("%s: sec_per_image %+v", m, c)
		}
		batch := 1.0
		if m == "storydiffusion" || m == "consistory" || m == "storydiffusion_later" {
			batch = 3
		}
		if b := got["cost/"+m+".batch"]; b.Value != batch {
			t.Errorf("%s: batch %g, want %g", m, b.Value, batch)
		}
		r, ok := got["table1/"+m+".face_sim_runs"]
		if ok != strings.HasSuffix(m, "_later") {
			t.Errorf("%s: face_sim_runs present = %v", m, ok)
		}
		if ok && (r.Value < -1 || r.Value > 1 || r.Identities != 4) {
			t.Errorf("%s: face_sim_runs %+v", m, r)
		}
	}
}

// TestBaselineShardsHoldIdentities: a batch method needs shards of whole identities.
func TestBaselineShardsHoldIdentities(t *testing.T) {
	p := &evaluateParams{Methods: []string{"storydiffusion"}, Samples: 4, ShardSize: 6}
	if err := checkBaselines(p); err == nil || !strings.Contains(err.Error(), "multiple") {
		t.Errorf("shard 6, 4 samples: %v", err)
	}
	p.Methods, p.ShardSize = []string{"storydiffusion_later"}, 12
	if err := checkBaselines(p); err == nil {
		t.Errorf("later rows hold 8 images an identity; shard 12 accepted")
	}
	p.ShardSize = 16
	if err := checkBaselines(p); err != nil {
		t.Error(err)
	}
}

// TestEvaluateOnePromptAndDreamBooth runs the 1prompt1story and dreambooth rows through evaluate
// on a small generator: 1prompt1story generates every identity's images as one story, dreambooth
// covers dreambooth_identities per subject, each tuned on the reference images of the dataset
// row's identity of its slot, and the cost table says what each needs.
func TestEvaluateOnePromptAndDreamBooth(t *testing.T) {
	gen := attentiveGenerator(t)
	face, clip := metricModels(t)
	dir := t.TempDir()
	methods := []string{"dataset", "no_code", "1prompt1story", "1prompt1story_own_noise", "dreambooth"}
	cfg := tinyPrep + fmt.Sprintf(`  - id: eval
    uses: evaluate
    inputs: {real: ingest}
    with:
      table: table2
      prompt_set: tiny-scenes
      methods: [%s]
      subjects: [man, woman]
      identities_per_subject: 2
      samples_per_identity: 3
      dreambooth_identities: 1
      dreambooth_steps: 3
      steps: 3
      bootstrap: 20
      cost_table: cost
      shard_size: 6
      model_dir: %q
      face_model: %q
      clip_model: %q
`, strings.Join(methods, ", "), gen, face, clip)
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	imgs := readAll[EvalImageRow](t, filepath.Join(dir, "p", "eval", "images"))
	count := map[string]int{}
	plain := map[string][]byte{}
	for _, r := range imgs {
		count[r.Method]++
		if r.Method == "no_code" {
			plain[fmt.Sprintf("%s|%d", r.Prompt, r.Seed)] = r.Image
		}
	}
	for m, want := range map[string]int{"no_code": 12, "1prompt1story": 12, "1prompt1story_own_noise": 12, "dreambooth": 6} {
		if count[m] != want {
			t.Errorf("%s: %d images, want %d", m, count[m], want)
		}
	}
	for _, r := range imgs {
		if (strings.HasPrefix(r.Method, "1prompt1story") || r.Method == "dreambooth") && bytes.Equal(r.Image, plain[fmt.Sprintf("%s|%d", r.Prompt, r.Seed)]) {
			t.Errorf("%s %s sample %d is the plain generator's image", r.Method, r.Group, r.Sample)
		}
	}
	// The shared noise is the first image's: sample 0 is the same in both 1prompt1story rows,
	// the later samples are not.
	story := map[string][]byte{}
	for _, r := range imgs {
		if r.Method == "1prompt1story" {
			story[fmt.Sprintf("%s|%d", r.Group, r.Sample)] = r.Image
		}
	}
	for _, r := range imgs {
		if r.Method == "1prompt1story_own_noise" {
			if same := bytes.Equal(r.Image, story[fmt.Sprintf("%s|%d", r.Group, r.Sample)]); same != (r.Sample == 0) {
				t.Errorf("%s sample %d: own-noise image equal to the shared-noise one: %v", r.Group, r.Sample, same)
			}
		}
	}
	got := map[string]MetricRow{}
	for _, m := range readAll[MetricRow](t, filepath.Join(dir, "p", "eval", "metrics")) {
		got[m.Table+"/"+m.Method+"."+m.Metric] = m
	}
	if r := got["table2/dreambooth.face_sim"]; r.Identities != 2 {
		t.Errorf("dreambooth face_sim over %d identities, want 2 (one per subject)", r.Identities)
	}
	for m, want := range map[string][3]float64{"1prompt1story": {3, 0, 0}, "dreambooth": {1, 1, 1}} {
		for i, metric := range []string{"batch", "needs_refs", "needs_tuning"} {
			if v := got["cost/"+m+"."+metric].Value; v != want[i] {
				t.Errorf("%s %s = %g, want %g", m, metric, v, want[i])
			}
		}
	}
}

// TestReferenceItems: sample j of identity k of subject s carries image j of the k-th real
// identity of class s, the dataset row's identity of that slot.
func TestReferenceItems(t *testing.T) {
	dir := t.TempDir()
	if _, err := runConfig(t, dir, prepConfig("name: p\nseed: 5", "{identities: 8, images_per_identity: 3, shard_size: 8}", false)); err != nil {
		t.Fatal(err)
	}
	real, err := pipeline.OpenDataset(filepath.Join(dir, "p", "ingest", "images"))
	if err != nil {
		t.Fatal(err)
	}
	p := &evaluateParams{Identities: 2, Samples: 3, DreamBoothIdentities: 2}
	bySubject := map[string][]string{"man": {"a man at the beach"}, "woman": {"a woman at the beach"}}
	subjects := []string{"man", "woman"}
	if _, err := referenceItems(baselineMethods["dreambooth"], "dreambooth", p, bySubject, subjects, nil); err == nil {
		t.Error("no real input: no error")
	}
	items, err := referenceItems(baselineMethods["dreambooth"], "dreambooth", p, bySubject, subjects, real)
	if err != nil {
		t.Fatal(err)
	}
	refs, _, err := datasetItems(real, p, bySubject, subjects)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != len(refs) {
		t.Fatalf("%d items, %d dataset items", len(items), len(refs))
	}
	for i := range items {
		if !bytes.Equal(items[i].ref, refs[i].real) || items[i].Subject != refs[i].Subject {
			t.Errorf("item %d (%s sample %d) carries another reference than %s sample %d", i, items[i].Group, items[i].Sample, refs[i].Group, refs[i].Sample)
		}
	}
}

// TestGenerateWithMethod: generate with a batch method makes every prompt once per seed, one
// story per seed, different from the plain generator's images; codes with a method are refused.
func TestGenerateWithMethod(t *testing.T) {
	gen := attentiveGenerator(t)
	dir := t.TempDir()
	stage := func(id, extra string) string {
		return fmt.Sprintf(`  - id: %s
    uses: generate
    with: {model_dir: %q, prompts: ["a man at the beach.", "a man in the snow.", "a man in a park."], seeds: [0, 1], steps: 3%s}
`, id, gen, extra)
	}
	cfg := "name: p\nseed: 5\nstages:\n" + stage("plain", "") + stage("story", ", method: consistory")
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	plain := readAll[GeneratedRow](t, filepath.Join(dir, "p", "plain", "images"))
	story := readAll[GeneratedRow](t, filepath.Join(dir, "p", "story", "images"))
	if len(story) != 6 {
		t.Fatalf("%d images, want 6", len(story))
	}
	want := map[string][]byte{}
	for _, r := range plain {
		want[fmt.Sprintf("%s|%d", r.Prompt, r.Seed)] = r.Image
	}
	for _, r := range story {
		w, ok := want[fmt.Sprintf("%s|%d", r.Prompt, r.Seed)]
		if !ok || bytes.Equal(w, r.Image) {
			t.Errorf("%s seed %d: found %v, same as plain %v", r.Prompt, r.Seed, ok, ok && bytes.Equal(w, r.Image))
		}
	}
	if err := checkGenerateMethod(&generateParams{Method: "storydiffusion_later"}); err == nil || !strings.Contains(err.Error(), "not a batch method") {
		t.Errorf("later method: %v", err)
	}
	if err := checkGenerateMethod(&generateParams{Method: "consistory", Codes: []int{1}}); err == nil || !strings.Contains(err.Error(), "no codes") {
		t.Errorf("codes with a method: %v", err)
	}
}

// TestGenerateOnePrompt: generate with 1prompt1story makes each seed's prompts one story (the
// subject found among the concept words), unlike the plain generator's images.
func TestGenerateOnePrompt(t *testing.T) {
	gen := attentiveGenerator(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`name: p
seed: 5
stages:
  - id: plain
    uses: generate
    with: {model_dir: %[1]q, prompts: ["a woman at the beach.", "a woman in a park."], seeds: [0, 1], steps: 3}
  - id: story
    uses: generate
    with: {model_dir: %[1]q, prompts: ["a woman at the beach.", "a woman in a park."], seeds: [0, 1], steps: 3, method: 1prompt1story}
`, gen)
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, r := range readAll[GeneratedRow](t, filepath.Join(dir, "p", "plain", "images")) {
		want[fmt.Sprintf("%s|%d", r.Prompt, r.Seed)] = r.Image
	}
	story := readAll[GeneratedRow](t, filepath.Join(dir, "p", "story", "images"))
	if len(story) != 4 {
		t.Fatalf("%d images, want 4", len(story))
	}
	for _, r := range story {
		if w, ok := want[fmt.Sprintf("%s|%d", r.Prompt, r.Seed)]; !ok || bytes.Equal(w, r.Image) {
			t.Errorf("%s seed %d: plain image found %v, equal to it", r.Prompt, r.Seed, ok)
		}
	}
}
