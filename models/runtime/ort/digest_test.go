package ort

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileDigest(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.onnx"), filepath.Join(dir, "b.json")
	os.WriteFile(a, []byte("weights"), 0o644)
	os.WriteFile(b, []byte("vocab"), 0o644)
	d1, err := FileDigest(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := FileDigest(a, b); d2 != d1 || len(d1) != 64 {
		t.Fatalf("digest not stable or not hex SHA-256: %q %q", d1, d2)
	}
	os.WriteFile(b, []byte("vocab2"), 0o644)
	d3, _ := FileDigest(a, b)
	if d3 == d1 {
		t.Error("changing a file's content kept the digest")
	}
	if d4, _ := FileDigest(b, a); d4 == d3 {
		t.Error("the digest does not depend on the order")
	}
	_, err = FileDigest(a, filepath.Join(dir, "missing.onnx"))
	if err == nil || !strings.Contains(err.Error(), "missing.onnx") {
		t.Errorf("missing file: err = %v, want it named", err)
	}
}
