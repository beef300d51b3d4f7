package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestValidateKnowsWhatCanRun: validate (and run, before any stage starts) reports an unknown
// family or backend, a missing model folder and a model whose signature does not fit, each at
// the file:line:column of the YAML value.
func TestValidateKnowsWhatCanRun(t *testing.T) {
	fixture, err := filepath.Abs("../../models/family/sdxl/testdata/tiny-sdxl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	models := filepath.Join(dir, "models")
	if err := os.MkdirAll(models, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fixture, filepath.Join(models, "sdxl")); err != nil {
		t.Fatal(err)
	}
	// An export whose UNet is another model (the VAE decoder's graph in its place).
	misfit := filepath.Join(models, "misfit")
	copyTree(t, fixture, misfit)
	vae, err := os.ReadFile(filepath.Join(fixture, "vae_decoder", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(misfit, "unet", "model.onnx"), string(vae))
	t.Setenv("COCOFLOW_MODELS", models)

	gen := func(with string) string {
		return "name: v\nstages:\n  - id: gen\n    uses: generate\n    with:\n      prompts: [a man.]\n" + with
	}
	cases := []struct {
		name, config string
		args         []string
		want         string // "" means valid
	}{
		{"fixture export", gen("      family: sdxl\n      model_dir: ${COCOFLOW_MODELS}/sdxl\n"), nil, ""},
		{"unknown family", gen("      family: sdxxl\n"), nil, `c.yaml:7:15: stage "gen": family: unknown model family "sdxxl" (known: [sdxl tiny])`},
		{"unknown family by --set", gen(""), []string{"--set", "gen.family=sdxxl"}, `unknown model family "sdxxl"`},
		{"missing folder", gen("      family: sdxl\n      model_dir: ${COCOFLOW_MODELS}/nowhere\n"), nil, `c.yaml:8:18: stage "gen": model_dir: sdxl: model folder: stat ` + models + `/nowhere: no such file or directory`},
		{"unset variable", gen("      family: sdxl\n      model_dir: ${COCOFLOW_MODELZ}/sdxl\n"), nil, `c.yaml:8:18: stage "gen": parameter "model_dir": "${COCOFLOW_MODELZ}/sdxl" uses ${COCOFLOW_MODELZ}, which is not set in the environment`},
		{"signature misfit", gen("      family: sdxl\n      model_dir: ${COCOFLOW_MODELS}/misfit\n"), nil, `c.yaml:8:18: stage "gen": model_dir: sdxl: ` + misfit + `/unet/model.onnx: no input sample (inputs: latent_sample): not an SDXL UNet export`},
		{"tiny family, not a generator folder", gen("      model_dir: ${COCOFLOW_MODELS}/sdxl\n"), nil, `c.yaml:7:18: stage "gen": model_dir: tiny: want a generator folder (config.json, checkpoint.bin) as Save writes it`},
		{"missing dataset folder", "name: v\nstages:\n  - id: ingest\n    uses: ingest\n    with:\n      dataset: celeba\n      root: ${COCOFLOW_MODELS}/celeba\n", nil, `c.yaml:7:13: stage "ingest": root: dataset celeba: stat ` + models + `/celeba: no such file or directory`},
		{"captioner URL without a scheme", "name: v\nstages:\n  - id: ingest\n    uses: ingest\n  - id: caption\n    uses: caption\n    inputs: {images: ingest}\n    with:\n      backend: openai\n      base_url: localhost:8000/v1\n", nil, `c.yaml:10:17: stage "caption": base_url: captioner: OpenAIConfig.BaseURL: want an http(s) URL such as http://localhost:8000/v1, got "localhost:8000/v1"`},
		{"captioner key variable unset", "name: v\nstages:\n  - id: ingest\n    uses: ingest\n  - id: caption\n    uses: caption\n    inputs: {images: ingest}\n    with: {backend: openai, api_key_env: COCOFLOW_TEST_NO_KEY}\n", nil, `stage "caption": api_key_env: captioner: OpenAIConfig.APIKeyEnv: environment variable COCOFLOW_TEST_NO_KEY is unset or empty`},
		{"unknown caption backend", "name: v\nstages:\n  - id: ingest\n    uses: ingest\n  - id: caption\n    uses: caption\n    inputs: {images: ingest}\n    with: {backend: llava}\n", nil, `c.yaml:8:21: stage "caption": parameter "backend": want one of template, openai, got "llava"`},
		{"unknown mask backend", "name: v\nstages:\n  - id: ingest\n    uses: ingest\n  - id: mask\n    uses: mask\n    inputs: {images: ingest}\n    with: {backend: sam}\n", nil, `c.yaml:8:21: stage "mask": parameter "backend": want one of`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			writeFile(t, filepath.Join(dir, "c.yaml"), c.config)
			out, stderr, code := cocoflow(t, dir, append([]string{"validate", "c.yaml"}, c.args...)...)
			if c.want == "" {
				if code != 0 || !strings.HasPrefix(out, "ok  c.yaml") {
					t.Fatalf("exit %d, stdout %q, stderr %q; want ok", code, out, stderr)
				}
				return
			}
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Fatalf("validate: exit %d, stderr:\n%s\nwant it to contain\n%s", code, stderr, c.want)
			}
			// run stops with the same error before any stage starts: nothing is written.
			_, stderr, code = cocoflow(t, dir, append([]string{"run", "c.yaml"}, c.args...)...)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Fatalf("run: exit %d, stderr:\n%s", code, stderr)
			}
			if _, err := os.Stat(filepath.Join(dir, "runs")); !os.IsNotExist(err) {
				t.Fatalf("run wrote %s before failing (stat: %v)", filepath.Join(dir, "runs"), err)
			}
		})
	}
}
