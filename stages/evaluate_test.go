package stages

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
)

// metricModels trains an identity encoder and a CLIP for two steps on a few synthfaces images
// and saves them: untrained models are enough to check the plumbing, not the numbers.
func metricModels(t *testing.T) (face, clip string) {
	t.Helper()
	world, err := synthfaces.New(synthfaces.Config{Seed: 7, Identities: 4, ImagesPerIdentity: 2, Size: 32})
	if err != nil {
		t.Fatal(err)
	}
	var imgs []image.Image
	var labels []int
	var caps [][]string
	for id := range 4 {
		for k := range 2 {
			s, err := world.Render(id, k)
			if err != nil {
				t.Fatal(err)
			}
			imgs = append(imgs, s.Image)
			labels = append(labels, id)
			caps = append(caps, []string{"a photo of a man."})
		}
	}
	fo := tinyface.DefaultOptions()
	fo.Steps, fo.BatchSize = 2, 4
	fm, err := tinyface.Train(context.Background(), tinyface.Data{Images: imgs, Labels: labels}, fo, nil)
	if err != nil {
		t.Fatal(err)
	}
	face = filepath.Join(t.TempDir(), "face")
	if err := fm.Save(face); err != nil {
		t.Fatal(err)
	}
	co, err := tinyclip.DefaultOptions()
	if err != nil {
		t.Fatal(err)
	}
	co.Steps, co.BatchSize = 2, 4
	cm, err := tinyclip.Train(context.Background(), tinyclip.Data{Images: imgs, Captions: caps}, co, nil)
	if err != nil {
		t.Fatal(err)
	}
	clip = filepath.Join(t.TempDir(), "clip")
	if err := cm.Save(clip); err != nil {
		t.Fatal(err)
	}
	return face, clip
}

func TestEvaluateProtocolAndTables(t *testing.T) {
	gen := smallGenerator(t)
	face, clip := metricModels(t)
	dir := t.TempDir()
	cfg := trainConfig(gen, 2) + fmt.Sprintf(`  - id: eval
    uses: evaluate
    inputs: {mapper: train.mapper, real: ingest}
    with:
      table: table2
      prompt_set: tiny-scenes
      subjects: [man, woman]
      identities_per_subject: 2
      samples_per_identity: 3
      steps: 2
      bootstrap: 50
      metrics: [face_sim, face_div, clip_t, dreamsim]
      class_table: fidelity
      shard_size: 5
      model_dir: %q
      face_model: %q
      clip_model: %q
`, gen, face, clip)
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	imgs := readAll[EvalImageRow](t, filepath.Join(dir, "p", "eval", "images"))
	if len(imgs) != 3*2*2*3 {
		t.Fatalf("%d images, want 36 (3 methods x 2 subjects x 2 identities x 3 samples)", len(imgs))
	}
	perGroup := map[string]int{}
	for _, r := range imgs {
		perGroup[r.Method+" "+r.Group]++
		if !strings.Contains(r.Prompt, r.Subject) {
			t.Errorf("%s: prompt %q does not name its subject %q", r.ID, r.Prompt, r.Subject)
		}
		switch r.Method {
		case "cocoins":
			if len(r.Codes) != 1 {
				t.Errorf("%s: cocoins image with codes %v", r.ID, r.Codes)
			}
		case "no_code", "dataset":
			if len(r.Codes) != 0 {
				t.Errorf("%s: %s image with codes %v", r.ID, r.Method, r.Codes)
			}
		}
	}
	if len(perGroup) != 12 {
		t.Fatalf("groups: %v", perGroup)
	}
	// no_code and cocoins share prompts and seeds image for image: only the code differs.
	var nc, cc []EvalImageRow
	for _, r := range imgs {
		switch r.Method {
		case "no_code":
			nc = append(nc, r)
		case "cocoins":
			cc = append(cc, r)
		}
	}
	for i := range nc {
		if nc[i].Prompt != cc[i].Prompt || nc[i].Seed != cc[i].Seed {
			t.Fatalf("image %d: no_code (%q, %d) and cocoins (%q, %d) are not paired", i, nc[i].Prompt, nc[i].Seed, cc[i].Prompt, cc[i].Seed)
		}
	}

	scores := readAll[EvalScoreRow](t, filepath.Join(dir, "p", "eval", "scores"))
	if len(scores) != len(imgs) || len(scores[0].Face) == 0 || len(scores[0].Image) == 0 || len(scores[0].Subject) == 0 ||
		(scores[0].Class != "man" && scores[0].Class != "woman") {
		t.Fatalf("scores: %d rows", len(scores))
	}
	table := readAll[MetricRow](t, filepath.Join(dir, "p", "eval", "metrics"))
	got := map[string]MetricRow{}
	for _, m := range table {
		got[m.Method+"."+m.Metric] = m
		wantTable := "table2"
		if m.Metric == "class_acc" {
			wantTable = "fidelity"
			if m.Value < 0 || m.Value > 1 {
				t.Errorf("%s class_acc %.3f outside [0, 1]", m.Method, m.Value)
			}
		}
		if m.Table != wantTable || m.Identities != 4 || m.Images != 12 {
			t.Errorf("metric row %+v", m)
		}
		if math.IsNaN(m.Value) || !(m.Lo <= m.Value+1e-9 && m.Value <= m.Hi+1e-9) {
			t.Errorf("%s %s: value %.4f outside its interval [%.4f, %.4f]", m.Method, m.Metric, m.Value, m.Lo, m.Hi)
		}
	}
	for _, method := range []string{"dataset", "no_code", "cocoins"} {
		for _, metric := range []string{"face_sim", "face_div", "clip_t", "dreamsim", "class_acc"} {
			if _, ok := got[method+"."+metric]; !ok {
				t.Errorf("missing %s %s", method, metric)
			}
		}
	}
}

