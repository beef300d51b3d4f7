package engine

import (
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func shapesF32(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }
func shapesF64(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float64, dims...) }

func TestResolveConfig(t *testing.T) {
	tests := []struct {
		name               string
		env                string
		envSet             bool
		configured         string
		wantConfig, wantBy string
	}{
		{"default", "", false, "", defaultConfig(), "default"},
		{"env wins", "go:ops_sequential", true, "go:parallelism=1", "go:ops_sequential", "GOMLX_BACKEND"},
		{"configured", "", false, "go:parallelism=1", "go:parallelism=1", "Configure"},
		{"empty env ignored", "  ", true, "", defaultConfig(), "default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, by := resolveConfig(tc.env, tc.envSet, tc.configured)
			if c != tc.wantConfig || by != tc.wantBy {
				t.Errorf("got (%q, %q), want (%q, %q)", c, by, tc.wantConfig, tc.wantBy)
			}
		})
	}
}

func TestNewBackendConfigs(t *testing.T) {
	tests := []struct {
		config  string
		wantErr string
	}{
		{"go:" + DefaultGoConfig, ""},
		{"go:ops_sequential", ""},
		{"go:parallelism=-1,ops_sequential", ""},
		{"go:bogus_option", "unknown configuration option"},
		{"go:parallelism=x", "needs an int"},
		{"nosuch:thing", `backend "nosuch" is not compiled in`},
	}
	if !xlaCompiled {
		tests = append(tests, struct{ config, wantErr string }{"xla:cuda", "-tags xla"})
	}
	for _, tc := range tests {
		t.Run(tc.config, func(t *testing.T) {
			b, err := newBackend(tc.config)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Finalize()
			// A multi-op graph runs to completion with this configuration.
			out, err := graph.ExecOnce(b, func(x *graph.Node) *graph.Node {
				y := graph.Tanh(graph.Dot(x, x))
				return graph.ReduceAllSum(graph.Add(graph.Exp(y), graph.Mul(y, y)))
			}, tensors.FromValue([][]float32{{1, 2}, {3, 4}}))
			if err != nil {
				t.Fatal(err)
			}
			if v := out.Value().(float32); v < 14.8 || v > 14.9 {
				t.Errorf("got %v, want 4·(e+1) ≈ 14.87 (tanh saturates)", v)
			}
		})
	}
}

func TestBackendSingletonAndConfigure(t *testing.T) {
	b1, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Backend()
	if err != nil || b1 != b2 {
		t.Fatalf("second Backend() = %v, %v; want the same backend", b2, err)
	}
	d := Describe()
	for _, want := range []string{"backend=", "config=", "source=", "gomlx=", "dot_gradients=gemm"} {
		if !strings.Contains(d, want) {
			t.Errorf("Describe() = %q, missing %q", d, want)
		}
	}
	if err := Configure(""); err == nil {
		t.Error("Configure(\"\"): want error")
	}
	if err := Configure("xla:cuda"); !xlaCompiled && (err == nil || !strings.Contains(err.Error(), "-tags xla")) {
		t.Errorf("Configure(xla:cuda) in a pure-Go build: got %v, want a hint about -tags xla", err)
	}
	if state.source != "GOMLX_BACKEND" {
		if err := Configure("go:parallelism=3"); err == nil || !strings.Contains(err.Error(), "already created") {
			t.Errorf("Configure after creation with another config: got %v, want 'already created'", err)
		}
		if err := Configure(state.config); err != nil {
			t.Errorf("Configure with the current config: %v", err)
		}
	}
}
