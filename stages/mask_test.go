package stages

import (
	"context"
	"errors"
	"fmt"
	"image"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/segment"
	"github.com/cocoflow/cocoflow/models/segment/groundingdino"
	"github.com/cocoflow/cocoflow/pipeline"
)

const (
	groundingFixture = "../models/segment/testdata/grounding-dino"
	samFixture       = "../models/segment/testdata/sam2"
)

// groundedConfig ingests n CelebA-layout images and masks them with grounded-sam2; with is
// added to the mask stage's parameters.
func groundedConfig(t *testing.T, n int, with string) string {
	root := writeCelebA(t, n)
	gd, _ := filepath.Abs(groundingFixture)
	sam, _ := filepath.Abs(samFixture)
	return fmt.Sprintf(`name: g
stages:
  - id: ingest
    uses: ingest
    with: {dataset: celeba, root: %q, size: 64, shard_size: 2}
  - id: mask
    uses: mask
    inputs: {images: ingest}
    with: {backend: grounded-sam2, grounding_model: %q, sam_model: %q%s}
`, root, gd, sam, with)
}

func runWith(t *testing.T, dir, cfg string, opt pipeline.Options) (*pipeline.RunManifest, error) {
	t.Helper()
	c, err := pipeline.ParseConfig("grounded.yaml", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	opt.Workdir, opt.Workers = dir, 2
	return pipeline.Run(context.Background(), c, opt)
}

// The fixture SAM 2 decoder returns the prompt box as the mask, so each row's mask must be the
// box Grounding DINO gives for the image's concept word, at image size.
func TestGroundedSAM2Masks(t *testing.T) {
	dir := t.TempDir()
	rm, err := runWith(t, dir, groundedConfig(t, 4, ""), pipeline.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var rec *pipeline.StageRecord
	for _, s := range rm.Stages {
		if s.ID == "mask" {
			rec = s
		}
	}
	if rec == nil || len(rec.Models["grounding"]) != 64 || len(rec.Models["sam"]) != 64 {
		t.Fatalf("mask stage record %+v: want the grounding and sam digests", rec)
	}
	det, err := groundingdino.Open(groundingFixture, ort.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	images := readAll[ImageRow](t, filepath.Join(dir, "g", "ingest", "images"))
	masks := readAll[MaskRow](t, filepath.Join(dir, "g", "mask", "masks"))
	if len(masks) != 4 {
		t.Fatalf("%d mask rows, want 4", len(masks))
	}
	for i, m := range masks {
		im := images[i]
		if m.ID != im.ID || m.Error != "" || m.Backend != "grounded-sam2" || m.Width != im.Width || m.Height != im.Height {
			t.Fatalf("row %d: %+v", i, m)
		}
		g, err := imageio.DecodeMask(m.Mask)
		if err != nil {
			t.Fatal(err)
		}
		img, _ := imageio.DecodeAs(im.Image, im.Format)
		best, err := det.Best(img, groundingdino.DefaultThresholds, im.Class)
		if err != nil {
			t.Fatal(err)
		}
		b := best.Box
		if got := maskBounds(g); !near(got, image.Rect(int(b.X0+0.5), int(b.Y0+0.5), int(b.X1+0.5), int(b.Y1+0.5)), 1) {
			t.Errorf("image %s (%s): mask spans %v, best box %+v", im.ID, im.Class, got, b)
		}
		t.Logf("image %s (%s): box %+v score %.3f, mask %v", im.ID, im.Class, b, best.Score, maskBounds(g))
		want := float32(imageio.Coverage(g))
		if m.Coverage != want || m.Coverage <= 0 {
			t.Errorf("image %s: coverage %v, mask has %v", im.ID, m.Coverage, want)
		}
	}
}

// maskBounds is the smallest rectangle holding every subject pixel.
func maskBounds(g *image.Gray) image.Rectangle {
	var r image.Rectangle
	for y := 0; y < g.Rect.Dy(); y++ {
		for x := 0; x < g.Rect.Dx(); x++ {
			if g.GrayAt(x, y).Y != 0 {
				r = r.Union(image.Rect(x, y, x+1, y+1))
			}
		}
	}
	return r
}

func near(a, b image.Rectangle, tol int) bool {
	d := func(x, y int) bool { return x-y <= tol && y-x <= tol }
	return d(a.Min.X, b.Min.X) && d(a.Min.Y, b.Min.Y) && d(a.Max.X, b.Max.X) && d(a.Max.Y, b.Max.Y)
}

// No box above the threshold is a row that records why, not a crash: with the default share of
// failed rows the stage fails but keeps its shards; allowed to fail them all, it completes.
func TestGroundedSAM2NoBoxIsARowFailure(t *testing.T) {
	cfg := groundedConfig(t, 4, ", box_threshold: 1")
	dir := t.TempDir()
	_, err := runWith(t, dir, cfg, pipeline.Options{})
	var fe *pipeline.FailedRowsError
	if !errors.As(err, &fe) || fe.Failed != 4 || !strings.Contains(err.Error(), "no subject found") || !strings.Contains(err.Error(), "box threshold 1") {
		t.Fatalf("err = %v, want a FailedRowsError for the 4 rows naming the threshold", err)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "g", "mask", "masks", "part-*.parquet"))
	if len(shards) != 2 {
		t.Fatalf("shards kept: %v", shards)
	}
	rm, err := runWith(t, dir, cfg, pipeline.Options{MaxFailedShare: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rm.Stages {
		if s.ID == "mask" && s.Outputs["masks"].FailedRows != 4 {
			t.Errorf("mask outputs %+v, want 4 failed rows", s.Outputs)
		}
	}
	for _, m := range readAll[MaskRow](t, filepath.Join(dir, "g", "mask", "masks")) {
		if !strings.Contains(m.Error, `no box passes the thresholds: "man ."`) && !strings.Contains(m.Error, `"woman ."`) || len(m.Mask) != 0 {
			t.Errorf("row %s: error %q, %d mask bytes", m.ID, m.Error, len(m.Mask))
		}
	}
}

func TestGroundedSAM2BadModels(t *testing.T) {
	gd, _ := filepath.Abs(groundingFixture)
	sam, _ := filepath.Abs(samFixture)
	for _, c := range []struct{ from, to, want string }{
		{gd, gd + "-image-only", "no text inputs input_ids, attention_mask, token_type_ids"},
		{sam, filepath.Join(filepath.Dir(sam), "sam2-other-names"), "found inputs image_embeddings"},
		{sam, sam + "-missing", "sam2-missing"},
	} {
		cfg := strings.Replace(groundedConfig(t, 2, ""), c.from+`"`, c.to+`"`, 1)
		_, err := runWith(t, t.TempDir(), cfg, pipeline.Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", filepath.Base(c.to), err, c.want)
		}
	}
}

// The stage's threshold defaults are Grounding DINO's.
func TestMaskDefaultsAreGroundingDINOs(t *testing.T) {
	kind, ok := pipeline.Lookup("mask")
	if !ok {
		t.Fatal("mask is not registered")
	}
	p := kind.Params.Defaults().(*maskParams)
	if th := (groundingdino.Thresholds{Box: p.BoxThreshold, Text: p.TextThreshold}); th != groundingdino.DefaultThresholds {
		t.Errorf("stage thresholds %+v, want %+v", th, groundingdino.DefaultThresholds)
	}
}

// A box SAM 2 finds nothing in (the fixture decoder's mask is the box: a box of no area gives
// none) is errNoSubject, which maskRow records as the row's error.
func TestGroundedSAM2EmptyMaskIsARowFailure(t *testing.T) {
	g, err := newGroundedSAM(&maskParams{GroundingModel: groundingFixture, SAMModel: samFixture, BoxThreshold: 0.35, TextThreshold: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	img := image.NewGray(image.Rect(0, 0, 32, 24))
	if m, err := g.maskIn(img, groundingdino.Detection{Box: segment.Box{X0: 4, Y0: 4, X1: 20, Y1: 16}}); err != nil || imageio.Coverage(m) == 0 {
		t.Fatalf("box 4,4-20,16: coverage %v, err %v", imageio.Coverage(m), err)
	}
	_, err = g.maskIn(img, groundingdino.Detection{Box: segment.Box{X0: 10, Y0: 10, X1: 10, Y1: 10}, Phrase: "man", Score: 0.5})
	if !errors.Is(err, errNoSubject) || !strings.Contains(err.Error(), `"man" box 10,10-10,10`) {
		t.Fatalf("empty box: err = %v, want errNoSubject naming the box", err)
	}
}

// An image whose mask row has an error goes on as a latent row with that error and no latent,
// and triplets skips it and counts it: one image without a subject does not stop prep.
func TestNoMaskImagesSkippedDownstream(t *testing.T) {
	cfg := groundedConfig(t, 4, ", box_threshold: 1") + `  - id: caption
    uses: caption
    inputs: {images: ingest}
  - id: encode
    uses: encode
    inputs: {images: ingest, captions: caption, masks: mask}
  - id: triplets
    uses: triplets
    inputs: {images: ingest, latents: encode.latents, tokens: encode.tokens}
`
	dir := t.TempDir()
	rm, err := runWith(t, dir, cfg, pipeline.Options{MaxFailedShare: 1})
	if err != nil {
		t.Fatal(err)
	}
	lats := readAll[LatentRow](t, filepath.Join(dir, "g", "encode", "latents"))
	if len(lats) != 4 {
		t.Fatalf("%d latent rows, want one per image (4)", len(lats))
	}
	for _, l := range lats {
		if !strings.HasPrefix(l.Error, "no subject mask: ") || !strings.Contains(l.Error, "no box passes") || len(l.Latent) != 0 {
			t.Errorf("latent row %s: error %q, %d values", l.ID, l.Error, len(l.Latent))
		}
	}
	if n := len(readAll[TripletRow](t, filepath.Join(dir, "g", "triplets", "triplets"))); n != 0 {
		t.Errorf("%d triplets from images without a mask", n)
	}
	counted := map[string]any{}
	for _, s := range rm.Stages {
		for k, v := range s.Records {
			counted[s.ID+"."+k] = v
		}
	}
	for _, k := range []string{"encode.images_without_mask", "triplets.images_without_latent"} {
		if fmt.Sprint(counted[k]) != "4" {
			t.Errorf("%s = %v, want 4 (records: %v)", k, counted[k], counted)
		}
	}
}
