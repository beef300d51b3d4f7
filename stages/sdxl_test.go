package stages_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/family/sdxl"
	"github.com/cocoflow/cocoflow/pipeline"
	"github.com/cocoflow/cocoflow/stages"
)

// sdxlFixture is the committed SDXL signature fixture (tools/sdxl_fixtures.py): an optimum-style
// ONNX export with random weights and tiny widths.
var sdxlFixture, _ = filepath.Abs("../models/family/sdxl/testdata/tiny-sdxl")

// sdxlConfig is a prep -> train -> generate run on the SDXL fixture, driven through the
// pipeline's YAML as a user writes it; lr sets the mapper's learning rate.
func sdxlConfig(lr float64) string {
	return fmt.Sprintf(`name: p
seed: 5
stages:
  - id: ingest
    uses: ingest
    with: {identities: 3, images_per_identity: 2, shard_size: 4}
  - id: caption
    uses: caption
    inputs: {images: ingest}
  - id: mask
    uses: mask
    inputs: {images: ingest}
  - id: encode
    uses: encode
    inputs: {images: ingest, captions: caption, masks: mask}
    with: {family: sdxl, model_dir: %[1]q}
  - id: triplets
    uses: triplets
    inputs: {images: ingest, latents: encode.latents, tokens: encode.tokens}
  - id: train
    uses: train
    inputs: {triplets: triplets}
    with: {family: sdxl, model_dir: %[1]q, steps: 2, batch: 1, code_dim: 8, width: 16, lr: %[2]g, t_max: 900}
  - id: gen
    uses: generate
    inputs: {mapper: train.mapper}
    with:
      family: sdxl
      model_dir: %[1]q
      prompts: [a man is looking at the camera.]
      codes: [7, 8]
      no_code: true
      seeds: [0]
      steps: 2
`, sdxlFixture, lr)
}

func runSDXL(t *testing.T, dir, cfg string) *pipeline.RunManifest {
	t.Helper()
	c, err := pipeline.ParseConfig("sdxl.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	rm, err := pipeline.Run(context.Background(), c, pipeline.Options{Workdir: dir, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	return rm
}

func readRows[T any](t *testing.T, dir string) []T {
	t.Helper()
	ds, err := pipeline.OpenDataset(dir)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := pipeline.ReadAll[T](ds)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// The stages run on a second family with no change: encode maps images through SDXL's VAE and
// captions through its tokenizer, train fits a mapper through both text encoders and the UNet
// imported into GoMLX (the generator's weights bit-identical afterwards), and generate samples
// with codes through ONNX Runtime.
func TestSDXLStages(t *testing.T) {
	dir := t.TempDir()
	rm := runSDXL(t, dir, sdxlConfig(0.01))
	records := map[string]*pipeline.StageRecord{}
	for _, s := range rm.Stages {
		if s.Status != pipeline.StatusRan {
			t.Fatalf("stage %s: %s %s", s.ID, s.Status, s.Error)
		}
		records[s.ID] = s
	}
	lat := readRows[stages.LatentRow](t, filepath.Join(dir, "p", "encode", "latents"))
	if len(lat) != 6 || fmt.Sprint(lat[0].Shape) != "[4 8 8]" || fmt.Sprint(lat[0].MaskShape) != "[8 8]" || lat[0].Family != "sdxl" {
		t.Fatalf("latents: %d rows, shape %v, mask %v, family %q", len(lat), lat[0].Shape, lat[0].MaskShape, lat[0].Family)
	}
	toks := readRows[stages.TokenRow](t, filepath.Join(dir, "p", "encode", "tokens"))
	if len(toks) == 0 || toks[0].IDs[0] != 812 || toks[0].IDs[len(toks[0].IDs)-1] != 813 {
		t.Fatalf("tokens: %+v", toks[0])
	}

	// The generator's weights after training are those of the export: the stage's digest of
	// them equals one of a freshly loaded generator.
	got, ok := records["train"].Records["frozen_generator_sha256"].(string)
	if !ok {
		t.Fatalf("train records: %v", records["train"].Records)
	}
	if want := freshDigest(t); got != want {
		t.Errorf("frozen generator digest %s after training, %s freshly loaded", got, want)
	}
	logs := readRows[stages.TrainLogRow](t, filepath.Join(dir, "p", "train", "log"))
	if len(logs) != 2 || !(logs[0].GradNorm > 0) || !(logs[1].Loss > 0) {
		t.Fatalf("train log: %+v", logs)
	}

	// The mapper moved: the same run with a zero learning rate keeps its initial weights.
	still := t.TempDir()
	runSDXL(t, still, sdxlConfig(0))
	moved := readRows[stages.MapperRow](t, filepath.Join(dir, "p", "train", "mapper"))
	initial := readRows[stages.MapperRow](t, filepath.Join(still, "p", "train", "mapper"))
	if len(moved) != 1 || len(initial) != 1 || moved[0].Family != "sdxl" || !strings.Contains(moved[0].Config, `"out_dims":[32,48]`) {
		t.Fatalf("mapper rows: %d, %d, %+v", len(moved), len(initial), moved)
	}
	if bytes.Equal(moved[0].Weights, initial[0].Weights) {
		t.Error("the mapper's weights did not move in training")
	}

	imgs := readRows[stages.GeneratedRow](t, filepath.Join(dir, "p", "gen", "images"))
	if len(imgs) != 3 { // no code, code 7, code 8
		t.Fatalf("%d images, want 3", len(imgs))
	}
	byCode := map[string][]byte{}
	for _, r := range imgs {
		img, err := imageio.Decode(r.Image)
		if err != nil {
			t.Fatal(err)
		}
		if b := img.Bounds(); b.Dx() != 64 || b.Dy() != 64 {
			t.Errorf("%s: %v, want the VAE's 64x64", r.ID, b)
		}
		byCode[fmt.Sprint(r.Codes)] = r.Image
	}
	if bytes.Equal(byCode["[7]"], byCode["[8]"]) || bytes.Equal(byCode["[]"], byCode["[7]"]) {
		t.Error("the codes do not change the image")
	}
}

// freshDigest hashes a freshly loaded generator's variables as the train stage does (sorted
// scoped names, each followed by its bytes).
func freshDigest(t *testing.T) string {
	t.Helper()
	g, err := sdxl.Load(sdxlFixture, sdxl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx := g.Context()
	var names []string
	byName := map[string][]byte{}
	for v := range ctx.IterVariables() {
		val, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		val.ConstBytes(func(b []byte) { byName[v.ScopeAndName()] = bytes.Clone(b) })
		names = append(names, v.ScopeAndName())
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%s\n", n)
		h.Write(byName[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}
