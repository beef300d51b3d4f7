package ort

import (
	"fmt"
	"path/filepath"
	"testing"
)

// BenchmarkSessionRun runs the fixture transformer block at batch 1 and 16
// and reports ms/op.
func BenchmarkSessionRun(b *testing.B) {
	initORT(b)
	s, err := Open(filepath.Join("testdata", "transformer.onnx"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for _, batch := range []int64{1, 16} {
		tokens := make([]float32, batch*6*16)
		for i := range tokens {
			tokens[i] = float32(i%37)/37 - 0.5
		}
		index := make([]int64, batch)
		for i := range index {
			index[i] = int64(i % 6)
		}
		in := map[string]Tensor{
			"tokens": NewTensor([]int64{batch, 6, 16}, tokens),
			"index":  NewTensor([]int64{batch}, index),
		}
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			for b.Loop() {
				if _, err := s.Run(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/op")
		})
	}
}
