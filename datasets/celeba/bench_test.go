package celeba

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkOpenFullSize opens annotation files the size of the real CelebA
// (202,599 images, all five files) without images on disk.
func BenchmarkOpenFullSize(b *testing.B) {
	const n = 202599
	rows := make([]fixRow, n)
	for i := range rows {
		r := &rows[i]
		r.file = fmt.Sprintf("%06d.jpg", i+1)
		r.id = 1 + i%10177
		r.part = i % 3
		for a := range r.attrs {
			r.attrs[a] = 1 - 2*((i>>uint(a%16))&1)
		}
		for k := range r.lm {
			r.lm[k] = 60 + k*9 + i%7
		}
		r.bbox = [4]int{95, 71, 226, 313}
	}
	texts := fixTexts(rows)
	root := b.TempDir()
	paths := layoutPaths(false)
	for k, text := range texts {
		if err := os.WriteFile(filepath.Join(root, paths[k]), []byte(text), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, paths["images"]), 0o755); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		d, err := Open(root, Options{Split: "train"})
		if err != nil {
			b.Fatal(err)
		}
		if d.Total() != n {
			b.Fatalf("Total = %d", d.Total())
		}
	}
}
