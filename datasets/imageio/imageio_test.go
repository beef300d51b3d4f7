package imageio

import (
	"errors"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadFile: a PNG reads back with its format; a missing file says who expected it and
// wraps fs.ErrNotExist; a file that is no image, or does not decode, names its path.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	good, err := PNG(image.NewGray(image.Rect(0, 0, 2, 3)))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"a.png": good, "b.txt": []byte("hello"), "c.png": good[:20]}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, format, err := ReadFile(filepath.Join(dir, "a.png"), "missing")
	if err != nil || format != "png" || len(data) != len(good) {
		t.Fatalf("a.png: %d bytes, format %q, err %v", len(data), format, err)
	}
	if img, err := DecodeFile(filepath.Join(dir, "a.png"), "missing"); err != nil || img.Bounds().Dy() != 3 {
		t.Fatalf("a.png: decoded %v, err %v", img, err)
	}
	_, err = DecodeFile(filepath.Join(dir, "none.png"), "listed in list.txt but missing on disk")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "none.png: listed in list.txt but missing on disk") {
		t.Errorf("missing file: %v", err)
	}
	if _, _, err := ReadFile(filepath.Join(dir, "b.txt"), "missing"); err == nil || !strings.Contains(err.Error(), "b.txt: not a JPEG or PNG") {
		t.Errorf("text file: %v", err)
	}
	if _, err := DecodeFile(filepath.Join(dir, "c.png"), "missing"); err == nil || !strings.Contains(err.Error(), "c.png: decode png") {
		t.Errorf("truncated PNG: %v", err)
	}
}
