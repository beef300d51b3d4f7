package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cocoflow-cli")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "cocoflow")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func cocoflow(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFailuresAreOneLineWithExitCodes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "broken.yaml"), "name: x\nstages:\n  - id: a\n    uses: ingest\n    with: {identities: lots}\n")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "broken.yaml"}, 1, `broken.yaml:5:24: stage "a": parameter "identities": want an integer, got "lots"`},
		{[]string{"validate", "broken.yaml"}, 1, "1 of 1 configs invalid"},
		{[]string{"run", "missing.yaml"}, 1, "read config: open missing.yaml: no such file or directory"},
		{[]string{"run"}, 2, "want exactly one config file"},
		{[]string{"inspect", "nowhere"}, 1, "nowhere: no such file"},
		{[]string{"run", "--bogus", "x.yaml"}, 2, "flag provided but not defined: -bogus"},
		{[]string{"stages", "nope"}, 1, `no stage kind "nope"`},
	}
	for _, c := range cases {
		_, stderr, code := cocoflow(t, dir, c.args...)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, c.code, stderr)
		}
		last := strings.TrimSpace(stderr)
		if i := strings.LastIndex(last, "\n"); i >= 0 {
			last = last[i+1:]
		}
		if !strings.HasPrefix(last, "cocoflow: ") || !strings.Contains(last, c.want) {
			t.Errorf("%v: last stderr line %q, want cocoflow: ...%s", c.args, last, c.want)
		}
	}
}

func TestStagesListsEveryKindWithParameters(t *testing.T) {
	out, _, code := cocoflow(t, t.TempDir(), "stages")
	if code != 0 {
		t.Fatal("stages failed")
	}
	for _, want := range []string{"ingest (v2, shard-parallel)", "caption", "mask", "encode", "triplets", "images_per_identity", "default synthfaces"} {
		if !strings.Contains(out, want) {
			t.Fatalf("stages output lacks %q", want)
		}
	}
	out, _, _ = cocoflow(t, t.TempDir(), "stages", "triplets")
	if !strings.Contains(out, "schema of triplets") || !strings.Contains(out, "p1_ids") {
		t.Fatalf("stages triplets lacks the schema:\n%s", out)
	}
}

func TestTokenizeWithTheTinyVocabulary(t *testing.T) {
	vocab, err := filepath.Abs("../../models/family/tiny/vocab.txt")
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := cocoflow(t, t.TempDir(), "tokenize", "--vocab", vocab, "a man with blond hair.", "a zyzzyva.")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 JSON lines, got %q", out)
	}
	var man, unknown struct {
		Text string  `json:"text"`
		IDs  []int32 `json:"ids"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &man); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &unknown); err != nil {
		t.Fatal(err)
	}
	// BOS a man with blond hair . EOS; the unknown word becomes <unk> (id 3).
	if len(man.IDs) != 8 || man.IDs[0] != 1 || man.IDs[7] != 2 {
		t.Errorf("ids of %q: %v, want BOS, 6 words, EOS", man.Text, man.IDs)
	}
	if len(unknown.IDs) != 5 || unknown.IDs[2] != 3 {
		t.Errorf("ids of %q: %v, want <unk> (3) for the unknown word", unknown.Text, unknown.IDs)
	}
	out, _, _ = cocoflow(t, t.TempDir(), "tokenize", "--vocab", vocab, "--max-length", "4", "a man with blond hair.")
	if !strings.Contains(out, `"ids":[1,`) || strings.Count(out, ",") != 4 {
		t.Errorf("--max-length 4: %q, want 4 ids ending with EOS", out)
	}
}

const prepConfig = `name: k
seed: 2
stages:
  - id: ingest
    uses: ingest
    with: {identities: 60, images_per_identity: 8, shard_size: 8}
  - id: caption
    uses: caption
    inputs: {images: ingest}
  - id: mask
    uses: mask
    inputs: {images: ingest}
`

func shardBytes(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".parquet") {
			data, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(root, p)
			out[rel] = string(data)
		}
		return nil
	})
	return out
}

// TestKillNineThenRerunGivesSameBytes kills a run with SIGKILL part-way and checks that a rerun
// completes with exactly the bytes of an uninterrupted run.
func TestKillNineThenRerunGivesSameBytes(t *testing.T) {
	clean := t.TempDir()
	writeFile(t, filepath.Join(clean, "prep.yaml"), prepConfig)
	if _, stderr, code := cocoflow(t, clean, "run", "prep.yaml"); code != 0 {
		t.Fatalf("clean run: %s", stderr)
	}
	want := shardBytes(t, filepath.Join(clean, "runs"))

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "prep.yaml"), prepConfig)
	cmd := exec.Command(bin, "run", "--workers", "1", "prep.yaml")
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill as soon as some, but not all, image shards exist.
	shardsDir := filepath.Join(dir, "runs", "k", "ingest", "images")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(shardsDir, "part-*.parquet")); len(m) >= 2 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	done, _ := filepath.Glob(filepath.Join(shardsDir, "part-*.parquet"))
	if len(done) >= 60 {
		t.Fatalf("the run finished before it could be killed (%d shards); make the config bigger", len(done))
	}
	if _, err := os.Stat(filepath.Join(shardsDir, "_manifest.json")); err == nil {
		t.Fatal("a killed stage left a manifest")
	}
	// The killed run's lease is still there; its process is gone, so the rerun takes it over.
	if _, err := os.Stat(filepath.Join(dir, "runs", "k", "_lease.json")); err != nil {
		t.Fatalf("the killed run left no lease: %v", err)
	}
	_, stderr, code := cocoflow(t, dir, "run", "prep.yaml")
	if code != 0 {
		t.Fatalf("rerun after kill: %s", stderr)
	}
	if !strings.Contains(stderr, "taking over a stale lease") || !strings.Contains(stderr, "is gone") {
		t.Errorf("rerun after kill should say it took over the dead run's lease:\n%s", stderr)
	}
	got := shardBytes(t, filepath.Join(dir, "runs"))
	if len(got) != len(want) {
		t.Fatalf("rerun has %d shards, clean run %d", len(got), len(want))
	}
	for name, data := range want {
		if got[name] != data {
			t.Fatalf("%s differs from the uninterrupted run", name)
		}
	}
	_, stderr, _ = cocoflow(t, dir, "run", "prep.yaml")
	if !strings.Contains(stderr, "nothing to do") {
		t.Fatalf("second rerun should say nothing to do; stderr:\n%s", stderr)
	}
}
