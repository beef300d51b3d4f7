package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

// TestModelDigest: a folder and embedded weights with the same files have the same digest;
// changing either file changes it; a missing file is an error naming the folder.
func TestModelDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.json", `{"width": 8}`)
	write(CheckpointFile, "weights-1")
	embedded := fstest.MapFS{
		"weights/config.json":       {Data: []byte(`{"width": 8}`)},
		"weights/" + CheckpointFile: {Data: []byte("weights-1")},
	}
	d1, err := ModelDigest(dir, nil, "config.json")
	if err != nil {
		t.Fatal(err)
	}
	if e, err := ModelDigest("", embedded, "config.json"); err != nil || e != d1 {
		t.Fatalf("embedded digest %s (%v), want the folder's %s", e, err, d1)
	}
	write(CheckpointFile, "weights-2")
	d2, _ := ModelDigest(dir, nil, "config.json")
	write("config.json", `{"width": 9}`)
	d3, _ := ModelDigest(dir, nil, "config.json")
	if d2 == d1 || d3 == d2 || len(d1) != 64 {
		t.Fatalf("digests %s %s %s: want three different sha256 hex strings", d1, d2, d3)
	}
	os.Remove(filepath.Join(dir, CheckpointFile))
	if _, err := ModelDigest(dir, nil, "config.json"); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("missing checkpoint: err %v, want one naming %s", err, dir)
	}
}
