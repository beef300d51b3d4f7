package clipvit

import (
	"encoding/json"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/onnxjudge"
	"github.com/cocoflow/cocoflow/models/metrics"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// reference is testdata/reference.json, written by tools/clip_fixtures.py.
type reference struct {
	Texts       []string    `json:"texts"`
	IDs         [][]int32   `json:"ids"`
	Images      []string    `json:"images"`
	TextEmbeds  [][]float64 `json:"text_embeds"`
	ImageEmbeds [][]float64 `json:"image_embeds"`
}

const fixtureHint = "run /usr/bin/python3 tools/clip_fixtures.py"

func loadRef(t testing.TB) (reference, []image.Image) {
	t.Helper()
	var ref reference
	data, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatalf("%v (%s)", err, fixtureHint)
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	var imgs []image.Image
	for _, name := range ref.Images {
		img, err := imageio.DecodeFile(filepath.Join("..", "imageprep", "testdata", name), fixtureHint)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	return ref, imgs
}

func initORT(t testing.TB) {
	t.Helper()
	if err := ort.Init(""); err != nil {
		t.Fatalf("ONNX Runtime: %v (run make ort, or set COCOFLOW_ORT_LIB)", err)
	}
}

func open(t testing.TB, dir string, o Options) *Model {
	t.Helper()
	initORT(t)
	o.ORT.IntraOpThreads = 1
	m, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// closeRows fails unless every got row is the unit-normalised want row within tol.
func closeRows(t *testing.T, what string, got [][]float32, want [][]float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		w := make([]float32, len(want[i]))
		for j, v := range want[i] {
			w[j] = float32(v)
		}
		metrics.Unit(w)
		if len(got[i]) != len(w) {
			t.Fatalf("%s row %d: width %d, want %d", what, i, len(got[i]), len(w))
		}
		var norm float64
		for j := range w {
			norm += float64(got[i][j]) * float64(got[i][j])
			if d := math.Abs(float64(got[i][j] - w[j])); d > tol {
				t.Fatalf("%s row %d [%d] = %v, want %v (|d| %.2g > %.2g)", what, i, j, got[i][j], w[j], d, tol)
			}
		}
		if math.Abs(norm-1) > 1e-5 {
			t.Errorf("%s row %d: norm² %v, want 1", what, i, norm)
		}
	}
}

// TestLayoutsMatchTorch: both export layouts, fed the reference's texts and images through the
// whole judge (tokenizer, PIL-exact preprocessing, ONNX Runtime, normalisation), give torch's
// embeddings.
func TestLayoutsMatchTorch(t *testing.T) {
	ref, imgs := loadRef(t)
	for _, dir := range []string{"testdata/towers", "testdata/joint"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := open(t, dir, Options{Options: onnxjudge.Options{Batch: 2}})
			if m.joint != (dir == "testdata/joint") || m.ImageSize() != 224 {
				t.Fatalf("joint=%v size=%d", m.joint, m.ImageSize())
			}
			for i, txt := range ref.Texts {
				if got := m.Tokenizer().Encode(txt).IDs; !slices.Equal(got, ref.IDs[i]) {
					t.Fatalf("ids of %q = %v, want %v", txt, got, ref.IDs[i])
				}
			}
			te, err := m.EmbedTexts(ref.Texts)
			if err != nil {
				t.Fatal(err)
			}
			closeRows(t, "text_embeds", te, ref.TextEmbeds, 1e-5)
			ie, err := m.EmbedImages(imgs)
			if err != nil {
				t.Fatal(err)
			}
			closeRows(t, "image_embeds", ie, ref.ImageEmbeds, 1e-5)
		})
	}
}

