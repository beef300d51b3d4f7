package onnxjudge

import (
	"math"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions("k", map[string]string{"batch": "4", "threads": " 2", "image_size": "336", "provider": "cuda:1", "tokenizer": "/v"}, "tokenizer")
	if err != nil {
		t.Fatal(err)
	}
	if o.Batch != 4 || o.ORT.IntraOpThreads != 2 || o.ImageSize != 336 || o.Extra["tokenizer"] != "/v" ||
		len(o.ORT.Providers) != 1 || o.ORT.Providers[0].Name != "cuda" || o.ORT.Providers[0].DeviceID != 1 {
		t.Errorf("parsed %+v", o)
	}
	if (Options{}).BatchOr() != DefaultBatch || o.BatchOr() != 4 {
		t.Error("BatchOr")
	}
	for opts, want := range map[string]map[string]string{
		`k judge: unknown option "tokenizer" (known: image_size, batch, threads, provider)`: {"tokenizer": "x"},
		`k judge: option batch: want a positive integer, got "0"`:                           {"batch": "0"},
		`k judge: option threads: want a positive integer, got "two"`:                       {"threads": "two"},
	} {
		if _, err := ParseOptions("k", want); err == nil || err.Error() != opts {
			t.Errorf("ParseOptions(%v) = %v, want %q", want, err, opts)
		}
	}
	if _, err := ParseOptions("k", map[string]string{"provider": "tpu"}); err == nil || !strings.Contains(err.Error(), "provider") {
		t.Errorf("provider tpu: %v", err)
	}
}

func TestUnitRows(t *testing.T) {
	res := map[string]ort.Tensor{"e": ort.NewTensor([]int64{2, 2}, []float32{3, 4, 0, -2})}
	rows, err := UnitRows(res, "m.onnx", "e", 2)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(float64(rows[0][0])-0.6) > 1e-7 || math.Abs(float64(rows[0][1])-0.8) > 1e-7 || rows[1][1] != -1 {
		t.Errorf("rows = %v", rows)
	}
	if _, err := UnitRows(res, "m.onnx", "e", 3); err == nil || !strings.Contains(err.Error(), "m.onnx: output e is float32[2 2], want float32 [3, dim]") {
		t.Errorf("wrong count: %v", err)
	}
	if _, err := UnitRows(res, "m.onnx", "x", 2); err == nil || !strings.Contains(err.Error(), "no output x") {
		t.Errorf("missing output: %v", err)
	}
}
