package stages

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/family/tiny"
)

// randomGenerator saves a small generator whose weights are all random: an untrained one starts
// with zero output layers (adaLN-Zero), so it would ignore its prompt and pseudo-words.
func randomGenerator(t *testing.T) string {
	t.Helper()
	g, err := tiny.Load(smallGenerator(t))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for v := range g.Context().IterVariables() {
		vals := make([]float32, v.Shape().Size())
		for i := range vals {
			vals[i] = float32(r.NormFloat64() * 0.3)
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "random")
	if err := g.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestGenerateIsDeterministicAndCodesMatter(t *testing.T) {
	gen := randomGenerator(t)
	cfg := trainConfig(gen, 2) + fmt.Sprintf(`  - id: gen
    uses: generate
    inputs: {mapper: train.mapper}
    with:
      model_dir: %q
      prompts: [a man is looking at the camera., a man and a woman on the beach.]
      codes: [7, 8]
      no_code: true
      seeds: [0, 1]
      steps: 2
      shard_size: 3
`, gen)
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if _, err := runConfig(t, d, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ra := readAll[GeneratedRow](t, filepath.Join(a, "p", "gen", "images"))
	rb := readAll[GeneratedRow](t, filepath.Join(b, "p", "gen", "images"))
	if len(ra) != 3*2*2 { // (no code, code 7, code 8) x 2 prompts x 2 seeds
		t.Fatalf("%d images, want 12", len(ra))
	}
	for i := range ra {
		if !bytes.Equal(ra[i].Image, rb[i].Image) {
			t.Fatalf("image %d (%q, seed %d) differs between two runs", i, ra[i].Prompt, ra[i].Seed)
		}
	}
	byKey := map[string][]byte{}
	for _, r := range ra {
		if _, err := imageio.Decode(r.Image); err != nil {
			t.Fatal(err)
		}
		byKey[fmt.Sprint(r.Codes, r.Prompt, r.Seed)] = r.Image
		if len(r.Codes) == 1 && (len(r.Concepts) != 1 || r.Concepts[0] != "man") {
			t.Errorf("%s: codes %v attached to %v, want the first concept word, man", r.ID, r.Codes, r.Concepts)
		}
	}
	p := "a man is looking at the camera."
	if bytes.Equal(byKey[fmt.Sprint([]int64(nil), p, 0)], byKey[fmt.Sprint([]int64{7}, p, 0)]) {
		t.Error("a code leaves the image unchanged")
	}
	if bytes.Equal(byKey[fmt.Sprint([]int64{7}, p, 0)], byKey[fmt.Sprint([]int64{8}, p, 0)]) {
		t.Error("two codes give the same image")
	}
	if bytes.Equal(byKey[fmt.Sprint([]int64{7}, p, 0)], byKey[fmt.Sprint([]int64{7}, p, 1)]) {
		t.Error("two seeds give the same image")
	}
	if _, err := os.Stat(filepath.Join(a, "p", "gen", "contact_sheet.png")); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateMultiSubjectAndErrors(t *testing.T) {
	gen := smallGenerator(t)
	dir := t.TempDir()
	multi := trainConfig(gen, 2) + fmt.Sprintf(`  - id: gen
    uses: generate
    inputs: {mapper: train.mapper}
    with:
      model_dir: %q
      prompts: [a man and a woman on the beach.]
      codes: [7, 8]
      codes_per_prompt: 2
      seeds: [0]
      steps: 2
`, gen)
	if _, err := runConfig(t, dir, multi); err != nil {
		t.Fatal(err)
	}
	rows := readAll[GeneratedRow](t, filepath.Join(dir, "p", "gen", "images"))
	if len(rows) != 1 || fmt.Sprint(rows[0].Codes) != "[7 8]" || strings.Join(rows[0].Concepts, ",") != "man,woman" {
		t.Fatalf("multi-subject row: %+v", rows)
	}

	tooFew := strings.Replace(multi, "a man and a woman on the beach.", "a man on the beach.", 1)
	if _, err := runConfig(t, t.TempDir(), tooFew); err == nil || !strings.Contains(err.Error(), "has 1 of the 2 concept words") {
		t.Fatalf("two codes for one concept word: got %v", err)
	}
	noMapper := tinyPrep + fmt.Sprintf(`  - id: gen
    uses: generate
    with: {model_dir: %q, prompts: [a man.], codes: [1], steps: 1}
`, gen)
	if _, err := runConfig(t, t.TempDir(), noMapper); err == nil || !strings.Contains(err.Error(), "codes need a trained mapper") {
		t.Fatalf("codes without a mapper: got %v", err)
	}
}
