package stages

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/celeba"
	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/pipeline"
)

func runConfig(t *testing.T, workdir, text string) (*pipeline.RunManifest, error) {
	t.Helper()
	cfg, err := pipeline.ParseConfig("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return pipeline.Run(context.Background(), cfg, pipeline.Options{Workdir: workdir, Workers: 2})
}

func readAll[T any](t *testing.T, dir string) []T {
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

// prepConfig is a tiny prep config: header (its name and seed lines), synthfaces ingested with
// the `with:` mapping ingest, then caption, mask, encode and, with triplets, triplets.
func prepConfig(header, ingest string, triplets bool) string {
	cfg := header + `
stages:
  - id: ingest
    uses: ingest
    with: ` + ingest + `
  - id: caption
    uses: caption
    inputs: {images: ingest}
  - id: mask
    uses: mask
    inputs: {images: ingest}
  - id: encode
    uses: encode
    inputs: {images: ingest, captions: caption, masks: mask}
`
	if triplets {
		cfg += `  - id: triplets
    uses: triplets
    inputs: {images: ingest, latents: encode.latents, tokens: encode.tokens}
`
	}
	return cfg
}

// tinyPrep is the tests' prep: 10 identities of 3 images.
var tinyPrep = prepConfig("name: p\nseed: 5", "{identities: 10, images_per_identity: 3, shard_size: 8}", true)

func TestTinyPrepEndToEnd(t *testing.T) {
	dir := t.TempDir()
	rm, err := runConfig(t, dir, tinyPrep)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rm.Stages {
		if s.Status != pipeline.StatusRan {
			t.Fatalf("stage %s: %s", s.ID, s.Status)
		}
	}
	images := readAll[ImageRow](t, filepath.Join(dir, "p", "ingest", "images"))
	if len(images) != 30 {
		t.Fatalf("%d images, want 30", len(images))
	}
	for _, im := range images {
		if im.Width != 32 || im.Format != "png" || len(im.Mask) == 0 || im.Attributes["skin"] == "" {
			t.Fatalf("image row %s: %+v", im.ID, im.Attributes)
		}
	}
	caps := readAll[CaptionRow](t, filepath.Join(dir, "p", "caption", "captions"))
	if len(caps) != 60 {
		t.Fatalf("%d captions, want 60", len(caps))
	}
	for _, c := range caps {
		if c.Error != "" || c.Text[c.ConceptStart:int(c.ConceptStart)+len(c.Concept)] != c.Concept {
			t.Fatalf("caption %+v: concept offset wrong", c)
		}
	}
	tok, err := tiny.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	trips := readAll[TripletRow](t, filepath.Join(dir, "p", "triplets", "triplets"))
	if len(trips) != 60 { // 2 captions per image, both orders
		t.Fatalf("%d triplets, want 60", len(trips))
	}
	for _, tr := range trips {
		if tr.P1 == tr.P2 {
			t.Fatalf("triplet %s has P1 == P2", tr.ID)
		}
		id1, _ := tok.ID(tr.Class)
		if tr.P1IDs[tr.I] != id1 || tr.P2IDs[tr.J] != id1 {
			t.Fatalf("triplet %s: tokens at i=%d, j=%d are not %q", tr.ID, tr.I, tr.J, tr.Class)
		}
		if len(tr.Latent) != 8*8*48 || len(tr.Mask) != 64 {
			t.Fatalf("triplet %s: latent %d mask %d values", tr.ID, len(tr.Latent), len(tr.Mask))
		}
		var cover float32
		for _, m := range tr.Mask {
			cover += m
		}
		if cover <= 0 || cover >= 64 {
			t.Fatalf("triplet %s: mask covers %v of 64 cells", tr.ID, cover)
		}
	}
	rm, err = runConfig(t, dir, tinyPrep)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range rm.Stages {
		if s.Status != pipeline.StatusUpToDate {
			t.Fatalf("rerun: stage %s %s", s.ID, s.Status)
		}
	}
}

// writeCelebA writes a CelebA folder (flat layout) of n 178x218 JPEGs, two identities.
func writeCelebA(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	imgDir := filepath.Join(root, "img_align_celeba")
	if err := os.MkdirAll(imgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var attr, ids, lms strings.Builder
	fmt.Fprintf(&attr, "%d\n%s\n", n, strings.Join(celeba.AttributeNames[:], " "))
	fmt.Fprintf(&lms, "%d\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n", n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%06d.jpg", i+1)
		img := image.NewRGBA(image.Rect(0, 0, 178, 218))
		for p := range img.Pix {
			img.Pix[p] = uint8(40 * i)
		}
		img.Set(89, 120, color.White)
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, nil); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(imgDir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		attr.WriteString(name)
		for a := range celeba.AttributeNames {
			v := -1
			if (a == 20 && i%2 == 0) || a == 31 { // Male on even rows, Smiling everywhere
				v = 1
			}
			fmt.Fprintf(&attr, " %2d", v)
		}
		attr.WriteString("\n")
		fmt.Fprintf(&ids, "%s %d\n", name, 1+i%2)
		fmt.Fprintf(&lms, "%s 69 109 106 113 77 142 73 152 108 154\n", name)
	}
	for name, text := range map[string]string{"list_attr_celeba.txt": attr.String(), "identity_CelebA.txt": ids.String(), "list_landmarks_align_celeba.txt": lms.String()} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func celebaConfig(root string) string {
	return fmt.Sprintf(`name: c
stages:
  - id: ingest
    uses: ingest
    with: {dataset: celeba, root: %q, size: 64}
  - id: caption
    uses: caption
    inputs: {images: ingest}
  - id: mask
    uses: mask
    inputs: {images: ingest}
    with: {backend: landmarks}
`, root)
}

func TestCelebAPrepWithLandmarkMasks(t *testing.T) {
	root := writeCelebA(t, 4)
	dir := t.TempDir()
	if _, err := runConfig(t, dir, celebaConfig(root)); err != nil {
		t.Fatal(err)
	}
	images := readAll[ImageRow](t, filepath.Join(dir, "c", "ingest", "images"))
	if len(images) != 4 || images[0].Class != "man" || images[1].Class != "woman" || images[0].Identity != 1 {
		t.Fatalf("celeba rows: %+v", images[0])
	}
	if images[0].Width != 64 || len(images[0].Landmarks) != 10 {
		t.Fatalf("image 0: %dx%d, %d landmark values", images[0].Width, images[0].Height, len(images[0].Landmarks))
	}
	// The eye landmarks (69,109) and (106,113) of the 178x218 image map into the 64 px crop.
	if lx := images[0].Landmarks[0]; lx < 20 || lx > 30 {
		t.Fatalf("left eye x = %v after crop and resize, want about 24.8", lx)
	}
	masks := readAll[MaskRow](t, filepath.Join(dir, "c", "mask", "masks"))
	for _, m := range masks {
		if m.Error != "" || m.Coverage < 0.2 || m.Coverage > 0.9 {
			t.Fatalf("mask %s: coverage %v error %q", m.ID, m.Coverage, m.Error)
		}
		g, err := imageio.DecodeMask(m.Mask)
		if err != nil || g.GrayAt(32, 32).Y != 255 || g.GrayAt(0, 0).Y != 0 {
			t.Fatalf("mask %s: centre must be subject, corner background (err %v)", m.ID, err)
		}
	}
	caps := readAll[CaptionRow](t, filepath.Join(dir, "c", "caption", "captions"))
	if !strings.Contains(caps[0].Text, "man") {
		t.Fatalf("celeba caption %q lacks the class word", caps[0].Text)
	}
}

func TestCorruptJPEGNamesTheFile(t *testing.T) {
	root := writeCelebA(t, 3)
	path := filepath.Join(root, "img_align_celeba", "000002.jpg")
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, data[:len(data)/3], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := runConfig(t, t.TempDir(), celebaConfig(root))
	if err == nil || !strings.Contains(err.Error(), "000002.jpg") || !strings.Contains(err.Error(), "decode") {
		t.Fatalf("want an error naming 000002.jpg, got %v", err)
	}
}

func TestMissingCelebAFileIsAClearError(t *testing.T) {
	root := writeCelebA(t, 2)
	if err := os.Remove(filepath.Join(root, "identity_CelebA.txt")); err != nil {
		t.Fatal(err)
	}
	_, err := runConfig(t, t.TempDir(), celebaConfig(root))
	if err == nil || !strings.Contains(err.Error(), "identity_CelebA.txt") {
		t.Fatalf("want an error naming identity_CelebA.txt, got %v", err)
	}
}

func TestGroundTruthMasksNeedAMaskedDataset(t *testing.T) {
	root := writeCelebA(t, 2)
	cfg := strings.Replace(celebaConfig(root), "backend: landmarks", "backend: groundtruth", 1)
	_, err := runConfig(t, t.TempDir(), cfg)
	if err == nil || !strings.Contains(err.Error(), "no ground-truth masks") {
		t.Fatalf("got %v", err)
	}
}

// TestOpenAICaptionsThroughTheStage runs the caption stage against a server speaking the
// OpenAI chat-completions protocol (a real LLaVA server cannot run here); one image gets a
// garbage answer, which must become an error row, and its triplets are skipped.
func TestOpenAICaptionsThroughTheStage(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct {
				Content []struct {
					Type     string `json:"type"`
					Text     string `json:"text"`
					ImageURL *struct {
						URL string `json:"url"`
					} `json:"image_url"`
				} `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.URL.Path != "/v1/chat/completions" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		n := calls.Add(1)
		img := req.Messages[0].Content[0].ImageURL.URL
		if strings.HasPrefix(img, "data:image/png;base64,iVBOR") && n%7 == 3 {
			fmt.Fprint(w, "<html>upstream exploded</html>")
			return
		}
		prompt := req.Messages[0].Content[1].Text
		fmt.Fprintf(w, `{"choices":[{"message":{"role":"assistant","content":"A person with a friendly face (%d chars of prompt)."}}]}`, len(prompt))
	}))
	defer srv.Close()
	cfg := fmt.Sprintf(`name: o
stages:
  - id: ingest
    uses: ingest
    with: {identities: 4, images_per_identity: 2, classes: [person]}
  - id: caption
    uses: caption
    inputs: {images: ingest}
    with: {backend: openai, base_url: %q, model: llava, retries: 0, concurrency: 2,
           prompts: ["Describe the person.", "Caption this image in one sentence."]}
`, srv.URL+"/v1")
	dir := t.TempDir()
	if _, err := runConfig(t, dir, cfg); err != nil {
		t.Fatal(err)
	}
	caps := readAll[CaptionRow](t, filepath.Join(dir, "o", "caption", "captions"))
	if len(caps) != 16 {
		t.Fatalf("%d caption rows, want 16", len(caps))
	}
	var bad, good int
	for _, c := range caps {
		switch {
		case c.Error != "":
			bad++
			if c.Text != "" {
				t.Fatalf("error row with text: %+v", c)
			}
		case c.Concept == "person" && strings.HasPrefix(c.Text, "A person with a friendly face") && c.Backend == "openai:llava":
			good++
		default:
			t.Fatalf("unexpected row %+v", c)
		}
	}
	if bad == 0 || good == 0 {
		t.Fatalf("%d good and %d error rows: want both", good, bad)
	}
}
