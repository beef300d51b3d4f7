package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// testWeights stands for the digest of the weights a model-loading kind reads (the built-in
// default weights of a model package, say), changed by the test between runs.
var testWeights struct {
	sync.Mutex
	digest string
	err    error
}

func init() {
	Register(Spec[struct{}]{
		Name: "test-model", Version: "1", Doc: "a stage that loads model weights",
		Outputs: []Port{{Name: "out", Schema: sumRow{}}},
		Models: func(*struct{}) (map[string]string, error) {
			testWeights.Lock()
			defer testWeights.Unlock()
			return map[string]string{"generator": testWeights.digest}, testWeights.err
		},
		Run: func(ctx context.Context, job *Job, _ *struct{}) error {
			return WriteRows(job, job.Output("out"), []sumRow{{Count: 1}}, 0)
		},
	})
}

func setTestWeights(digest string, err error) {
	testWeights.Lock()
	defer testWeights.Unlock()
	testWeights.digest, testWeights.err = digest, err
}

// TestModelDigestsAreInTheFingerprint: new weights under the same parameters rerun the stage;
// the manifest records the digests; a digest that cannot be computed fails the stage by name.
func TestModelDigestsAreInTheFingerprint(t *testing.T) {
	dir := t.TempDir()
	cfg := mustParse(t, "name: m\nstages:\n  - id: gen\n    uses: test-model\n")
	setTestWeights("aaa", nil)
	rm := run(t, cfg, dir, Options{})
	if got := statuses(rm); got != "gen=ran" {
		t.Fatalf("first run: %s", got)
	}
	if d := rm.Stages[0].Models["generator"]; d != "aaa" {
		t.Errorf("manifest models %v, want generator=aaa", rm.Stages[0].Models)
	}
	if got := statuses(run(t, cfg, dir, Options{})); got != "gen=up-to-date" {
		t.Fatalf("same weights: %s", got)
	}
	setTestWeights("bbb", nil)
	if got := statuses(run(t, cfg, dir, Options{})); got != "gen=ran" {
		t.Fatalf("new weights: %s, want the stage rerun", got)
	}
	setTestWeights("", errors.New("weights/config.json: file does not exist"))
	_, err := Run(context.Background(), cfg, Options{Workdir: dir})
	if err == nil || !strings.Contains(err.Error(), "model weights") || !strings.Contains(err.Error(), "config.json") {
		t.Fatalf("unreadable weights: err %v", err)
	}
}
