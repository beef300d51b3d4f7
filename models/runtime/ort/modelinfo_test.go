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

// A tiny protobuf encoder, enough to write ONNX models by hand.
func pbVarint(b []byte, field int, v uint64) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|wireVarint)
	return binary.AppendUvarint(b, v)
}

func pbBytes(b []byte, field int, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|wireBytes)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func pbFixed32(b []byte, field int, v uint32) []byte {
	b = binary.AppendUvarint(b, uint64(field)<<3|wireFixed32)
	return binary.LittleEndian.AppendUint32(b, v)
}

// valueInfoProto encodes a float/int64 tensor ValueInfoProto; dim < 0 is a
// symbolic dimension "n".
func valueInfoProto(name string, elem int, dims ...int64) []byte {
	var shape []byte
	for _, d := range dims {
		var dim []byte
		if d < 0 {
			dim = pbBytes(nil, 2, []byte("n"))
		} else {
			dim = pbVarint(nil, 1, uint64(d))
		}
		shape = pbBytes(shape, 1, dim)
	}
	tensorType := pbVarint(nil, 1, uint64(elem))
	tensorType = pbBytes(tensorType, 2, shape)
	typ := pbBytes(nil, 1, tensorType)
	vi := pbBytes(nil, 1, []byte(name))
	return pbBytes(vi, 2, typ)
}

