package sdxl

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// ProvidersEnv names the environment variable that chooses the ONNX Runtime execution providers
// the family runs its sessions with when Options.Providers is empty (see ort.ProvidersEnv).
const ProvidersEnv = ort.ProvidersEnv

// Options configure how an export runs.
type Options struct {
	// Providers are the ONNX Runtime execution providers of every session (the VAE, the text
	// encoders and the UNet when sampling); empty means those of ProvidersEnv, else CPU.
	Providers []ort.Provider
	// Threads is ONNX Runtime's intra-op thread count (0: its default, one per core).
	Threads int
}

// withEnv fills Providers from ProvidersEnv when they are empty.
func (o Options) withEnv() (Options, error) {
	if len(o.Providers) > 0 {
		return o, nil
	}
	ps, err := ort.EnvProviders()
	if err != nil {
		return o, fmt.Errorf("sdxl: %w", err)
	}
	o.Providers = ps
	return o, nil
}

// want is an expected tensor input or output: its name, dtype, rank and the sizes some
// dimensions must have (-1: any).
type want struct {
	name  string
	dtype string
	rank  int
	dim   int // index of the dimension with a fixed size, -1 for none
	size  int64
}

// openSession opens the model at path with opt, or, when model is not nil, that rewritten
// graph of it (its external data beside path), and checks it has the inputs wants. A provider
// that cannot load gets an error that says what to do.
func openSession(path string, model []byte, opt Options, wants []want) (*ort.Session, error) {
	o := ort.Options{Providers: opt.Providers, IntraOpThreads: opt.Threads}
	var s *ort.Session
	var err error
	if model == nil {
		s, err = ort.Open(path, o)
	} else {
		s, err = ort.OpenBytes(path, model, filepath.Dir(path), o)
	}
	if err != nil {
		return nil, providerHint(err)
	}
	if err := checkInputs(path, s.Inputs(), wants); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// providerHint adds the fix to an execution provider error.
func providerHint(err error) error {
	if strings.Contains(err.Error(), "execution provider unavailable") {
		return fmt.Errorf("%w (choose providers with %s, e.g. %s=cpu; for CUDA install the GPU build of ONNX Runtime: bash tools/install-ort.sh --gpu)", err, ProvidersEnv, ProvidersEnv)
	}
	return err
}

// checkInputs compares a session's inputs with what the family feeds.
func checkInputs(path string, got []ort.TensorInfo, wants []want) error {
	for _, w := range wants {
		var in *ort.TensorInfo
		for i := range got {
			if got[i].Name == w.name {
				in = &got[i]
			}
		}
		if in == nil {
			return fmt.Errorf("%s: no input %s (inputs: %s)", path, w.name, describe(got))
		}
		if err := checkTensor(path, "input", *in, w); err != nil {
			return err
		}
	}
	return nil
}

// checkTensor compares one declared tensor with what is wanted.
func checkTensor(path, what string, t ort.TensorInfo, w want) error {
	if t.DType != w.dtype {
		if t.DType == "float16" || t.DType == "bfloat16" {
			return fmt.Errorf("%s: %s %s is %s: cocoflow runs SDXL in float32; export with --dtype fp32 (optimum-cli's default; SDXL's VAE overflows in float16 anyway)", path, what, t.Name, t.DType)
		}
		return fmt.Errorf("%s: %s %s is %s, want %s", path, what, t.Name, t.DType, w.dtype)
	}
	if t.Shape != nil && len(t.Shape) != w.rank {
		return fmt.Errorf("%s: %s %s has shape %v, want rank %d", path, what, t.Name, t.Shape, w.rank)
	}
	if t.Shape != nil && w.dim >= 0 && t.Shape[w.dim] >= 0 && t.Shape[w.dim] != w.size {
		return fmt.Errorf("%s: %s %s has shape %v, want %d at dimension %d", path, what, t.Name, t.Shape, w.size, w.dim)
	}
	return nil
}

// hasTensor reports whether ts has a float32 tensor name with size at dimension 1.
func hasTensor(ts []ort.TensorInfo, name string, size int) bool {
	for _, t := range ts {
		if t.Name == name {
			return t.DType == "float32" && (t.Shape == nil || len(t.Shape) > 1 && (t.Shape[1] < 0 || t.Shape[1] == int64(size)))
		}
	}
	return false
}

// describe lists tensors as "name dtype[shape]".
func describe(ts []ort.TensorInfo) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s %s%v", t.Name, t.DType, t.Shape)
	}
	return strings.Join(parts, ", ")
}
