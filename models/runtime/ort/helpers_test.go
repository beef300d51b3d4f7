package ort

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// initORT initialises ONNX Runtime from LibraryPath(""); a missing library
// fails the test with the install hint (CI installs it first).
func initORT(tb testing.TB) {
	tb.Helper()
	if err := Init(""); err != nil {
		tb.Fatalf("%v", err)
	}
}

// fixture is the torch reference tools/onnx_fixtures.py writes beside each
// fixture model.
type fixture struct {
	Model string        `json:"model"`
	Opset int           `json:"opset"`
	Torch string        `json:"torch"`
	Cases []fixtureCase `json:"cases"`
}

type fixtureCase struct {
	Batch   int                      `json:"batch"`
	Inputs  map[string]fixtureTensor `json:"inputs"`
	Outputs map[string]fixtureTensor `json:"outputs"`
}

type fixtureTensor struct {
	DType string  `json:"dtype"`
	Shape []int64 `json:"shape"`
	Data  string  `json:"data"`
}

func (ft fixtureTensor) tensor() (Tensor, error) {
	raw, err := base64.StdEncoding.DecodeString(ft.Data)
	if err != nil {
		return Tensor{}, fmt.Errorf("data: %w", err)
	}
	n := int64(1)
	for _, d := range ft.Shape {
		n *= d
	}
	switch ft.DType {
	case "float32":
		if int64(len(raw)) != 4*n {
			return Tensor{}, fmt.Errorf("float32 %v: want %d bytes, got %d", ft.Shape, 4*n, len(raw))
		}
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return NewTensor(ft.Shape, d), nil
	case "int64":
		if int64(len(raw)) != 8*n {
			return Tensor{}, fmt.Errorf("int64 %v: want %d bytes, got %d", ft.Shape, 8*n, len(raw))
		}
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return NewTensor(ft.Shape, d), nil
	}
	return Tensor{}, fmt.Errorf("dtype %q: want float32 or int64", ft.DType)
}

func loadFixture(tb testing.TB, name string) fixture {
	tb.Helper()
	path := filepath.Join("testdata", name+".json")
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run /usr/bin/python3 tools/onnx_fixtures.py)", err)
	}
	var f fixture
	if err := json.Unmarshal(raw, &f); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	if len(f.Cases) == 0 {
		tb.Fatalf("%s: no cases", path)
	}
	return f
}

func decodeAll(tb testing.TB, m map[string]fixtureTensor) map[string]Tensor {
	tb.Helper()
	out := make(map[string]Tensor, len(m))
	for name, ft := range m {
		t, err := ft.tensor()
		if err != nil {
			tb.Fatalf("fixture tensor %q: %v", name, err)
		}
		out[name] = t
	}
	return out
}

// Tolerance against torch: |got-want| <= relTol*|want| + absTol.
const (
	relTol = 1e-5
	absTol = 1e-6
)

// compareFloat32 returns the largest absolute difference and an error
// naming the first element out of tolerance.
func compareFloat32(got, want Tensor) (float64, error) {
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		return 0, fmt.Errorf("shape %v, want %v", got.Shape, want.Shape)
	}
	g, err := Data[float32](got)
	if err != nil {
		return 0, err
	}
	w, err := Data[float32](want)
	if err != nil {
		return 0, err
	}
	worst := 0.0
	for i := range w {
		diff := math.Abs(float64(g[i]) - float64(w[i]))
		if diff > relTol*math.Abs(float64(w[i]))+absTol || math.IsNaN(diff) {
			return worst, fmt.Errorf("element %d: got %g, want %g (|diff| %.3g > %g*|want|+%g)", i, g[i], w[i], diff, relTol, absTol)
		}
		worst = math.Max(worst, diff)
	}
	return worst, nil
}

// repoRoot walks up from the working directory to the folder with go.mod.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
