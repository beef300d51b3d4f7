package ultraface

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/judges/facedet"
	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// sharedModel is the published RFB-320 export, read from ../shared/data/onnx beside the
// repository root; it is not committed here.
func sharedModel(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if filepath.Dir(dir) == dir {
			tb.Fatal("no go.mod above the working directory")
		}
		dir = filepath.Dir(dir)
	}
	path := filepath.Join(dir, "..", "shared", "data", "onnx", File)
	if _, err := os.Stat(path); err != nil {
		tb.Fatalf("the UltraFace test needs the published model at %s (../shared/data/onnx beside the repository root): %v", path, err)
	}
	return path
}

func openShared(tb testing.TB) *Detector {
	tb.Helper()
	if err := ort.Init(""); err != nil {
		tb.Fatal(err)
	}
	d, err := Open(sharedModel(tb), ort.Options{IntraOpThreads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

func TestPriorsMatchTheExport(t *testing.T) {
	ps := Priors(320, 240)
	if len(ps) != 4420 {
		t.Fatalf("Priors(320, 240): %d priors, want 4420", len(ps))
	}
	// Hand-computed: the first prior is cell (0, 0) of stride 8 with min box 10; the last is
	// cell (4, 3) of stride 64's 5x4 map with min box 256 (height clamped to 1).
	if got, want := ps[0], (Prior{4.0 / 320, 4.0 / 240, 10.0 / 320, 10.0 / 240}); !near(got, want) {
		t.Errorf("prior 0 = %+v, want %+v", got, want)
	}
	if got, want := ps[4419], (Prior{4.5 / 5, 3.5 / 4, 256.0 / 320, 1}); !near(got, want) {
		t.Errorf("prior 4419 = %+v, want %+v", got, want)
	}
	// The published export carries its priors as constants: the centres added after the
	// centre-variance product, the sizes multiplied into it.
	m, err := onnxgraph.Read(sharedModel(t))
	if err != nil {
		t.Fatal(err)
	}
	var centres, sizes int
	for _, n := range m.Graph.Nodes {
		if n.OpType != "Constant" || len(n.Attrs) == 0 || n.Attrs[0].T == nil || n.Attrs[0].T.Elements() != 4420*2 {
			continue
		}
		vals, err := n.Attrs[0].T.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range m.Graph.Consumers(n.Outputs[0]) {
			off := map[string]int{"Add": 0, "Mul": 2}
			o, ok := off[c.OpType]
			if !ok {
				continue
			}
			if o == 0 {
				centres++
			} else {
				sizes++
			}
			for k, p := range ps {
				want := [4]float64{p.CX, p.CY, p.W, p.H}
				for j := range 2 {
					if d := math.Abs(float64(vals[2*k+j]) - want[o+j]); d > 1e-6 {
						t.Fatalf("constant %s (into %s) prior %d [%d] = %g, Priors gives %g", n.Outputs[0], c.OpType, k, j, vals[2*k+j], want[o+j])
					}
				}
			}
		}
	}
	if centres == 0 || sizes == 0 {
		t.Fatalf("found %d prior-centre and %d prior-size constants in the export, want both", centres, sizes)
	}
}

func near(a, b Prior) bool {
	return math.Abs(a.CX-b.CX) < 1e-12 && math.Abs(a.CY-b.CY) < 1e-12 && math.Abs(a.W-b.W) < 1e-12 && math.Abs(a.H-b.H) < 1e-12
}

func TestDecode(t *testing.T) {
	p := Prior{CX: 0.5, CY: 0.25, W: 0.2, H: 0.4}
	cases := []struct {
		loc  []float32
		want [4]float32
	}{
		{[]float32{0, 0, 0, 0}, [4]float32{0.4, 0.05, 0.6, 0.45}},
		// centre moves by loc·0.1·size: +0.02 in x, −0.04 in y; width doubles (exp(ln2/0.2·0.2)).
		{[]float32{1, -1, float32(math.Ln2 / SizeVariance), 0}, [4]float32{0.32, 0.01, 0.72, 0.41}},
	}
	for _, c := range cases {
		got := Decode(c.loc, p)
		for i := range got {
			if math.Abs(float64(got[i]-c.want[i])) > 1e-6 {
				t.Fatalf("Decode(%v) = %v, want %v", c.loc, got, c.want)
			}
		}
	}
}

// TestRealModelFindsARenderedFace runs the published model on a synthfaces portrait upscaled to
// the model's input and on a flat grey image.
func TestRealModelFindsARenderedFace(t *testing.T) {
	d := openShared(t)
	if !d.Decodes() {
		t.Fatal("the published export decodes its boxes (it ends with Softmax); Open took it for a raw one")
	}
	w, err := synthfaces.New(synthfaces.Config{Seed: 3, Identities: 4, ImagesPerIdentity: 1, Size: 128})
	if err != nil {
		t.Fatal(err)
	}
	for id := range 4 {
		s, err := w.Render(id, 0)
		if err != nil {
			t.Fatal(err)
		}
		img := facedet.FromImage(s.Image).Resize(320, 240)
		faces, err := d.Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(faces) == 0 {
			t.Errorf("identity %d: no face found", id)
			continue
		}
		f := faces[0]
		if f.Score <= 0.9 {
			t.Errorf("identity %d: best score %.3f, want > 0.9", id, f.Score)
		}
		// The box lies on the subject: the points at 25, 50 and 75 % of its width and height
		// are all on the subject's mask (scaled from 128 px), and it is face-sized.
		for _, u := range []float32{0.25, 0.5, 0.75} {
			for _, v := range []float32{0.25, 0.5, 0.75} {
				x := (f.Box[0] + u*(f.Box[2]-f.Box[0])) * 128 / 320
				y := (f.Box[1] + v*(f.Box[3]-f.Box[1])) * 128 / 240
				if s.Mask.GrayAt(int(x), int(y)).Y == 0 {
					t.Errorf("identity %d: box %v: its point (%.0f%%, %.0f%%) is off the subject", id, f.Box, 100*u, 100*v)
				}
			}
		}
		if w := f.Box[2] - f.Box[0]; w < 40 || w > 200 {
			t.Errorf("identity %d: box %v is %.0f px wide, not face-sized in a 320x240 portrait", id, f.Box, w)
		}
		t.Logf("identity %d: box %v score %.4f", id, f.Box, f.Score)
	}
	flat := facedet.NewRGB(320, 240)
	for i := range flat.Pix {
		flat.Pix[i] = 128
	}
	faces, err := d.Detect(flat)
	if err != nil {
		t.Fatal(err)
	}
	if len(faces) != 0 {
		t.Errorf("flat grey image: %d faces %v, want none", len(faces), faces)
	}
}

func TestWrongSignature(t *testing.T) {
	if err := ort.Init(""); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "runtime", "ort", "testdata", "mlp.onnx")
	_, err := Open(path, ort.Options{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "want one input [1,3,H,W] and two outputs") {
		t.Fatalf("Open(%s) error = %v, want one naming the file and the expected signature", path, err)
	}
	if _, err := Open("no/such/"+File, ort.Options{}); err == nil || !strings.Contains(err.Error(), "no/such/"+File) {
		t.Fatalf("Open of a missing file: error = %v, want one naming it", err)
	}
}

// TestRawExportDecodesLikeThePublishedOne cuts the published graph before its post-processing
// (the concatenated score logits and raw locations become the outputs, as an export without
// post-processing has them) and checks that decoding them here with Priors finds the faces
// the published export decodes itself.
func TestRawExportDecodesLikeThePublishedOne(t *testing.T) {
	pub := openShared(t)
	m, err := onnxgraph.Read(sharedModel(t))
	if err != nil {
		t.Fatal(err)
	}
	var logits, locs string
	for _, n := range m.Graph.Nodes {
		if n.OpType == "Softmax" && n.Outputs[0] == pub.scores {
			logits = n.Inputs[0]
		}
	}
	// The locations are the tensor the box decoding slices: the input of the Slice nodes.
	for _, n := range m.Graph.Nodes {
		if n.OpType == "Slice" && m.Graph.Producer(n.Inputs[0]) != nil && m.Graph.Producer(n.Inputs[0]).OpType == "Concat" && n.Inputs[0] != logits {
			locs = n.Inputs[0]
			break
		}
	}
	if logits == "" || locs == "" {
		t.Fatalf("could not find the raw heads in the export (logits %q, locations %q)", logits, locs)
	}
	dims := func(c int64) []onnxgraph.Dim { return []onnxgraph.Dim{{Value: 1}, {Value: 4420}, {Value: c}} }
	m.Graph.Outputs = []*onnxgraph.ValueInfo{
		{Name: logits, Type: onnxgraph.NewTensorType(onnxgraph.Float, dims(2)...)},
		{Name: locs, Type: onnxgraph.NewTensorType(onnxgraph.Float, dims(4)...)},
	}
	m.Graph.Prune()
	// The export lists its weights as graph inputs too (pre-IR-4); drop those Prune left
	// without an initializer, so only the image remains an input.
	ins := m.Graph.Inputs[:0]
	for _, in := range m.Graph.Inputs {
		if in.Name == pub.input || m.Graph.Initializer(in.Name) != nil {
			ins = append(ins, in)
		}
	}
	m.Graph.Inputs = ins
	raw := filepath.Join(t.TempDir(), "raw.onnx")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Write(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := Open(raw, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Decodes() {
		t.Fatal("the cut export has no Softmax at its score output; Open took it for a decoding one")
	}
	w, err := synthfaces.New(synthfaces.Config{Seed: 3, Identities: 2, ImagesPerIdentity: 1, Size: 128})
	if err != nil {
		t.Fatal(err)
	}
	for id := range 2 {
		s, err := w.Render(id, 0)
		if err != nil {
			t.Fatal(err)
		}
		img := facedet.FromImage(s.Image)
		want, err := pub.Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 || len(got) != len(want) {
			t.Fatalf("identity %d: raw export found %d faces, published %d (want the same, at least one)", id, len(got), len(want))
		}
		for i := range want {
			if math.Abs(float64(got[i].Score-want[i].Score)) > 1e-5 {
				t.Errorf("identity %d face %d: score %g, published %g", id, i, got[i].Score, want[i].Score)
			}
			for k := range 4 {
				if math.Abs(float64(got[i].Box[k]-want[i].Box[k])) > 1e-3 {
					t.Errorf("identity %d face %d: box %v, published %v", id, i, got[i].Box, want[i].Box)
					break
				}
			}
		}
	}
}
