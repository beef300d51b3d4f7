package stages

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// TestPretrainGeneratorRetrainsOnChangeAndFineTunes: a generator is retrained when a setting
// that shapes it changes (the subject weight, the SNR floor, a fine-tuning start), reused otherwise, and
// generator_init starts it from a saved generator.
func TestPretrainGeneratorRetrainsOnChangeAndFineTunes(t *testing.T) {
	prep := pretrainPrep(t)
	dir := t.TempDir()
	counts := countSteps(t, nil)
	run := func(extra string) error {
		_, err := runConfig(t, dir, pretrainConfig(prep, "      models: [generator]\n"+extra))
		return err
	}
	weights := func() map[string]string {
		return modelWeights(t, readAll[PretrainedModelRow](t, filepath.Join(dir, "pt", "pretrain", "models")))["generator"]
	}
	if err := run(""); err != nil {
		t.Fatal(err)
	}
	first := weights()
	saved := filepath.Join(t.TempDir(), "generator")
	if err := os.CopyFS(saved, os.DirFS(filepath.Join(dir, "pt", "pretrain", "generator", "final"))); err != nil {
		t.Fatal(err)
	}
	steps := []int{3}
	for _, extra := range []string{
		"      generator_subject_weight: 1\n", // uniform, as before: reuse
		"      generator_subject_weight: 3\n", // the subject weighed apart (encode's masks): retrain
		"      generator_snr_floor: 0\n",      // another loss weighting: retrain
		"      generator_snr_floor: 0\n",      // the same again: reuse
		fmt.Sprintf("      generator_init: %q\n      generator_init_scopes: [text, dit]\n", saved), // fine-tune
	} {
		if err := run(extra); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, counts["generator"])
	}
	if !slices.Equal(steps, []int{3, 3, 6, 9, 9, 12}) {
		t.Fatalf("generator steps after each run: %v, want [3 3 6 9 9 12] (reuse, retrain, retrain, reuse, fine-tune)", steps)
	}
	tuned := weights()
	same := 0
	for name, h := range tuned {
		if first[name] == h {
			same++
		}
	}
	if same == len(tuned) {
		t.Fatal("the fine-tuned generator has the weights of the one it started from")
	}
	err := run("      generator_init: /nowhere/generator\n")
	if err == nil || !strings.Contains(err.Error(), "generator_init") || !strings.Contains(err.Error(), "/nowhere/generator") {
		t.Fatalf("missing generator_init folder: got %v, want an error naming the parameter and the folder", err)
	}
	final := filepath.Join(dir, "pt", "pretrain", "generator", "final", engine.CheckpointFile)
	before, err := os.ReadFile(final)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(saved, engine.CheckpointFile)
	raw, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ckpt, raw[:len(raw)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	err = run(fmt.Sprintf("      generator_init: %q\n", saved))
	if err == nil || !strings.Contains(err.Error(), "generator_init") || !strings.Contains(err.Error(), ckpt) {
		t.Fatalf("truncated generator_init checkpoint: got %v, want an error naming the parameter and the file", err)
	}
	if after, err := os.ReadFile(final); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("a failed generator_init run changed the final generator already written (err %v)", err)
	}
}

// The generator's evaluation swaps each held-out caption's concept word for every other one,
// with the same x_t, t and ε, and leaves out captions whose concept it cannot swap.
func TestEvaluateGeneratorSwapsConcepts(t *testing.T) {
	g, err := tiny.LoadDefault() // a trained generator: its ε̂ depends on the words
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tiny.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	latent := func() []float32 {
		x := make([]float32, g.Config().LatentSize())
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	caption := func(text, concept string, pos int) captionTokens {
		return captionTokens{caption: tok.Encode(text).IDs, concept: concept, conceptPos: pos}
	}
	held := []heldLatent{
		{latent(), caption("a boy in a park.", "boy", 2)},
		{latent(), caption("a photo of a girl on a beach.", "girl", 5)},
		{latent(), caption("a park.", "", -1)},
		{latent(), caption("a man in a park.", "man", 4)}, // the position holds "a", not "man"
	}
	ev, err := evaluateGenerator(g, held, 9)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"boy": 1, "girl": 1}; !maps.Equal(ev.ConceptSamples, want) {
		t.Fatalf("concept samples %v, want %v", ev.ConceptSamples, want)
	}
	if len(ev.ConceptSwap) != 2 || len(ev.ConceptSwap["boy"]) != 1 || len(ev.ConceptSwap["girl"]) != 1 {
		t.Fatalf("concept swaps %v, want boy→girl and girl→boy only", ev.ConceptSwap)
	}
	boyAsGirl := ev.ConceptSwap["boy"]["girl"]
	if boyAsGirl == 0 || math.Abs(ev.ConceptGain-(boyAsGirl+ev.ConceptSwap["girl"]["boy"])/2) > 1e-12 {
		t.Errorf("concept swaps %v, gain %g", ev.ConceptSwap, ev.ConceptGain)
	}
	// The boy's latent alone (index 0: the same x_t, t and ε), with each caption.
	alone := func(c captionTokens) float64 {
		ev, err := evaluateGenerator(g, []heldLatent{{held[0].latent, c}}, 9)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ConceptSwap != nil {
			t.Errorf("one concept word: swaps %v, want none", ev.ConceptSwap)
		}
		return ev.EpsMSECaption
	}
	own, swapped := alone(held[0].captionTokens), alone(caption("a girl in a park.", "girl", 2))
	if math.Abs(boyAsGirl-(swapped-own)) > 1e-6 {
		t.Errorf("boy→girl rise %g, want %g − %g = %g", boyAsGirl, swapped, own, swapped-own)
	}
}
