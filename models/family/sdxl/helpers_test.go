package sdxl

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/text/prompt"
)

// fixtureDir is the committed signature fixture (tools/sdxl_fixtures.py).
const fixtureDir = "testdata/tiny-sdxl"

// refTensor is a tensor of tiny-sdxl-reference.json: a shape and base64 little-endian values.
type refTensor struct {
	Shape []int64 `json:"shape"`
	F32   string  `json:"f32"`
	I64   string  `json:"i64"`
}

func (r refTensor) floats(tb testing.TB) []float32 {
	tb.Helper()
	raw, err := base64.StdEncoding.DecodeString(r.F32)
	if err != nil || len(raw)%4 != 0 {
		tb.Fatalf("reference tensor: %v", err)
	}
	return decodeFloats(raw)
}

func (r refTensor) ints(tb testing.TB) []int64 {
	tb.Helper()
	raw, err := base64.StdEncoding.DecodeString(r.I64)
	if err != nil || len(raw)%8 != 0 {
		tb.Fatalf("reference tensor: %v", err)
	}
	out := make([]int64, len(raw)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return out
}

func (r refTensor) tensor(tb testing.TB) ort.Tensor {
	if r.I64 != "" {
		return ort.NewTensor(r.Shape, r.ints(tb))
	}
	return ort.NewTensor(r.Shape, r.floats(tb))
}

// reference is what the fixture script wrote beside the fixture.
type reference struct {
	Bos      int32                      `json:"bos"`
	Eos      int32                      `json:"eos"`
	Pad2     int32                      `json:"pad_2"`
	Vocab    int                        `json:"vocab_size"`
	Tokens   map[string][]int32         `json:"tokens"`
	Text1    map[string]refTensor       `json:"text_encoder"`
	Text2    map[string]refTensor       `json:"text_encoder_2"`
	UNet     map[string]json.RawMessage `json:"unet"`
	VAEEnc   map[string]refTensor       `json:"vae_encoder"`
	VAEDec   map[string]refTensor       `json:"vae_decoder"`
	Gradient gradientRef                `json:"gradient"`
}

// gradientRef is the torch autograd reference of a scalar loss through both text encoders and
// the UNet with respect to the inserted pseudo-words.
type gradientRef struct {
	IDs          []int32   `json:"ids"`
	Concept      int       `json:"concept"`
	EOS          int       `json:"eos"`
	Timestep     float64   `json:"timestep"`
	W1           []float32 `json:"w1"`
	W2           []float32 `json:"w2"`
	X            refTensor `json:"x"`
	Weight       refTensor `json:"weight"`
	Penultimate1 refTensor `json:"penultimate_1"`
	Penultimate2 refTensor `json:"penultimate_2"`
	TextEmbeds   refTensor `json:"text_embeds"`
	OutSample    refTensor `json:"out_sample"`
	Loss         float64   `json:"loss"`
	GradW1       []float32 `json:"grad_w1"`
	GradW2       []float32 `json:"grad_w2"`
}

var (
	refOnce sync.Once
	ref     reference
	refErr  error
)

// loadRef reads testdata/tiny-sdxl-reference.json once.
func loadRef(tb testing.TB) *reference {
	tb.Helper()
	refOnce.Do(func() {
		var data []byte
		if data, refErr = os.ReadFile("testdata/tiny-sdxl-reference.json"); refErr == nil {
			refErr = json.Unmarshal(data, &ref)
		}
	})
	if refErr != nil {
		tb.Fatal(refErr)
	}
	return &ref
}

// unetTensor returns the UNet reference's tensor name.
func (r *reference) unetTensor(tb testing.TB, name string) refTensor {
	tb.Helper()
	var t refTensor
	if err := json.Unmarshal(r.UNet[name], &t); err != nil {
		tb.Fatalf("unet reference %s: %v", name, err)
	}
	return t
}

// initORT loads ONNX Runtime or fails the test with how to install it.
func initORT(tb testing.TB) {
	tb.Helper()
	if err := ort.Init(""); err != nil {
		tb.Fatalf("ONNX Runtime: %v (run make ort, or set COCOFLOW_ORT_LIB)", err)
	}
}

// maxDiff returns max |a - b| and fails on a length mismatch.
func maxDiff(tb testing.TB, what string, a, b []float32) float64 {
	tb.Helper()
	if len(a) != len(b) {
		tb.Fatalf("%s: %d values, want %d", what, len(a), len(b))
	}
	worst := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = math.Max(worst, d)
	}
	return worst
}

// maxAbs is the largest |v|, the scale tolerances are stated against.
func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// copyFixture copies the fixture into a temporary folder a test may break.
func copyFixture(tb testing.TB) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), "sdxl")
	err := filepath.WalkDir(fixtureDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(fixtureDir, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// identityPlan is the plan of a prompt of L positions with EOS at eos and no insertion.
func identityPlan(L, eos int) prompt.Plan {
	p, err := prompt.NewPlan(L, eos, nil, L)
	if err != nil {
		panic(err)
	}
	return p
}

func decodeFloats(raw []byte) []float32 {
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out
}
