package onnxgraph

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHalfConversion converts every float16 to float32 and back.
func TestHalfConversion(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := halfToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if back := float32ToHalf(f); back&0x7c00 != 0x7c00 || back&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, back)
			}
			continue
		}
		if back := float32ToHalf(f); back != uint16(h) {
			t.Fatalf("%#04x -> %g -> %#04x", h, f, back)
		}
	}
	for _, c := range []struct {
		f    float32
		want float32
	}{{1.0 / 3, 0.333251953125}, {65504, 65504}, {1e6, float32(math.Inf(1))}, {1e-8, 0}, {6e-8, 5.960464477539063e-08}, {-2.5, -2.5}} {
		if got := halfToFloat32(float32ToHalf(c.f)); got != c.want {
			t.Errorf("float16(%g) = %g, want %g", c.f, got, c.want)
		}
	}
}

func TestValueInfoTypes(t *testing.T) {
	v := &ValueInfo{Name: "x", Type: NewTensorType(Float16, Dim{Param: "batch"}, Dim{Value: 4}, Dim{})}
	if v.ElemType() != Float16 {
		t.Fatalf("elem type %s", v.ElemType())
	}
	if err := v.SetElemType(Float); err != nil {
		t.Fatal(err)
	}
	dims, ok := v.Shape()
	if v.ElemType() != Float || !ok || len(dims) != 3 || dims[0].Param != "batch" || dims[1].Value != 4 || dims[2] != (Dim{}) {
		t.Errorf("after SetElemType: %s %v %v", v.ElemType(), dims, ok)
	}
	if _, ok := (&ValueInfo{Type: NewTensorType(Float)}).Shape(); ok {
		t.Error("a type without a shape reports one")
	}
}

func TestTensorValues(t *testing.T) {
	x := NewTensor("x", Float16, []int64{3}, 1, -0.5, 2048)
	if err := x.ConvertToFloat32(); err != nil {
		t.Fatal(err)
	}
	v, err := x.Float64s()
	if err != nil || x.DataType != Float || v[0] != 1 || v[1] != -0.5 || v[2] != 2048 {
		t.Errorf("float16 -> float32: %s %v %v", x.DataType, v, err)
	}
	if f, err := x.Float32s(); err != nil || f[1] != -0.5 || f[2] != 2048 {
		t.Errorf("Float32s %v %v", f, err)
	}
	if f, err := NewTensor("h", Float16, []int64{2}, 0.25, 3).Float32s(); err != nil || f[0] != 0.25 || f[1] != 3 {
		t.Errorf("Float32s of float16 %v %v", f, err)
	}
	big := NewInt64Tensor("i", []int64{2}, math.MaxInt64, -3)
	if iv, err := big.Int64s(); err != nil || iv[0] != math.MaxInt64 || iv[1] != -3 {
		t.Errorf("int64s %v %v", iv, err)
	}
	typed := &Tensor{Name: "t", DataType: Int32, Dims: []int64{2}, Int32Data: []int32{7, -1}}
	if iv, err := typed.Int64s(); err != nil || iv[0] != 7 || iv[1] != -1 {
		t.Errorf("int32_data %v %v", iv, err)
	}
	short := &Tensor{Name: "short", DataType: Float, Dims: []int64{3}, FloatData: []float32{1}}
	if _, err := short.Bytes(); err == nil || !strings.Contains(err.Error(), "short") {
		t.Errorf("3 elements holding 1 value: %v", err)
	}
}

// TestExternalDataErrors: bad external data entries are errors naming the tensor and the file.
func TestExternalDataErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "w.bin"), make([]byte, 16), 0o644)
	ext := func(kv ...string) *Tensor {
		t := &Tensor{Name: "w", DataType: Float, Dims: []int64{4}, Location: External, Dir: dir}
		for i := 0; i < len(kv); i += 2 {
			t.ExternalData = append(t.ExternalData, KeyValue{Key: kv[i], Value: kv[i+1]})
		}
		return t
	}
	if _, err := ext("location", "w.bin").Bytes(); err != nil {
		t.Errorf("valid: %v", err)
	}
	for _, c := range []struct {
		t    *Tensor
		want string
	}{
		{ext("location", "w.bin", "offset", "4"), "truncated"},
		{ext("location", "w.bin", "length", "12"), "length"},
		{ext("location", "gone.bin"), "does not exist"},
		{ext("location", "../w.bin"), "relative to the model's folder"},
		{ext("location", "/etc/passwd"), "relative to the model's folder"},
		{ext(), "no location"},
		{ext("location", "w.bin", "offset", "x"), "offset"},
	} {
		if _, err := c.t.Bytes(); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"w"`) {
			t.Errorf("%v: got %v, want an error naming tensor \"w\" and %q", c.t.ExternalData, err, c.want)
		}
	}
}