func TestEvaluateNeedsItsInputs(t *testing.T) {
	dir := t.TempDir()
	_, err := runConfig(t, dir, tinyPrep+`  - id: eval
    uses: evaluate
    inputs: {real: ingest}
    with: {methods: [cocoins], subjects: [man]}
`)
	if err == nil || !strings.Contains(err.Error(), "needs a trained mapper") {
		t.Fatalf("got %v", err)
	}
	_, err = runConfig(t, dir, tinyPrep+`  - id: eval
    uses: evaluate
    inputs: {real: ingest}
    with: {methods: [dataset], subjects: [man], identities_per_subject: 50}
`)
	if err == nil || !strings.Contains(err.Error(), `identities of class "man"`) {
		t.Fatalf("got %v", err)
	}
}

// TestEvaluateFingerprintsItsWeights: the evaluate stage's fingerprint names the committed
// identity encoder and CLIP always, and the generator only when it generates.
func TestEvaluateFingerprintsItsWeights(t *testing.T) {
	want := map[string]func(string) (string, error){"generator": tiny.WeightsDigest, "face": tinyface.WeightsDigest, "clip": tinyclip.WeightsDigest}
	for _, methods := range [][]string{{"dataset"}, {"dataset", "no_code"}} {
		m, err := (&evaluateParams{Methods: methods, Family: "tiny"}).models()
		if err != nil {
			t.Fatal(err)
		}
		for role, digest := range want {
			d, err := digest("")
			if err != nil {
				t.Fatal(err)
			}
			if role == "generator" && len(methods) == 1 {
				d = ""
			}
			if m[role] != d {
				t.Errorf("methods %v: %s digest %q, want %q", methods, role, m[role], d)
			}
		}
	}
	if _, err := (&evaluateParams{Methods: []string{"dataset"}, Family: "tiny", CLIPModel: t.TempDir()}).models(); err == nil || !strings.Contains(err.Error(), "CLIP") {
		t.Errorf("empty CLIP folder: err %v", err)
	}
}

