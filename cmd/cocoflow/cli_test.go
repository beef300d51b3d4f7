package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const smallConfig = `name: small
stages:
  - id: ingest
    uses: ingest
    with: {identities: 2, images_per_identity: 2, shard_size: 2}
`

func TestFlagsAfterArguments(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), smallConfig)
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml"); code != 0 {
		t.Fatal(stderr)
	}
	// --force after the config: the stage runs again instead of "want exactly one config file".
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml", "--force", "--workers", "1"); code != 0 || !strings.Contains(stderr, "msg=running stage=ingest") {
		t.Fatalf("run c.yaml --force: exit %d\n%s", code, stderr)
	}
	// A global flag after the command and its argument.
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml", "-q"); code != 0 || strings.Contains(stderr, "level=INFO") {
		t.Fatalf("run c.yaml -q: exit %d\n%s", code, stderr)
	}
	out, stderr, code := cocoflow(t, dir, "inspect", "runs/small/ingest/images", "-n", "1")
	if code != 0 || !strings.Contains(out, "row 0:") || strings.Contains(out, "row 1:") {
		t.Fatalf("inspect DIR -n 1: exit %d, want exactly one row\n%s%s", code, out, stderr)
	}
	_, stderr, code = cocoflow(t, dir, "run", "c.yaml", "other.yaml")
	if code != 2 || !strings.Contains(stderr, "want exactly one config file, got 2 arguments (c.yaml other.yaml)") {
		t.Fatalf("two configs: exit %d\n%s", code, stderr)
	}
}

func TestVersionNamesTheEngines(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--version"}, {"version"}} {
		out, stderr, code := cocoflow(t, dir, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		for _, want := range []string{"cocoflow ", "go go1.", "github.com/gomlx/gomlx v", "\nonnxruntime ", "\ngomlx_backend backend="} {
			if !strings.Contains(out, want) {
				t.Errorf("%v lacks %q:\n%s", args, want, out)
			}
		}
		if os.Getenv("COCOFLOW_ORT_LIB") != "" && !strings.Contains(out, "\nonnxruntime 1.") {
			t.Errorf("%v: ONNX Runtime version missing although COCOFLOW_ORT_LIB is set:\n%s", args, out)
		}
	}
	writeFile(t, filepath.Join(dir, "c.yaml"), smallConfig)
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml"); code != 0 {
		t.Fatal(stderr)
	}
	var rm struct {
		Build struct {
			Extra map[string]string `json:"extra"`
		} `json:"build"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "runs", "small", "_run.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rm); err != nil {
		t.Fatal(err)
	}
	if rm.Build.Extra["onnxruntime"] == "" || !strings.HasPrefix(rm.Build.Extra["gomlx_backend"], "backend=") {
		t.Fatalf("_run.json build.extra = %v, want onnxruntime and gomlx_backend", rm.Build.Extra)
	}
}

func TestEmptyConfigSaysSo(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "blank.yaml"), "\n# nothing yet\n")
	_, stderr, code := cocoflow(t, dir, "run", "blank.yaml")
	if code != 1 || !strings.Contains(stderr, "blank.yaml: empty config") || strings.Contains(stderr, "EOF") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestRunHelpGivesEachDefaultOnce(t *testing.T) {
	out, _, code := cocoflow(t, t.TempDir(), "run", "--help")
	if code != 0 {
		t.Fatal("run --help failed")
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Count(line, "(default") > 1 {
			t.Errorf("default given twice: %q", line)
		}
		if strings.Contains(line, "--workers") && !strings.HasSuffix(strings.TrimSpace(line), "(default: GOMAXPROCS)") {
			t.Errorf("--workers help: %q", line)
		}
	}
	for _, want := range []string{"--wait", "--verify", "--retry-failed", "--max-failed-share"} {
		if !strings.Contains(out, want) {
			t.Errorf("run --help lacks %s", want)
		}
	}
}

func TestInspectRunDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), smallConfig)
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml"); code != 0 {
		t.Fatal(stderr)
	}
	out, stderr, code := cocoflow(t, dir, "inspect", "runs/small")
	if code != 0 || !strings.Contains(out, "ingest/images") || !strings.Contains(out, "4 rows") || !strings.Contains(out, "complete") {
		t.Fatalf("inspect RUN_DIR: exit %d\n%s%s", code, out, stderr)
	}
}
