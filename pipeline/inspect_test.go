package pipeline

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestInspectRunDirectoryListsItsDatasets(t *testing.T) {
	dir := t.TempDir()
	run(t, mustParse(t, testConfig), dir, Options{Args: []string{"cocoflow", "run", "t.yaml"}})
	var b strings.Builder
	if err := Inspect(context.Background(), filepath.Join(dir, "t"), 3, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"run t (", "3 ran", "`cocoflow run t.yaml`", "numbers/numbers", "100 rows", "7 shards", "square/squares", "sum/sum", "1 rows", "complete", "cocoflow inspect "} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect of a run directory lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "numbers/numbers") > strings.Index(out, "sum/sum") {
		t.Errorf("datasets not in stage order:\n%s", out)
	}
	// The workdir lists every run in it.
	b.Reset()
	if err := Inspect(context.Background(), dir, 3, &b); err != nil || !strings.Contains(b.String(), "square/squares") {
		t.Fatalf("inspect of a workdir: %v\n%s", err, b.String())
	}
}