// TestCLIPTIsRawCosine: CLIP-T is metrics.MeanCosine of the judge's embeddings, the raw cosine:
// on hand-made embeddings it is the formula's value, and on the joint export it is
// logits_per_image / exp(logit_scale) (= 100), not ×2.5 or ×100.
func TestCLIPTIsRawCosine(t *testing.T) {
	img := [][]float32{{3, 4, 0}, {1, 0, 0}}
	txt := [][]float32{{4, 3, 0}, {0, 2, 0}}
	got, err := metrics.MeanCosine(img, txt)
	if err != nil {
		t.Fatal(err)
	}
	if want := (24.0/25 + 0) / 2; math.Abs(got-want) > 1e-12 {
		t.Fatalf("CLIP-T of hand-made embeddings = %v, want %v", got, want)
	}

	ref, imgs := loadRef(t)
	m := open(t, "testdata/joint", Options{})
	ie, err := m.EmbedImages(imgs)
	if err != nil {
		t.Fatal(err)
	}
	te, err := m.EmbedTexts(ref.Texts)
	if err != nil {
		t.Fatal(err)
	}
	// The export's own logits for the same inputs.
	seqs := make([][]int32, len(ref.Texts))
	for i, s := range ref.Texts {
		seqs[i] = m.Tokenizer().Encode(s).IDs
	}
	ids, mask := m.idTensors(seqs)
	px, err := m.pixels(imgs, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := int64(m.size)
	pxT := ort.NewTensor([]int64{int64(len(imgs)), 3, s, s}, px)
	res, err := m.text.Run(map[string]ort.Tensor{"input_ids": ids, "attention_mask": mask, "pixel_values": pxT})
	if err != nil {
		t.Fatal(err)
	}
	logits, _ := ort.Data[float32](res["logits_per_image"])
	for i := range ie {
		for j := range te {
			cos := metrics.Cosine(ie[i], te[j])
			if l := float64(logits[i*len(te)+j]) / 100; math.Abs(cos-l) > 1e-5 {
				t.Errorf("image %d text %d: cosine %v, export's logit/100 %v", i, j, cos, l)
			}
			if cos < -1 || cos > 1 {
				t.Errorf("image %d text %d: cosine %v outside [-1, 1]", i, j, cos)
			}
		}
	}
}

// TestBatchingDoesNotChangeEmbeddings: one item per ONNX Runtime call gives the same rows.
func TestBatchingDoesNotChangeEmbeddings(t *testing.T) {
	ref, imgs := loadRef(t)
	one := open(t, "testdata/towers", Options{Options: onnxjudge.Options{Batch: 1}})
	all := open(t, "testdata/towers", Options{})
	a, err := one.EmbedTexts(ref.Texts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := all.EmbedTexts(ref.Texts)
	c, err := one.EmbedImages(append(imgs, imgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := all.EmbedImages(append(imgs, imgs[0]))
	for i := range a {
		if metrics.Cosine(a[i], b[i]) < 1-1e-6 {
			t.Errorf("text %d differs between batch 1 and batch %d", i, onnxjudge.DefaultBatch)
		}
	}
	for i := range c {
		if metrics.Cosine(c[i], d[i]) < 1-1e-6 {
			t.Errorf("image %d differs between batch 1 and batch %d", i, onnxjudge.DefaultBatch)
		}
	}
	if metrics.Cosine(c[0], c[2]) < 1-1e-6 {
		t.Error("the same image embedded twice differs")
	}
}

// copyDir copies the regular files of src (not subfolders) into a new temporary folder.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Type().IsRegular() {
			copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
		}
	}
	return dst
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBadExportsAreClearErrors: a model with the wrong signature, a folder without an export,
// a missing tokenizer and a bad option each fail Open with an error naming what and where.
func TestBadExportsAreClearErrors(t *testing.T) {
	initORT(t)
	mlp := filepath.Join("..", "..", "runtime", "ort", "testdata", "mlp.onnx")

	wrongVision := copyDir(t, "testdata/towers")
	copyFile(t, "testdata/towers/onnx/text_model.onnx", filepath.Join(wrongVision, TextFile))
	copyFile(t, mlp, filepath.Join(wrongVision, VisionFile))

	wrongText := copyDir(t, "testdata/towers")
	copyFile(t, "testdata/towers/onnx/vision_model.onnx", filepath.Join(wrongText, TextFile))
	copyFile(t, "testdata/towers/onnx/vision_model.onnx", filepath.Join(wrongText, VisionFile))

	swapped := copyDir(t, "testdata/towers")
	copyFile(t, "testdata/towers/onnx/vision_model.onnx", filepath.Join(swapped, TextFile))
	copyFile(t, "testdata/towers/onnx/text_model.onnx", filepath.Join(swapped, VisionFile))

	noTok := t.TempDir()
	copyFile(t, "testdata/joint/model.onnx", filepath.Join(noTok, JointFile))

	cases := []struct {
		name, dir string
		want      []string
	}{
		{"wrong vision tower", wrongVision, []string{VisionFile, "not a CLIP export", "pixel_values", "inputs [x float32"}},
		{"image tower as text tower", wrongText, []string{TextFile, "unexpected input \"pixel_values\""}},
		{"swapped towers", swapped, []string{TextFile, "not a CLIP export"}},
		{"no export", t.TempDir(), []string{"no CLIP export", TextFile, JointFile}},
		{"missing folder", filepath.Join(t.TempDir(), "nope"), []string{"nope", "no such file"}},
		{"no tokenizer", noTok, []string{"tokenizer", noTok}},
		{"no path", "", []string{"no model folder"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Open(c.dir, Options{})
			if err == nil {
				m.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestRegistered: the kind opens through judges.ImageTexts with its options, rejects unknown
// ones, and its digest follows the files.
func TestRegistered(t *testing.T) {
	initORT(t)
	spec := judges.Spec{Kind: Kind, Path: "testdata/towers", Options: map[string]string{"batch": "1", "threads": "1"}}
	j, err := judges.ImageTexts.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if m := j.(*Model); m.batch != 1 || m.joint {
		t.Errorf("opened batch=%d joint=%v, want batch 1, towers", m.batch, m.joint)
	}
	for opt, want := range map[string]string{"colour": "unknown option", "batch": "positive integer", "provider": "provider"} {
		bad := judges.Spec{Kind: Kind, Path: "testdata/towers", Options: map[string]string{opt: "-1x"}}
		if _, err := judges.ImageTexts.Open(bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("option %s=-1x: err %v, want %q", opt, err, want)
		}
	}

	d1, err := judges.ImageTexts.Digest(spec)
	if err != nil {
		t.Fatal(err)
	}
	dir := copyDir(t, "testdata/towers")
	os.Mkdir(filepath.Join(dir, "onnx"), 0o755)
	for _, f := range []string{TextFile, VisionFile} {
		copyFile(t, filepath.Join("testdata/towers/onnx", f), filepath.Join(dir, "onnx", f))
	}
	d2, err := Digest(dir, Options{})
	if err != nil || d2 != d1 {
		t.Fatalf("copied export: digest %q (%v), want %q", d2, err, d1)
	}
	os.WriteFile(filepath.Join(dir, "merges.txt"), []byte("#version: 0.2\n"), 0o644)
	if d3, _ := Digest(dir, Options{}); d3 == d1 {
		t.Error("a changed tokenizer file kept the digest")
	}
}

// TestPaddingAndTruncation: the export pools at the EOS (argmax of input_ids), so padding with
// id 0 instead of EOS gives the same text embedding; a text past 77 tokens is cut keeping EOS,
// the same embedding as its first 76 ids and EOS.
func TestPaddingAndTruncation(t *testing.T) {
	ref, _ := loadRef(t)
	for _, dir := range []string{"testdata/towers", "testdata/joint"} {
		eosPad := open(t, dir, Options{})
		zeroPad := open(t, dir, Options{})
		zeroPad.tok = zeroPad.tok.WithPad(0)
		a, err := eosPad.EmbedTexts(ref.Texts)
		if err != nil {
			t.Fatal(err)
		}
		b, err := zeroPad.EmbedTexts(ref.Texts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if c := metrics.Cosine(a[i], b[i]); c < 1-1e-6 {
				t.Errorf("%s: text %d: pad 0 vs pad EOS cosine %v", dir, i, c)
			}
		}
		long := strings.Repeat("the cat on a photo of the dog ", 20)
		ids := eosPad.Tokenizer().Encode(long).IDs
		if len(ids) <= 77 {
			t.Fatalf("long text has %d ids", len(ids))
		}
		cut := append(slices.Clone(ids[:76]), eosPad.Tokenizer().EOS())
		got, err := eosPad.EmbedTexts([]string{long})
		if err != nil {
			t.Fatal(err)
		}
		want, err := eosPad.EmbedIDs([][]int32{cut})
		if err != nil {
			t.Fatal(err)
		}
		if c := metrics.Cosine(got[0], want[0]); c < 1-1e-6 {
			t.Errorf("%s: long text vs its 77-id cut: cosine %v", dir, c)
		}
	}
}

// TestConcurrentUse: one Model serves several goroutines at once with the same results.
func TestConcurrentUse(t *testing.T) {
	ref, imgs := loadRef(t)
	m := open(t, "testdata/towers", Options{Options: onnxjudge.Options{Batch: 1}})
	want, err := m.EmbedImages(imgs)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			got, err := m.EmbedImages(imgs)
			if err == nil {
				_, err = m.EmbedTexts(ref.Texts)
			}
			for i := range got {
				if err == nil && metrics.Cosine(got[i], want[i]) < 1-1e-6 {
					err = fmt.Errorf("image %d differs when embedded concurrently", i)
				}
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
