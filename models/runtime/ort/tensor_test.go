package ort

import (
	"strings"
	"testing"
)

func TestTensorValidate(t *testing.T) {
	cases := []struct {
		name    string
		t       Tensor
		dtype   string
		wantErr string
	}{
		{"float32 matrix", NewTensor([]int64{2, 3}, make([]float32, 6)), "float32", ""},
		{"int64 vector", NewTensor([]int64{4}, []int64{1, 2, 3, 4}), "int64", ""},
		{"int32", NewTensor([]int64{1}, []int32{7}), "int32", ""},
		{"uint8 image", NewTensor([]int64{1, 2, 2, 3}, make([]uint8, 12)), "uint8", ""},
		{"bool", NewTensor([]int64{2}, []bool{true, false}), "bool", ""},
		{"scalar", NewTensor([]int64{}, []float64{1.5}), "float64", ""},
		{"empty batch", NewTensor([]int64{0, 3}, []float32{}), "float32", ""},
		{"too short", NewTensor([]int64{2, 3}, make([]float32, 5)), "float32", "needs 6 elements, data has 5"},
		{"too long", NewTensor([]int64{2}, make([]int64, 3)), "int64", "needs 2 elements, data has 3"},
		{"negative dim", NewTensor([]int64{-1, 3}, make([]float32, 3)), "float32", "dimension 0 is negative"},
		{"overflow", NewTensor([]int64{1 << 40, 1 << 40}, make([]float32, 1)), "float32", "too many elements"},
		{"unsupported", Tensor{Shape: []int64{1}, Data: []string{"a"}}, "", "[]string"},
		{"nil data", Tensor{Shape: []int64{1}}, "", "nil"},
	}
	for _, c := range cases {
		if got := c.t.DType(); got != c.dtype {
			t.Errorf("%s: DType() = %q, want %q", c.name, got, c.dtype)
		}
		err := c.t.Validate()
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.wantErr)
		}
	}
}

func TestTensorData(t *testing.T) {
	x := NewTensor([]int64{2}, []int64{3, 4})
	d, err := Data[int64](x)
	if err != nil || len(d) != 2 || d[1] != 4 {
		t.Errorf("Data[int64] = %v, %v", d, err)
	}
	if _, err := Data[float32](x); err == nil || !strings.Contains(err.Error(), "tensor holds int64, not float32") {
		t.Errorf("Data[float32] of an int64 tensor: %v", err)
	}
}
