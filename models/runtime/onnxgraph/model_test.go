package onnxgraph

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtures are the torch exports of tools/onnx_import_fixtures.py.
const fixtures = "../engine/testdata/import"

func TestRoundTripIsByteExact(t *testing.T) {
	for _, name := range []string{"unet.onnx", "unet_f64.onnx", "unet_fp16.onnx", "clip.onnx", "clip_f64.onnx", "unet_ext/model.onnx"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(fixtures, name)
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Read(path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, orig) {
				t.Fatalf("Read+Encode changed the bytes: %d -> %d bytes, first difference at %d", len(orig), len(got), firstDiff(got, orig))
			}
			m2, err := Decode(orig, filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			got2, err := m2.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got2, orig) {
				t.Fatalf("Decode+Encode changed the bytes, first difference at %d", firstDiff(got2, orig))
			}
			if len(m.Graph.Nodes) == 0 || len(m.Graph.Initializers) == 0 || m.OpsetVersion() != 14 {
				t.Fatalf("%d nodes, %d initializers, opset %d", len(m.Graph.Nodes), len(m.Graph.Initializers), m.OpsetVersion())
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "missing.onnx")); err == nil || !strings.Contains(err.Error(), "missing.onnx") {
		t.Errorf("missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.onnx")
	os.WriteFile(bad, []byte("\xff\xff\xff not protobuf"), 0o644)
	if _, err := Read(bad); err == nil || !strings.Contains(err.Error(), "bad.onnx") {
		t.Errorf("garbage: %v", err)
	}
	orig, _ := os.ReadFile(filepath.Join(fixtures, "unet.onnx"))
	cut := filepath.Join(dir, "cut.onnx")
	os.WriteFile(cut, orig[:len(orig)/2], 0o644)
	if _, err := Read(cut); err == nil || !strings.Contains(err.Error(), "cut.onnx") {
		t.Errorf("truncated: %v", err)
	}
}

// TestExternalAndInlineWeightsAgree reads every weight of the external-data export and of the
// inline one: same names, same values, without reading them at Read.
func TestExternalAndInlineWeightsAgree(t *testing.T) {
	inline, err := Read(filepath.Join(fixtures, "unet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := Read(filepath.Join(fixtures, "unet_ext", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	external := 0
	for _, w := range ext.Graph.Initializers {
		if w.IsExternal() {
			external++
		}
		v := inline.Graph.Initializer(w.Name)
		if v == nil || v.InMemory() {
			t.Fatalf("inline weight %q missing or read at Read", w.Name)
		}
		a, err1 := w.Bytes()
		b, err2 := v.Bytes()
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("weight %q: external %v, inline %v, equal %v", w.Name, err1, err2, bytes.Equal(a, b))
		}
	}
	if external == 0 {
		t.Fatal("no external weights in the fixture")
	}
	w := ext.Graph.Initializers[len(ext.Graph.Initializers)-1]
	if f, err := w.Float32s(); err != nil || int64(len(f)) != w.Elements() {
		t.Errorf("Float32s of %q: %d values, %v", w.Name, len(f), err)
	}
}
