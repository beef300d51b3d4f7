package cocoins

import (
	"math"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// trained returns a context with a freshly initialised mapper of cfg.
func trained(t *testing.T, cfg MapperConfig) *context.Context {
	t.Helper()
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	// A fixed seed: GoMLX otherwise draws initial weights from a cryptographic seed, and a test
	// whose tolerance depends on the weights (TestRescaleVocab: the 1e-5 in standardize counts
	// more when a row's spread is small) would pass on one machine and fail on the next.
	ctx.SetParam(context.ParamInitialSeed, int64(9))
	if _, err := context.ExecOnceN(b, ctx, func(ctx *context.Context, z *graph.Node) []*graph.Node {
		return MappingNetwork(ctx, cfg, z)
	}, [][]float32{Code(9, cfg.CodeDim)}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

func TestMarshalLoadRoundTrip(t *testing.T) {
	cfg := MapperConfig{CodeDim: 4, Layers: 2, Width: 8, Activation: "gelu", Rescale: "none", OutDims: []int{3, 5}}
	src := trained(t, cfg)
	config, weights, err := MarshalMapper(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &Mapper{Config: cfg, ctx: src}
	b, err := LoadMapper(context.New(), config, weights, "test row")
	if err != nil {
		t.Fatal(err)
	}
	z := [][]float32{Code(1, 4), Code(2, 4)}
	wa, err := a.Map(z)
	if err != nil {
		t.Fatal(err)
	}
	wb, err := b.Map(z)
	if err != nil {
		t.Fatal(err)
	}
	for i := range wa {
		for k := range wa[i] {
			if len(wa[i][k]) != cfg.OutDims[k] {
				t.Fatalf("code %d encoder %d: %d values, want %d", i, k, len(wa[i][k]), cfg.OutDims[k])
			}
			for j := range wa[i][k] {
				if wa[i][k][j] != wb[i][k][j] {
					t.Fatalf("code %d encoder %d value %d: %v before Marshal, %v after Load", i, k, j, wa[i][k][j], wb[i][k][j])
				}
			}
		}
	}
	for v := range b.ctx.In(MapperScope).IterVariablesInScope() {
		if v.Trainable {
			t.Errorf("loaded variable %s is trainable, want frozen", v.ScopeAndName())
		}
	}
}

func TestLoadErrorsNameTheSource(t *testing.T) {
	cfg := MapperConfig{CodeDim: 2, Layers: 1, Activation: "relu", Rescale: "none", OutDims: []int{3}}
	config, weights, err := MarshalMapper(trained(t, cfg), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		config, weights []byte
		want            string
	}{
		"broken config":     {[]byte("{"), weights, "mapper.json"},
		"invalid config":    {[]byte(`{"code_dim":0}`), weights, "code_dim"},
		"truncated weights": {config, weights[:len(weights)/2], "runs/x/train/mapper"},
	}
	for name, c := range cases {
		_, err := LoadMapper(context.New(), c.config, c.weights, "runs/x/train/mapper")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
}

// TestRescaleVocab: with rescale vocab every pseudo-word, measured in the vocabulary's units
// ((w − mean) / std per dimension), has mean 0 and variance std_scale² across its dimensions.
func TestRescaleVocab(t *testing.T) {
	mean := []float32{1, -2, 0.5, 0, 3, -1}
	std := []float32{0.5, 2, 1, 0.1, 4, 1}
	for _, scale := range []float64{0, 1, 0.5} {
		cfg := MapperConfig{CodeDim: 4, Layers: 2, Width: 8, Activation: "gelu", Rescale: "vocab", OutDims: []int{6},
			VocabMean: [][]float32{mean}, VocabStd: [][]float32{std}, StdScale: scale}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		m := &Mapper{Config: cfg, ctx: trained(t, cfg).Reuse()}
		codes := [][]float32{Code(1, 4), Code(2, 4), Code(3, 4)}
		words, err := m.Map(codes)
		if err != nil {
			t.Fatal(err)
		}
		wantVar := scale * scale // std_scale 0: every pseudo-word is the mean word
		for i, w := range words {
			var sum, sq float64
			for d, v := range w[0] {
				u := float64((v - mean[d]) / std[d])
				sum += u
				sq += u * u
			}
			n := float64(len(mean))
			mu := sum / n
			if v := sq/n - mu*mu; math.Abs(mu) > 1e-4 || math.Abs(v-wantVar) > 1e-3*wantVar+1e-4 {
				t.Errorf("std_scale %g, code %d: mean %g, variance %g in vocabulary units, want 0 and %g", scale, i, mu, v, wantVar)
			}
		}
	}
	bad := MapperConfig{CodeDim: 1, Layers: 1, Activation: "relu", Rescale: "none", OutDims: []int{1}, StdScale: -1}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "std_scale") {
		t.Errorf("negative std_scale: got %v, want an error naming std_scale", err)
	}
}

// TestLoadMapperWithoutStdScale: a mapper saved before std_scale existed (its config has no
// such field) loads with std_scale 1, the scale it was trained with; one saved with 0 keeps 0.
func TestLoadMapperWithoutStdScale(t *testing.T) {
	cfg := MapperConfig{CodeDim: 2, Layers: 1, Activation: "relu", Rescale: "none", OutDims: []int{3}}
	_, weights, err := MarshalMapper(trained(t, cfg), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for config, want := range map[string]float64{
		`{"code_dim":2,"layers":1,"width":0,"activation":"relu","rescale":"none","out_dims":[3]}`:                 1,
		`{"code_dim":2,"layers":1,"width":0,"activation":"relu","rescale":"none","out_dims":[3],"std_scale":0}`:   0,
		`{"code_dim":2,"layers":1,"width":0,"activation":"relu","rescale":"none","out_dims":[3],"std_scale":0.5}`: 0.5,
	} {
		m, err := LoadMapper(context.New(), []byte(config), weights, "test row")
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.StdScale != want {
			t.Errorf("%s: std_scale %g, want %g", config, m.Config.StdScale, want)
		}
	}
}