// oldAddModel writes an IR version 3, opset 9 model y = x + w whose weight w
// (a float initializer [3] = 1, 2, 3) is also listed as a graph input, the
// way pre-IR-4 exports list every weight. Unknown fields (doc strings, a
// fixed32 and a fixed64 field) check that the reader skips them.
func oldAddModel(t *testing.T) string {
	t.Helper()
	node := pbBytes(nil, 1, []byte("x"))
	node = pbBytes(node, 1, []byte("w"))
	node = pbBytes(node, 2, []byte("y"))
	node = pbBytes(node, 4, []byte("Add"))

	var w []byte
	w = pbVarint(w, 1, 3) // dims
	w = pbVarint(w, 2, 1) // FLOAT
	for _, v := range []float32{1, 2, 3} {
		w = pbFixed32(w, 4, math.Float32bits(v)) // float_data, unpacked
	}
	w = pbBytes(w, 8, []byte("w"))

	var g []byte
	g = pbBytes(g, 1, node)
	g = pbBytes(g, 2, []byte("old"))
	g = pbBytes(g, 5, w)
	g = pbBytes(g, 10, []byte("a graph doc string"))
	g = pbBytes(g, 11, valueInfoProto("x", 1, -1, 3))
	g = pbBytes(g, 11, valueInfoProto("w", 1, 3))
	g = pbBytes(g, 12, valueInfoProto("y", 1, -1, 3))

	var m []byte
	m = pbVarint(m, 1, 3) // ir_version
	m = pbBytes(m, 2, []byte("handmade"))
	m = binary.AppendUvarint(m, 99<<3|wireFixed64)
	m = binary.LittleEndian.AppendUint64(m, 42)
	m = pbBytes(m, 7, g)
	m = pbBytes(m, 8, pbVarint(pbBytes(nil, 1, nil), 2, 9)) // opset_import {domain "", version 9}

	path := filepath.Join(t.TempDir(), "old.onnx")
	if err := os.WriteFile(path, m, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReadModelInfo(t *testing.T) {
	cases := []struct {
		name    string
		path    string
		ir      int64
		inputs  []TensorInfo
		outputs []string
	}{
		{"old model hides weights", oldAddModel(t), 3,
			[]TensorInfo{{Name: "x", Shape: []int64{-1, 3}, DType: "float32"}}, []string{"y"}},
		{"mlp fixture", filepath.Join("testdata", "mlp.onnx"), 8,
			[]TensorInfo{{Name: "x", Shape: []int64{-1, 8}, DType: "float32"}}, []string{"y"}},
		{"transformer fixture", filepath.Join("testdata", "transformer.onnx"), 8,
			[]TensorInfo{{Name: "tokens", Shape: []int64{-1, 6, 16}, DType: "float32"}, {Name: "index", Shape: []int64{-1}, DType: "int64"}},
			[]string{"hidden", "pooled"}},
	}
	for _, c := range cases {
		info, err := readModelInfo(c.path)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if info.irVersion != c.ir {
			t.Errorf("%s: IR version %d, want %d", c.name, info.irVersion, c.ir)
		}
		if !reflect.DeepEqual(info.inputs, c.inputs) {
			t.Errorf("%s: inputs %v, want %v", c.name, info.inputs, c.inputs)
		}
		var outs []string
		for _, o := range info.outputs {
			outs = append(outs, o.Name)
		}
		if !reflect.DeepEqual(outs, c.outputs) {
			t.Errorf("%s: outputs %v, want %v", c.name, outs, c.outputs)
		}
	}
}

func TestOldModelRuns(t *testing.T) {
	initORT(t)
	s, err := Open(oldAddModel(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if in := s.Inputs(); len(in) != 1 || in[0].Name != "x" {
		t.Fatalf("Inputs() = %v, want only x", in)
	}
	out, err := s.Run(map[string]Tensor{"x": NewTensor([]int64{2, 3}, []float32{10, 20, 30, 40, 50, 60})})
	if err != nil {
		t.Fatal(err)
	}
	got, err := Data[float32](out["y"])
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{11, 22, 33, 41, 52, 63}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(out["y"].Shape, []int64{2, 3}) {
		t.Errorf("y = %v %v, want %v [2 3]", out["y"].Shape, got, want)
	}
}

// reduceSumModel writes an IR 7, opset 11 model y = ReduceSum(x) with
// keepdims=0, a scalar. With declareRank the output is declared as a
// scalar; without it the output has no declared shape.
func reduceSumModel(t *testing.T, declareRank bool) string {
	t.Helper()
	attr := pbBytes(nil, 1, []byte("keepdims"))
	attr = pbVarint(attr, 3, 0)  // i
	attr = pbVarint(attr, 20, 2) // type INT
	node := pbBytes(nil, 1, []byte("x"))
	node = pbBytes(node, 2, []byte("y"))
	node = pbBytes(node, 4, []byte("ReduceSum"))
	node = pbBytes(node, 5, attr)
	y := valueInfoProto("y", 1)
	if !declareRank {
		y = pbBytes(pbBytes(nil, 1, []byte("y")), 2, pbBytes(nil, 1, pbVarint(nil, 1, 1)))
	}
	var g []byte
	g = pbBytes(g, 1, node)
	g = pbBytes(g, 2, []byte("sum"))
	g = pbBytes(g, 11, valueInfoProto("x", 1, -1))
	g = pbBytes(g, 12, y)
	var m []byte
	m = pbVarint(m, 1, 7)
	m = pbBytes(m, 7, g)
	m = pbBytes(m, 8, pbVarint(pbBytes(nil, 1, nil), 2, 11))
	path := filepath.Join(t.TempDir(), "sum.onnx")
	if err := os.WriteFile(path, m, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestScalarOutput(t *testing.T) {
	initORT(t)
	cases := []struct {
		name    string
		declare bool
		x       []float32
		want    float32
		wantErr bool
	}{
		{"declared scalar", true, []float32{1, 2, 3.5}, 6.5, false},
		{"declared scalar, empty input", true, []float32{}, 0, false},
		// onnxruntime_go cannot wrap a scalar it did not preallocate: an
		// error, not a crash.
		{"undeclared rank", false, []float32{1, 2}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(reduceSumModel(t, c.declare), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			out, err := s.Run(map[string]Tensor{"x": NewTensor([]int64{int64(len(c.x))}, c.x)})
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), "scalar that the model does not declare") {
					t.Fatalf("Run = %v, %v; want an undeclared-scalar error", out, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			y, err := Data[float32](out["y"])
			if err != nil {
				t.Fatal(err)
			}
			if len(out["y"].Shape) != 0 || len(y) != 1 || y[0] != c.want {
				t.Errorf("y = %v %v, want scalar %g", out["y"].Shape, y, c.want)
			}
		})
	}
}

func TestScalarInput(t *testing.T) {
	initORT(t)
	node := pbBytes(nil, 1, []byte("x"))
	node = pbBytes(node, 2, []byte("y"))
	node = pbBytes(node, 4, []byte("Identity"))
	var g []byte
	g = pbBytes(g, 1, node)
	g = pbBytes(g, 2, []byte("id"))
	g = pbBytes(g, 11, valueInfoProto("x", 7))
	g = pbBytes(g, 12, valueInfoProto("y", 7))
	var m []byte
	m = pbVarint(m, 1, 7)
	m = pbBytes(m, 7, g)
	m = pbBytes(m, 8, pbVarint(pbBytes(nil, 1, nil), 2, 13))
	path := filepath.Join(t.TempDir(), "id.onnx")
	if err := os.WriteFile(path, m, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if in := s.Inputs(); len(in) != 1 || in[0].Shape == nil || len(in[0].Shape) != 0 || in[0].DType != "int64" {
		t.Fatalf("Inputs() = %#v, want one int64 scalar", in)
	}
	out, err := s.Run(map[string]Tensor{"x": NewTensor([]int64{}, []int64{-42})})
	if err != nil {
		t.Fatal(err)
	}
	if y, err := Data[int64](out["y"]); err != nil || len(y) != 1 || y[0] != -42 || len(out["y"].Shape) != 0 {
		t.Errorf("y = %v %v (%v), want scalar -42", out["y"].Shape, y, err)
	}
	if _, err := s.Run(map[string]Tensor{"x": NewTensor([]int64{1}, []int64{1})}); err == nil || !strings.Contains(err.Error(), "want rank 0") {
		t.Errorf("rank-1 value for a scalar input: %v, want a rank error", err)
	}
}
