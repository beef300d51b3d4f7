package ort

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestSessionMatchesTorch(t *testing.T) {
	initORT(t)
	for _, name := range []string{"mlp", "transformer"} {
		fx := loadFixture(t, name)
		s, err := Open(filepath.Join("testdata", fx.Model), Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		batches := map[int]bool{}
		for _, c := range fx.Cases {
			batches[c.Batch] = true
			t.Run(fmt.Sprintf("%s/batch%d", name, c.Batch), func(t *testing.T) {
				got, err := s.Run(decodeAll(t, c.Inputs))
				if err != nil {
					t.Fatal(err)
				}
				want := decodeAll(t, c.Outputs)
				if len(got) != len(want) {
					t.Fatalf("got %d outputs, want %d", len(got), len(want))
				}
				for out, w := range want {
					g, ok := got[out]
					if !ok {
						t.Fatalf("output %q missing", out)
					}
					worst, err := compareFloat32(g, w)
					if err != nil {
						t.Fatalf("output %q: %v", out, err)
					}
					t.Logf("output %q %v: max |ort-torch| %.2g", out, g.Shape, worst)
				}
			})
		}
		if !batches[1] || !batches[16] {
			t.Errorf("%s: fixture batches %v, want 1 and 16", name, batches)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSessionDescribesModel(t *testing.T) {
	initORT(t)
	s, err := Open(filepath.Join("testdata", "transformer.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantIn := []TensorInfo{
		{Name: "tokens", Shape: []int64{-1, 6, 16}, DType: "float32"},
		{Name: "index", Shape: []int64{-1}, DType: "int64"},
	}
	if got := s.Inputs(); !reflect.DeepEqual(got, wantIn) {
		t.Errorf("Inputs() = %v, want %v", got, wantIn)
	}
	outs := s.Outputs()
	if len(outs) != 2 || outs[0].Name != "hidden" || outs[1].Name != "pooled" || outs[0].DType != "float32" {
		t.Errorf("Outputs() = %v, want hidden and pooled, float32", outs)
	}
	if !reflect.DeepEqual(outs[0].Shape, []int64{-1, 6, 16}) {
		t.Errorf("hidden shape %v, want [-1 6 16]", outs[0].Shape)
	}
	s.Inputs()[0].Shape[0] = 99
	if s.Inputs()[0].Shape[0] != -1 {
		t.Error("Inputs() returns the session's own slices")
	}
}

func TestSessionDynamicBatch(t *testing.T) {
	initORT(t)
	s, err := Open(filepath.Join("testdata", "mlp.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Row i of a batch must not depend on the batch size around it.
	row := []float32{0.5, -1, 2, 0.25, -0.75, 1.5, 0, -2}
	one, err := s.Run(map[string]Tensor{"x": NewTensor([]int64{1, 8}, row)})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Data[float32](one["y"])
	for _, batch := range []int{3, 16, 1, 7} {
		x := make([]float32, 0, batch*8)
		for range batch {
			x = append(x, row...)
		}
		out, err := s.Run(map[string]Tensor{"x": NewTensor([]int64{int64(batch), 8}, x)})
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		y := out["y"]
		if !reflect.DeepEqual(y.Shape, []int64{int64(batch), 4}) {
			t.Fatalf("batch %d: y shape %v", batch, y.Shape)
		}
		got, _ := Data[float32](y)
		for b := range batch {
			for j := range 4 {
				if d := got[b*4+j] - want[j]; d > 1e-6 || d < -1e-6 {
					t.Fatalf("batch %d row %d col %d: %g, want %g", batch, b, j, got[b*4+j], want[j])
				}
			}
		}
	}
}

func TestSessionRunErrors(t *testing.T) {
	initORT(t)
	path := filepath.Join("testdata", "transformer.onnx")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tokens := NewTensor([]int64{2, 6, 16}, make([]float32, 2*6*16))
	index := NewTensor([]int64{2}, []int64{0, 5})
	cases := []struct {
		name   string
		inputs map[string]Tensor
		want   []string
	}{
		{"unknown name", map[string]Tensor{"tokens": tokens, "index": index, "tokenz": tokens},
			[]string{`unknown input "tokenz"`, "tokens float32[-1 6 16]", "index int64[-1]"}},
		{"missing input", map[string]Tensor{"tokens": tokens},
			[]string{`missing input "index"`}},
		{"wrong dtype", map[string]Tensor{"tokens": tokens, "index": NewTensor([]int64{2}, []int32{0, 5})},
			[]string{`input "index"`, "want dtype int64, got int32"}},
		{"wrong rank", map[string]Tensor{"tokens": NewTensor([]int64{12, 16}, make([]float32, 12*16)), "index": index},
			[]string{`input "tokens"`, "want rank 3"}},
		{"wrong fixed dim", map[string]Tensor{"tokens": NewTensor([]int64{2, 5, 16}, make([]float32, 2*5*16)), "index": index},
			[]string{`input "tokens"`, "dimension 1: want 6"}},
		{"short data", map[string]Tensor{"tokens": NewTensor([]int64{2, 6, 16}, make([]float32, 100)), "index": index},
			[]string{`input "tokens"`, "needs 192 elements, data has 100"}},
		{"not a slice", map[string]Tensor{"tokens": {Shape: []int64{2, 6, 16}, Data: "abc"}, "index": index},
			[]string{`input "tokens"`, "got string"}},
		{"onnx runtime error", map[string]Tensor{"tokens": tokens, "index": NewTensor([]int64{2}, []int64{0, 9})},
			[]string{"run " + path}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Run(c.inputs)
			if err == nil {
				t.Fatal("Run succeeded, want an error")
			}
			msg := err.Error()
			for _, w := range append([]string{path}, c.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
		})
	}
}

func TestSessionConcurrentRun(t *testing.T) {
	initORT(t)
	fx := loadFixture(t, "transformer")
	s, err := Open(filepath.Join("testdata", fx.Model), Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(fx.Cases))
	for g := range 8 {
		c := fx.Cases[g%len(fx.Cases)]
		in, want := decodeAll(t, c.Inputs), decodeAll(t, c.Outputs)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				got, err := s.Run(in)
				if err != nil {
					errs <- err
					return
				}
				for name, w := range want {
					if _, err := compareFloat32(got[name], w); err != nil {
						errs <- fmt.Errorf("goroutine %d batch %d %s: %w", g, c.Batch, name, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSessionClose(t *testing.T) {
	initORT(t)
	s, err := Open(filepath.Join("testdata", "mlp.onnx"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_, err = s.Run(map[string]Tensor{"x": NewTensor([]int64{1, 8}, make([]float32, 8))})
	if err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Run after Close: %v, want a closed-session error", err)
	}
}

func TestOpenErrors(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("this is not a protobuf\xff\xff\xff"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.onnx")
	full, err := os.ReadFile(filepath.Join("testdata", "mlp.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, full[:len(full)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	mlp := filepath.Join("testdata", "mlp.onnx")
	cases := []struct {
		name string
		path string
		opt  Options
		want string
	}{
		{"missing file", filepath.Join(dir, "nope.onnx"), Options{}, "no such file"},
		{"garbage", garbage, Options{}, "not a readable ONNX model"},
		{"truncated", truncated, Options{}, "not a readable ONNX model"},
		{"cpu first", mlp, Options{Providers: []Provider{{Name: CPU}, {Name: CUDA}}}, "cpu must be the last provider"},
		{"unknown provider", mlp, Options{Providers: []Provider{{Name: "rocm"}}}, `unknown execution provider "rocm"`},
		{"negative threads", mlp, Options{IntraOpThreads: -1}, "thread counts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(c.path, c.opt)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.path) {
				t.Errorf("error %q, want it to name %s and contain %q", err, c.path, c.want)
			}
		})
	}
}

// TestOpenGPUProviders asks for CUDA and TensorRT. Where ONNX Runtime can
// enable them the fixture must still match torch; where it cannot (no GPU
// provider libraries, as with the npm build installed here) Open must fail
// with "<name> execution provider unavailable: ..." rather than run on CPU.
func TestOpenGPUProviders(t *testing.T) {
	initORT(t)
	fx := loadFixture(t, "mlp")
	for _, p := range []Provider{{Name: CUDA}, {Name: TensorRT}} {
		t.Run(p.Name, func(t *testing.T) {
			s, err := Open(filepath.Join("testdata", fx.Model), Options{Providers: []Provider{p, {Name: CPU}}})
			if err != nil {
				want := p.Name + " execution provider unavailable: "
				if !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %q, want one line containing %q", err, want)
				}
				t.Logf("as expected without GPU providers: %v", err)
				return
			}
			defer s.Close()
			c := fx.Cases[0]
			got, err := s.Run(decodeAll(t, c.Inputs))
			if err != nil {
				t.Fatal(err)
			}
			for name, w := range decodeAll(t, c.Outputs) {
				if _, err := compareFloat32(got[name], w); err != nil {
					t.Errorf("%s output %q: %v", p.Name, name, err)
				}
			}
		})
	}
}
