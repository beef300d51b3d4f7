package sdxl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// rewriteModel decodes the model at path, lets edit change it and writes it back.
func rewriteModel(t *testing.T, path string, edit func(m *onnxgraph.Model)) {
	t.Helper()
	m, err := onnxgraph.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	data, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Bad exports fail at load with an error that names the file and says what to do.
func TestBadExports(t *testing.T) {
	initORT(t)
	cases := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   []string
	}{
		{"missing component folder", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, "text_encoder_2"))
		}, []string{"text_encoder_2/", "optimum-cli export onnx"}},
		{"missing model index", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "model_index.json"))
		}, []string{"model_index.json is missing", "optimum-cli export onnx"}},
		{"a UNet with another signature", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "vae_decoder", "model.onnx"), filepath.Join(dir, "unet", "model.onnx"))
		}, []string{filepath.Join("unet", "model.onnx"), "no input sample", "not an SDXL UNet export"}},
		{"a UNet whose states are too narrow", func(t *testing.T, dir string) {
			rewriteModel(t, filepath.Join(dir, "unet", "model.onnx"), func(m *onnxgraph.Model) {
				v := findValue(m.Graph.Inputs, unetStates)
				dims, _ := v.Shape()
				dims[2].Value = 2048
				v.Type = onnxgraph.NewTensorType(onnxgraph.Float, dims...)
			})
		}, []string{"encoder_hidden_states", "want 80 at dimension 2"}},
		{"an fp16 export", func(t *testing.T, dir string) {
			rewriteModel(t, filepath.Join(dir, "unet", "model.onnx"), func(m *onnxgraph.Model) {
				if err := findValue(m.Graph.Inputs, unetSample).SetElemType(onnxgraph.Float16); err != nil {
					t.Fatal(err)
				}
			})
		}, []string{"sample is float16", "--dtype fp32"}},
		{"a truncated model.onnx_data", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "unet", "model.onnx_data"), 100000); err != nil {
				t.Fatal(err)
			}
		}, []string{filepath.Join("unet", "model.onnx_data") + " is 100000 bytes", "truncated", "download or export it again"}},
		{"a missing model.onnx_data", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "unet", "model.onnx_data"))
		}, []string{"model.onnx_data, which is missing", "copy the whole component folder"}},
		{"a text encoder without hidden states", func(t *testing.T, dir string) {
			rewriteModel(t, filepath.Join(dir, "text_encoder", "model.onnx"), func(m *onnxgraph.Model) {
				m.Graph.Outputs = m.Graph.Outputs[:2]
				m.Graph.Prune()
			})
		}, []string{filepath.Join("text_encoder", "model.onnx"), "no output hidden_states.2", "output_hidden_states"}},
		{"a text encoder without input_ids", func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, "vae_encoder", "model.onnx"), filepath.Join(dir, "text_encoder", "model.onnx"))
		}, []string{"no input input_ids", "not a transformers CLIP text encoder export"}},
		{"different tokenizers", func(t *testing.T, dir string) {
			f := filepath.Join(dir, "tokenizer_2", "merges.txt")
			data, _ := os.ReadFile(f)
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			os.WriteFile(f, []byte(strings.Join(lines[:len(lines)-1], "\n")+"\n"), 0o644) // one merge fewer
		}, []string{"tokenizer_2", "merges.txt differs"}},
		{"the refiner", func(t *testing.T, dir string) {
			f := filepath.Join(dir, "unet", "config.json")
			data, _ := os.ReadFile(f)
			os.WriteFile(f, []byte(strings.Replace(string(data), `"requires_aesthetics_score": false`, `"requires_aesthetics_score": true`, 1)), 0o644)
		}, []string{"refiner"}},
		{"another schedule", func(t *testing.T, dir string) {
			f := filepath.Join(dir, "scheduler", "scheduler_config.json")
			data, _ := os.ReadFile(f)
			os.WriteFile(f, []byte(strings.Replace(string(data), `"beta_end": 0.012`, `"beta_end": 0.02`, 1)), 0o644)
		}, []string{"scheduler_config.json", "beta_schedule \"scaled_linear\" from 0.00085 to 0.02"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyFixture(t)
			c.break_(t, dir)
			_, err := Load(dir, Options{})
			if err == nil {
				t.Fatal("Load accepted it")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			// Check (validation, no weights) finds the same, except in the text encoders'
			// graphs, which only Load reads.
			cerr := Check(dir)
			if strings.HasPrefix(c.name, "a text encoder") {
				if cerr != nil {
					t.Errorf("Check: %v, want nil (it does not read the text encoders' graphs)", cerr)
				}
				return
			}
			if cerr == nil || cerr.Error() != err.Error() {
				t.Errorf("Check: %v, want Load's error %q", cerr, err)
			}
		})
	}
	if err := Check(copyFixture(t)); err != nil {
		t.Errorf("Check of the fixture: %v", err)
	}
	if _, err := Load("", Options{}); err == nil || !strings.Contains(err.Error(), "no built-in weights") {
		t.Errorf("empty model_dir: %v", err)
	}
}

// A provider that cannot load fails with the provider's name and the fix; so does a bad
// COCOFLOW_ORT_PROVIDERS.
func TestProviderErrors(t *testing.T) {
	initORT(t)
	g, err := Load(fixtureDir, Options{Providers: []ort.Provider{{Name: ort.CUDA}, {Name: ort.CPU}}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	s, err := family.NewSampler(g, family.SampleOptions{Steps: 1, Guidance: 1, BatchSize: 1})
	if err == nil { // a GPU build of ONNX Runtime on a CUDA machine
		s.Close()
		t.Log("the CUDA execution provider loaded: the unavailable-provider error is not shown here")
	} else {
		for _, w := range []string{"cuda execution provider unavailable", ProvidersEnv, "install-ort.sh --gpu"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}
	t.Setenv(ProvidersEnv, "cuda:x")
	if _, err := Load(fixtureDir, Options{}); err == nil || !strings.Contains(err.Error(), ProvidersEnv) {
		t.Errorf("bad %s: %v", ProvidersEnv, err)
	}
	t.Setenv(ProvidersEnv, "cuda,cpu")
	spec, err := family.Lookup("sdxl")
	if err != nil {
		t.Fatal(err)
	}
	if ae, err := spec.Autoencoder(fixtureDir); err != nil && !strings.Contains(err.Error(), "cuda execution provider unavailable") {
		t.Errorf("autoencoder with %s=cuda,cpu: %v", ProvidersEnv, err)
	} else if err == nil {
		ae.(*Autoencoder).Close()
	}
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
