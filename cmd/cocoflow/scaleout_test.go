package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cocoflow/cocoflow/pipeline"
)

// sliceConfig is small enough to run many times, with enough shards (16 per output) that
// several processes have temporaries in flight in one folder at once.
const sliceConfig = `name: s
seed: 5
stages:
  - id: ingest
    uses: ingest
    with: {identities: 8, images_per_identity: 4, shard_size: 2}
  - id: caption
    uses: caption
    inputs: {images: ingest}
  - id: mask
    uses: mask
    inputs: {images: ingest}
`

// result is one finished cocoflow process.
type result struct {
	args   []string
	stderr string
	code   int
}

// concurrently starts one cocoflow process per argument list in dir, all at once, and waits
// for them.
func concurrently(t *testing.T, dir string, argLists ...[]string) []result {
	t.Helper()
	out := make([]result, len(argLists))
	cmds := make([]*exec.Cmd, len(argLists))
	errBufs := make([]*bytes.Buffer, len(argLists))
	for i, args := range argLists {
		cmds[i] = exec.Command(bin, args...)
		cmds[i].Dir = dir
		errBufs[i] = &bytes.Buffer{}
		cmds[i].Stderr = errBufs[i]
	}
	for _, c := range cmds {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		err := c.Wait()
		out[i] = result{args: argLists[i], stderr: errBufs[i].String()}
		if ee, ok := err.(*exec.ExitError); ok {
			out[i].code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// datasetFiles returns every shard and the content hash of every manifest under root.
func datasetFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	files := shardBytes(t, root)
	manifests, _ := filepath.Glob(filepath.Join(root, "*", "*", "*", pipeline.ManifestFile))
	for _, m := range manifests {
		var man pipeline.Manifest
		data, _ := os.ReadFile(m)
		if err := json.Unmarshal(data, &man); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		rel, _ := filepath.Rel(root, m)
		files[rel] = man.ContentHash
	}
	return files
}

func sameFiles(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d shard files and manifests, a one-process run has %d", what, len(got), len(want))
	}
	for name, data := range want {
		if got[name] != data {
			t.Fatalf("%s: %s differs from a one-process run", what, name)
		}
	}
}

// noTemporaries fails if a temporary file is left anywhere under root.
func noTemporaries(t *testing.T, what, root string) {
	t.Helper()
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), ".tmp-") {
			t.Errorf("%s: temporary left behind: %s", what, p)
		}
		return nil
	})
}

func oneProcessRun(t *testing.T, config string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), config)
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml"); code != 0 {
		t.Fatalf("one-process run: %s", stderr)
	}
	return datasetFiles(t, filepath.Join(dir, "runs"))
}

// TestConcurrentSlicesOnOneWorkdir starts the slices of a run at once on one workdir, as a Slurm
// array or a Kubernetes Indexed Job on a shared filesystem does, one of them twice (a requeued
// task still running), then the final unsliced run: every time, the bytes of a one-process run.
func TestConcurrentSlicesOnOneWorkdir(t *testing.T) {
	want := oneProcessRun(t, sliceConfig)
	for rep := range 20 {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "c.yaml"), sliceConfig)
		slice := func(i int) []string {
			return []string{"run", "--shard-index", fmt.Sprint(i), "--shard-count", "3", "--workers", "2", "c.yaml"}
		}
		for _, r := range concurrently(t, dir, slice(0), slice(1), slice(2), slice(1)) {
			if r.code != 0 {
				t.Fatalf("repetition %d: %v exited %d:\n%s", rep, r.args, r.code, r.stderr)
			}
		}
		if _, stderr, code := cocoflow(t, dir, "run", "c.yaml"); code != 0 {
			t.Fatalf("repetition %d: final run: %s", rep, stderr)
		}
		what := fmt.Sprintf("repetition %d", rep)
		sameFiles(t, what, datasetFiles(t, filepath.Join(dir, "runs")), want)
		noTemporaries(t, what, dir)
	}
}

// TestConcurrentPlainRunsOnOneWorkdir starts three unsliced runs of one config at once: two
// wait for the run directory (--wait), one does not. The first to take the lease runs the
// stages; those that wait find them up to date; the one that does not wait either finds the
// directory free or refuses, saying who holds it. The bytes are a one-process run's.
func TestConcurrentPlainRunsOnOneWorkdir(t *testing.T) {
	want := oneProcessRun(t, sliceConfig)
	for rep := range 20 {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "c.yaml"), sliceConfig)
		waiting := []string{"run", "--wait", "c.yaml"}
		results := concurrently(t, dir, waiting, waiting, []string{"run", "c.yaml"})
		ran := 0
		for i, r := range results {
			switch {
			case r.code == 0 && strings.Contains(r.stderr, "msg=running"):
				ran++
			case r.code == 0 && strings.Contains(r.stderr, "nothing to do"):
			case i == 2 && r.code == 1 && strings.Contains(r.stderr, "is in use by another cocoflow run (pid ") &&
				strings.Contains(r.stderr, "--wait"):
			default:
				t.Fatalf("repetition %d: %v exited %d:\n%s", rep, r.args, r.code, r.stderr)
			}
		}
		if ran != 1 {
			t.Fatalf("repetition %d: %d runs ran stages, want exactly one (the others wait and find them done)", rep, ran)
		}
		what := fmt.Sprintf("repetition %d", rep)
		sameFiles(t, what, datasetFiles(t, filepath.Join(dir, "runs")), want)
		noTemporaries(t, what, dir)
		if _, err := os.Stat(filepath.Join(dir, "runs", "s", pipeline.LeaseFile)); !os.IsNotExist(err) {
			t.Fatalf("%s: the lease outlived the runs", what)
		}
	}
}

