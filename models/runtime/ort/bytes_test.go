package ort

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// externalAddModel returns an IR 8, opset 13 model y = x + w whose weight w (float [3]) is
// stored as external data in w.bin, written into dir with the values 1, 2, 3.
func externalAddModel(t *testing.T, dir string) []byte {
	t.Helper()
	var data []byte
	for _, v := range []float32{1, 2, 3} {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	entry := func(k, v string) []byte { return pbBytes(pbBytes(nil, 1, []byte(k)), 2, []byte(v)) }
	node := pbBytes(nil, 1, []byte("x"))
	node = pbBytes(node, 1, []byte("w"))
	node = pbBytes(node, 2, []byte("y"))
	node = pbBytes(node, 4, []byte("Add"))
	w := pbVarint(nil, 1, 3) // dims
	w = pbVarint(w, 2, 1)    // FLOAT
	w = pbBytes(w, 8, []byte("w"))
	w = pbBytes(w, 13, entry("location", "w.bin"))
	w = pbBytes(w, 13, entry("offset", "0"))
	w = pbBytes(w, 13, entry("length", "12"))
	w = pbVarint(w, 14, 1) // data_location EXTERNAL
	var g []byte
	g = pbBytes(g, 1, node)
	g = pbBytes(g, 5, w)
	g = pbBytes(g, 11, valueInfoProto("x", 1, 3))
	g = pbBytes(g, 12, valueInfoProto("y", 1, 3))
	m := pbVarint(nil, 1, 8)
	m = pbBytes(m, 7, g)
	return pbBytes(m, 8, pbVarint(pbBytes(nil, 1, nil), 2, 13))
}

func TestOpenBytesReadsExternalData(t *testing.T) {
	initORT(t)
	dir := t.TempDir()
	model := externalAddModel(t, dir)
	s, err := OpenBytes("rewritten.onnx", model, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Path() != "rewritten.onnx" {
		t.Errorf("Path() = %q", s.Path())
	}
	out, err := s.Run(map[string]Tensor{"x": NewTensor([]int64{3}, []float32{10, 20, 30})})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Data[float32](out["y"]); !reflect.DeepEqual(got, []float32{11, 22, 33}) {
		t.Errorf("y = %v, want [11 22 33]", got)
	}

	// Without the data folder, or with the wrong one, ONNX Runtime cannot find w.bin.
	for _, d := range []string{"", t.TempDir()} {
		if _, err := OpenBytes("rewritten.onnx", model, d, Options{}); err == nil || !strings.Contains(err.Error(), "rewritten.onnx") {
			t.Errorf("data folder %q: err = %v, want a load error naming the model", d, err)
		}
	}
	if _, err := OpenBytes("junk.onnx", []byte("not a model"), dir, Options{}); err == nil || !strings.Contains(err.Error(), "junk.onnx") {
		t.Errorf("junk: err = %v", err)
	}
}