// TestEvaluateGuidanceZeroIsUnconditional trains a mapper through the stage and evaluates with
// guidance 0: the sampler then follows the unconditional branch alone, so every cocoins image
// is byte for byte its no_code twin (same prompt and seed, a code inserted) — while with
// guidance 4 the codes change them. Guidance 0 used to be rewritten to 4.
func TestEvaluateGuidanceZeroIsUnconditional(t *testing.T) {
	gen := randomGenerator(t)
	face, clip := metricModels(t)
	dir := t.TempDir()
	cfg := trainConfig(gen, 2)
	for _, g := range []int{0, 4} {
		cfg += fmt.Sprintf(`  - id: eval%d
    uses: evaluate
    inputs: {mapper: train.mapper}
    with: {methods: [no_code, cocoins], subjects: [man, woman], identities_per_subject: 2, samples_per_identity: 2,
           steps: 2, guidance: %d, bootstrap: 0, model_dir: %q, face_model: %q, clip_model: %q}
`, g, g, gen, face, clip)
	}
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	for _, g := range []int{0, 4} {
		imgs := readAll[EvalImageRow](t, filepath.Join(dir, "p", fmt.Sprintf("eval%d", g), "images"))
		plain := map[string][]byte{}
		for _, r := range imgs {
			if r.Method == "no_code" {
				plain[fmt.Sprint(r.Prompt, r.Seed)] = r.Image
			}
		}
		same, coded := 0, 0
		for _, r := range imgs {
			if r.Method != "cocoins" {
				continue
			}
			twin, ok := plain[fmt.Sprint(r.Prompt, r.Seed)]
			if !ok {
				t.Fatalf("guidance %d: cocoins image %s (%q, seed %d) has no no_code twin", g, r.ID, r.Prompt, r.Seed)
			}
			coded++
			if bytes.Equal(twin, r.Image) {
				same++
			}
		}
		if coded != 8 {
			t.Fatalf("guidance %d: %d cocoins images, want 8", g, coded)
		}
		if g == 0 && same != coded {
			t.Errorf("guidance 0: %d of %d cocoins images equal their no_code twin, want all (unconditional sampling)", same, coded)
		}
		if g == 4 && same == coded {
			t.Errorf("guidance 4: every cocoins image equals its no_code twin: the codes had no effect, so the test shows nothing")
		}
	}
}

// A subject the real dataset has no image of (CelebA has men and women only; the paper's
// Portraits also ask for boys and girls) leaves the dataset row to the others, recorded; a
// dataset with none of the subjects is an error.
func TestEvaluateDatasetRowSkipsAbsentSubjects(t *testing.T) {
	prep := prepConfig("name: p\nseed: 5", "{identities: 6, images_per_identity: 2, shard_size: 8, classes: [man, woman]}", false)
	eval := func(subjects string) string {
		return prep + `  - id: eval
    uses: evaluate
    inputs: {real: ingest}
    with: {methods: [dataset], subjects: ` + subjects + `, identities_per_subject: 2, samples_per_identity: 2, bootstrap: 0, metrics: [face_sim]}
`
	}
	rm, err := runConfig(t, t.TempDir(), eval("[man, boy, girl]"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rm.Stages {
		if s.ID == "eval" {
			if got := fmt.Sprint(s.Records["dataset_subjects_absent"]); got != "[boy girl]" {
				t.Errorf("dataset_subjects_absent = %s, want [boy girl]", got)
			}
			if n := s.Outputs["images"].Rows; n != 4 {
				t.Errorf("%d dataset images, want 2 identities x 2 of man", n)
			}
		}
	}
	if _, err := runConfig(t, t.TempDir(), eval("[boy]")); err == nil || !strings.Contains(err.Error(), "none of the subjects [boy]") {
		t.Errorf("a dataset without the subject: got %v", err)
	}
}
