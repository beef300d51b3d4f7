package cocoins

// The mapping network f: R^c -> R^d (paper eq. 3): an n-layer MLP that turns a latent code
// z ~ N(0, I_c) into a pseudo-word w, one vector per text encoder of the generator (SDXL has
// two). Its output is rescaled to the per-dimension mean and standard deviation of the
// vocabulary's token embeddings, which keeps pseudo-words in distribution.
//
// A trained mapper is saved with its config, so any later run maps the same z — given as a
// vector or as an integer code seed — to the same pseudo-word.

import (
	"encoding/json"
	"fmt"
	"strings"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// MapperScope is the context scope of the mapping network's variables.
const MapperScope = "mapper"

// MapperConfig describes a mapping network.
type MapperConfig struct {
	CodeDim    int         `json:"code_dim"`   // c, the size of z
	Layers     int         `json:"layers"`     // n, the number of dense layers (≥ 1)
	Width      int         `json:"width"`      // hidden width
	Activation string      `json:"activation"` // relu, gelu, silu, leaky_relu, tanh
	Rescale    string      `json:"rescale"`    // "vocab": per-dimension vocabulary mean/std; "none"
	OutDims    []int       `json:"out_dims"`   // d per text encoder
	VocabMean  [][]float32 `json:"vocab_mean,omitempty"`
	VocabStd   [][]float32 `json:"vocab_std,omitempty"`
	// StdScale multiplies the vocabulary's standard deviation given to pseudo-words (rescale
	// vocab): below 1 keeps them nearer the mean word, 0 makes every pseudo-word the mean word.
	// A mapper saved before the field existed loads with 1 (LoadMapper).
	StdScale float64 `json:"std_scale"`
}

// Validate checks the config, naming the bad field.
func (c MapperConfig) Validate() error {
	switch {
	case c.CodeDim < 1:
		return fmt.Errorf("mapper: code_dim must be ≥ 1, got %d", c.CodeDim)
	case c.Layers < 1:
		return fmt.Errorf("mapper: layers must be ≥ 1, got %d", c.Layers)
	case c.Layers > 1 && c.Width < 1:
		return fmt.Errorf("mapper: width must be ≥ 1, got %d", c.Width)
	case c.StdScale < 0:
		return fmt.Errorf("mapper: std_scale must be ≥ 0, got %g", c.StdScale)
	case len(c.OutDims) == 0:
		return fmt.Errorf("mapper: no output dimensions (one per text encoder)")
	}
	if _, err := activation(c.Activation); err != nil {
		return err
	}
	switch c.Rescale {
	case "none":
	case "vocab":
		if len(c.VocabMean) != len(c.OutDims) || len(c.VocabStd) != len(c.OutDims) {
			return fmt.Errorf("mapper: rescale vocab needs vocabulary statistics for each of the %d encoders", len(c.OutDims))
		}
		for k, d := range c.OutDims {
			if len(c.VocabMean[k]) != d || len(c.VocabStd[k]) != d {
				return fmt.Errorf("mapper: encoder %d: vocabulary statistics have %d/%d values, want %d", k, len(c.VocabMean[k]), len(c.VocabStd[k]), d)
			}
		}
	default:
		return fmt.Errorf("mapper: rescale must be vocab or none, got %q", c.Rescale)
	}
	return nil
}

func activation(name string) (func(*Node) *Node, error) {
	switch name {
	case "relu":
		return activations.Relu, nil
	case "gelu":
		return activations.GeluApproximate, nil
	case "silu", "swish":
		return activations.Swish, nil
	case "leaky_relu":
		return activations.LeakyRelu, nil
	case "tanh":
		return Tanh, nil
	}
	return nil, fmt.Errorf("mapper: unknown activation %q (relu, gelu, silu, leaky_relu, tanh)", name)
}

// MappingNetwork adds f to the graph: z [B, c] -> one pseudo-word w [B, d_k] per encoder
// (eq. 3). Variables live under ctx.In(MapperScope).
func MappingNetwork(ctx *context.Context, cfg MapperConfig, z *Node) []*Node {
	ctx = ctx.In(MapperScope)
	act, err := activation(cfg.Activation)
	if err != nil {
		panic(err)
	}
	h := z
	for l := 0; l < cfg.Layers-1; l++ {
		h = act(layers.Dense(ctx.Inf("layer_%d", l), h, true, cfg.Width))
	}
	out := make([]*Node, len(cfg.OutDims))
	for k, d := range cfg.OutDims {
		w := layers.Dense(ctx.Inf("out_%d", k), h, true, d)
		if cfg.Rescale == "vocab" {
			// Standardise each pseudo-word across its dimensions, then give it the vocabulary's
			// per-dimension statistics: w = mean_vocab + s * std_vocab * (u - mean(u)) / std(u).
			u := standardize(w)
			g := z.Graph()
			mean := Const(g, [][]float32{cfg.VocabMean[k]})
			std := Const(g, [][]float32{cfg.VocabStd[k]})
			if s := cfg.StdScale; s != 1 {
				std = MulScalar(std, s)
			}
			w = Add(mean, Mul(std, u))
		}
		out[k] = w
	}
	return out
}

// Code returns the latent code z of an integer code seed: the same seed always gives the
// same z (a standard normal vector of size c).
func Code(seed uint64, c int) []float32 {
	return diffusion.GaussianNoise(seed, codeStream, c)
}

// codeStream separates code draws from noise draws made with the same seed.
const codeStream = 0xc0de

// Mapper is a trained mapping network ready to map codes to pseudo-words on the host.
type Mapper struct {
	Config MapperConfig
	ctx    *context.Context
	exec   *context.Exec
}

// MapperConfigFile names a mapper's config in errors: the train stage stores it, with the
// weights, in a mapper row.
const MapperConfigFile = "mapper.json"

// MarshalMapper returns a mapper as bytes: its config (JSON) and the checkpoint of the
// variables under MapperScope. The train stage stores both in its mapper row; LoadMapper reads
// them back.
func MarshalMapper(ctx *context.Context, cfg MapperConfig) (config, weights []byte, err error) {
	only := context.New()
	n := 0
	for v := range ctx.IterVariables() {
		if !strings.HasPrefix(v.Scope(), context.ScopeSeparator+MapperScope) {
			continue
		}
		val, err := v.Value()
		if err != nil {
			return nil, nil, fmt.Errorf("mapper: save %s: %w", v.ScopeAndName(), err)
		}
		clone, err := val.Clone()
		if err != nil {
			return nil, nil, fmt.Errorf("mapper: save %s: %w", v.ScopeAndName(), err)
		}
		only.InAbsPath(v.Scope()).VariableWithValue(v.Name(), clone)
		n++
	}
	if n == 0 {
		return nil, nil, fmt.Errorf("mapper: no variables under scope %q to save", MapperScope)
	}
	weights, err = engine.Marshal(only, map[string]string{"kind": "cocoins-mapper"})
	if err != nil {
		return nil, nil, fmt.Errorf("mapper: %w", err)
	}
	config, err = json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	return config, weights, nil
}

// LoadMapper reads a mapper written by MarshalMapper into ctx (its variables under
// MapperScope, frozen) and returns it; name says where config and weights came from in errors.
func LoadMapper(ctx *context.Context, config, weights []byte, name string) (*Mapper, error) {
	cfg := MapperConfig{StdScale: 1} // a config saved before std_scale existed has none
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("mapper: %s: %s: %w", name, MapperConfigFile, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", name, MapperConfigFile, err)
	}
	if _, err := engine.LoadBytes(ctx, weights, name+" (weights)"); err != nil {
		return nil, fmt.Errorf("mapper: %w", err)
	}
	for v := range ctx.In(MapperScope).IterVariablesInScope() {
		v.SetTrainable(false)
	}
	return &Mapper{Config: cfg, ctx: ctx}, nil
}

// Map returns the pseudo-words of codes z (each of size c): words[i][k] is the vector of code i
// for encoder k.
func (m *Mapper) Map(z [][]float32) ([][][]float32, error) {
	if len(z) == 0 {
		return nil, nil
	}
	flat := make([]float32, 0, len(z)*m.Config.CodeDim)
	for i, v := range z {
		if len(v) != m.Config.CodeDim {
			return nil, fmt.Errorf("mapper: code %d has %d values, want %d", i, len(v), m.Config.CodeDim)
		}
		flat = append(flat, v...)
	}
	if m.exec == nil {
		b, err := engine.Backend()
		if err != nil {
			return nil, err
		}
		cfg := m.Config
		m.exec, err = context.NewExec(b, m.ctx.Reuse(), func(ctx *context.Context, z *Node) []*Node {
			return MappingNetwork(ctx, cfg, z)
		})
		if err != nil {
			return nil, err
		}
	}
	outs, err := m.exec.Exec(tensors.FromFlatDataAndDimensions(flat, len(z), m.Config.CodeDim))
	if err != nil {
		return nil, fmt.Errorf("mapper: %w", err)
	}
	words := make([][][]float32, len(z))
	for k, o := range outs {
		d := m.Config.OutDims[k]
		vals := tensors.MustCopyFlatData[float32](o)
		for i := range z {
			if words[i] == nil {
				words[i] = make([][]float32, len(outs))
			}
			words[i][k] = vals[i*d : (i+1)*d]
		}
		o.FinalizeAll()
	}
	return words, nil
}

// standardize gives each row of x [B, d] zero mean and unit variance across its d values.
func standardize(x *Node) *Node {
	mean := ReduceAndKeep(x, ReduceMean, -1)
	c := Sub(x, mean)
	variance := ReduceAndKeep(Mul(c, c), ReduceMean, -1)
	return Div(c, Sqrt(AddScalar(variance, 1e-5)))
}
