package dreamsim

import (
	"encoding/json"
	"image"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/onnxjudge"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

const fixtureHint = "run /usr/bin/python3 tools/clip_fixtures.py"

// reference is testdata/reference.json, written by tools/clip_fixtures.py.
type reference struct {
	Images    []string    `json:"images"`
	Embedding [][]float64 `json:"embedding"`
}

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

func open(t testing.TB, path string, o onnxjudge.Options) *Model {
	t.Helper()
	if err := ort.Init(""); err != nil {
		t.Fatalf("ONNX Runtime: %v (run make ort, or set COCOFLOW_ORT_LIB)", err)
	}
	o.ORT.IntraOpThreads = 1
	m, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestMatchesTorch: dreamsim's preprocessing (square bicubic resize, ToTensor) and the export
// give torch's embeddings of the reference images, at any batch size.
func TestMatchesTorch(t *testing.T) {
	ref, imgs := loadRef(t)
	for _, batch := range []int{1, 2} {
		m := open(t, "testdata", onnxjudge.Options{Batch: batch})
		if m.ImageSize() != 224 || m.input != "image" || m.output != "embedding" {
			t.Fatalf("size %d input %q output %q", m.ImageSize(), m.input, m.output)
		}
		got, err := m.EmbedImages(imgs)
		if err != nil {
			t.Fatal(err)
		}
		for i, row := range ref.Embedding {
			want := make([]float32, len(row))
			for j, v := range row {
				want[j] = float32(v)
			}
			Center(want)
			for j := range want {
				if d := math.Abs(float64(got[i][j] - want[j])); d > 1e-5 {
					t.Fatalf("batch %d image %d [%d] = %v, want %v", batch, i, j, got[i][j], want[j])
				}
			}
		}
		if d := Distance(got[0], got[0]); math.Abs(d) > 1e-6 {
			t.Errorf("self-distance %v, want 0", d)
		}
		if d := Distance(got[0], got[1]); d < 1e-3 || d > 2 {
			t.Errorf("distance between different images %v, want in (0, 2]", d)
		}
	}
}

// TestCenterIsNormalizeEmbedding: hand-computed values of dreamsim's normalize_embedding, and
// applying it twice changes nothing, so exports with and without it give one embedding.
func TestCenterIsNormalizeEmbedding(t *testing.T) {
	got := Center([]float32{1, 2, 3})
	want := []float64{-1 / math.Sqrt2, 0, 1 / math.Sqrt2}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-7 {
			t.Fatalf("Center(1, 2, 3) = %v, want %v", got, want)
		}
	}
	v := []float32{0.3, -2, 5, 1.25}
	once := Center(append([]float32(nil), v...))
	twice := Center(Center(append([]float32(nil), v...)))
	for i := range once {
		if math.Abs(float64(once[i]-twice[i])) > 1e-7 {
			t.Fatalf("Center twice %v, once %v", twice, once)
		}
	}
	if d := Distance([]float32{1, 0}, []float32{0, 3}); math.Abs(d-1) > 1e-12 {
		t.Errorf("Distance of orthogonal vectors %v, want 1", d)
	}
}

// TestBadExportsAreClearErrors: models without DreamSim's signature, or no model, fail Open
// with an error naming the file and what it has.
func TestBadExportsAreClearErrors(t *testing.T) {
	if err := ort.Init(""); err != nil {
		t.Fatal(err)
	}
	clip := filepath.Join("..", "clipvit", "testdata")
	cases := []struct {
		name, path string
		want       []string
	}{
		{"rank-2 input", filepath.Join("..", "..", "runtime", "ort", "testdata", "mlp.onnx"), []string{"mlp.onnx", "not a DreamSim export", "input x is not float32 [batch, 3, H, W]", "inputs [x float32[-1 8]]"}},
		{"two outputs", filepath.Join(clip, "towers", "onnx", "vision_model.onnx"), []string{"vision_model.onnx", "no single embedding output", "image_embeds"}},
		{"three inputs", filepath.Join(clip, "joint", "model.onnx"), []string{"model.onnx", "3 inputs"}},
		{"folder without model", t.TempDir(), []string{"no model.onnx in the folder"}},
		{"missing", filepath.Join(t.TempDir(), "x.onnx"), []string{"x.onnx", "no such file"}},
		{"no path", "", []string{"no model given"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Open(c.path, onnxjudge.Options{})
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

// TestRegistered: the kind opens through judges.ImageSims and its digest follows the file.
func TestRegistered(t *testing.T) {
	if err := ort.Init(""); err != nil {
		t.Fatal(err)
	}
	spec := judges.Spec{Kind: Kind, Path: "testdata/model.onnx", Options: map[string]string{"threads": "1"}}
	j, err := judges.ImageSims.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := judges.ImageSims.Open(judges.Spec{Kind: Kind, Path: "testdata", Options: map[string]string{"tokenizer": "x"}}); err == nil ||
		!strings.Contains(err.Error(), `unknown option "tokenizer"`) {
		t.Errorf("unknown option: %v", err)
	}
	d1, err := judges.ImageSims.Digest(spec)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := Digest("testdata"); d2 != d1 {
		t.Errorf("folder and file digests differ: %s %s", d2, d1)
	}
	other, _ := Digest(filepath.Join("..", "clipvit", "testdata", "joint", "model.onnx"))
	if other == d1 {
		t.Error("another model has the same digest")
	}
}

// TestImageSizeOption: an image_size that contradicts the export's fixed input is an error.
func TestImageSizeOption(t *testing.T) {
	if err := ort.Init(""); err != nil {
		t.Fatal(err)
	}
	_, err := Open("testdata", onnxjudge.Options{ImageSize: 336})
	if err == nil || !strings.Contains(err.Error(), "option image_size 336, but testdata/model.onnx takes 224x224 images") {
		t.Errorf("image_size 336: err = %v", err)
	}
	m := open(t, "testdata", onnxjudge.Options{ImageSize: 224})
	if m.ImageSize() != 224 {
		t.Errorf("size %d", m.ImageSize())
	}
}