// captionServer is an OpenAI-compatible chat-completions server whose state the test sets:
// "500" answers HTTP 500 to everything; "up" answers every request with a caption naming the
// person; "picky" answers without a concept word for the first image it is asked about.
type captionServer struct {
	mode  atomic.Value
	calls atomic.Int64
	srv   *httptest.Server

	mu     sync.Mutex
	picked string // the image "picky" fails
}

func newCaptionServer(t *testing.T) *captionServer {
	s := &captionServer{}
	s.mode.Store("up")
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Messages []struct {
				Content []struct {
					Text     string `json:"text"`
					ImageURL *struct {
						URL string `json:"url"`
					} `json:"image_url"`
				} `json:"content"`
			} `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		s.calls.Add(1)
		image, prompt := req.Messages[0].Content[0].ImageURL.URL, req.Messages[0].Content[1].Text
		h := fnv.New32a()
		h.Write([]byte(image))
		switch mode := s.mode.Load(); {
		case mode == "500":
			http.Error(w, `{"error":{"message":"model is loading"}}`, http.StatusInternalServerError)
		case mode == "picky" && s.pick(image):
			fmt.Fprint(w, `{"choices":[{"message":{"content":"A friendly face."}}]}`)
		default:
			fmt.Fprintf(w, `{"choices":[{"message":{"content":"A person seen %d times (%d chars of prompt)."}}]}`, h.Sum32()%97, len(prompt))
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// pick reports whether image is the one image "picky" fails.
func (s *captionServer) pick(image string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.picked == "" {
		s.picked = image
	}
	return s.picked == image
}

func captionConfig(url string) string {
	return fmt.Sprintf(`name: c
stages:
  - id: ingest
    uses: ingest
    with: {identities: 4, images_per_identity: 2, shard_size: 2, classes: [person]}
  - id: caption
    uses: caption
    inputs: {images: ingest}
    with: {backend: openai, base_url: %q, model: llava, retries: 1, timeout: 5s, concurrency: 2}
`, url+"/v1")
}

type captionRow struct {
	ID    string `parquet:"id"`
	Text  string `parquet:"text"`
	Error string `parquet:"error"`
}

func captionErrors(t *testing.T, dir string) (rows, failed int, first string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "runs", "c", "caption", "captions", "part-*.parquet"))
	for _, f := range files {
		rs, err := pipeline.ReadFile[captionRow](f)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			rows++
			if r.Error != "" {
				if failed == 0 {
					first = r.Error
				}
				failed++
			}
		}
	}
	return rows, failed, first
}

// TestFailedCaptionsAreRetriedByAPlainRerun: a captioning server that answers 500 fails the
// stage (every row failed), naming the count and the first error; once it answers, a plain
// rerun asks again for those captions only, and a third run has nothing to do. Captions without
// the concept word are permanent failures: kept by a plain rerun, asked again with
// --retry-failed.
func TestFailedCaptionsAreRetriedByAPlainRerun(t *testing.T) {
	s := newCaptionServer(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), captionConfig(s.srv.URL))

	s.mode.Store("500")
	_, stderr, code := cocoflow(t, dir, "run", "c.yaml")
	if code != 1 || !strings.Contains(stderr, "16 of 16 rows failed") || !strings.Contains(stderr, "HTTP 500") ||
		!strings.Contains(stderr, "model is loading") || !strings.Contains(stderr, "a plain rerun retries the 16") {
		t.Fatalf("server down: exit %d, want 1 with the count, the first error and what a rerun does:\n%s", code, stderr)
	}
	if rows, failed, first := captionErrors(t, dir); rows != 16 || failed != 16 || !strings.HasPrefix(first, "transient: ") {
		t.Fatalf("server down: %d of %d rows failed (first %q): want 16 of 16, kept as transient", failed, rows, first)
	}

	s.mode.Store("up")
	s.calls.Store(0)
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml"); code != 0 {
		t.Fatalf("plain rerun after the server recovered: %s", stderr)
	}
	if n := s.calls.Load(); n != 16 {
		t.Fatalf("the rerun sent %d requests, want one per failed caption (16)", n)
	}
	if rows, failed, first := captionErrors(t, dir); rows != 16 || failed != 0 {
		t.Fatalf("after the rerun %d of %d rows failed (%s)", failed, rows, first)
	}
	if _, stderr, _ := cocoflow(t, dir, "run", "c.yaml"); !strings.Contains(stderr, "nothing to do") {
		t.Fatalf("third run:\n%s", stderr)
	}

	// Permanent failures.
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "c.yaml"), captionConfig(s.srv.URL))
	s.mode.Store("picky")
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml"); code != 0 {
		t.Fatalf("some captions without a concept: %s", stderr)
	}
	_, picky, first := captionErrors(t, dir)
	if picky != 2 || !strings.Contains(first, "names none of the concepts") || strings.HasPrefix(first, "transient") {
		t.Fatalf("picky server: %d failed rows (first %q), want the 2 captions of one image, permanent", picky, first)
	}
	s.mode.Store("up")
	if _, stderr, _ := cocoflow(t, dir, "run", "c.yaml"); !strings.Contains(stderr, "nothing to do") {
		t.Fatalf("a plain rerun must keep permanent failures:\n%s", stderr)
	}
	s.calls.Store(0)
	if _, stderr, code := cocoflow(t, dir, "run", "c.yaml", "--retry-failed"); code != 0 {
		t.Fatalf("--retry-failed: %s", stderr)
	}
	if n := s.calls.Load(); n != 2 {
		t.Fatalf("--retry-failed sent %d requests, want one per failed caption (2)", n)
	}
	if _, failed, _ := captionErrors(t, dir); failed != 0 {
		t.Fatalf("after --retry-failed %d rows failed", failed)
	}
}
