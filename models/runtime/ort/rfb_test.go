package ort

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestRFB320 loads a third-party face detector exported before IR version 4
// (every weight is also a graph input), describes it and runs it on a
// synthetic image. It needs ../shared/data/onnx from the repository root.
func TestRFB320(t *testing.T) {
	path := filepath.Join(repoRoot(t), "..", "shared", "data", "onnx", "version-RFB-320.onnx")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the RFB-320 check needs ../shared/data/onnx beside the checkout: %v", err)
	}
	initORT(t)
	s, err := Open(path, Options{IntraOpThreads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wantIn := []TensorInfo{{Name: "input", Shape: []int64{1, 3, 240, 320}, DType: "float32"}}
	if got := s.Inputs(); !reflect.DeepEqual(got, wantIn) {
		t.Fatalf("Inputs() = %v, want %v", got, wantIn)
	}
	outs := s.Outputs()
	if len(outs) != 2 || outs[0].Name != "scores" || outs[1].Name != "boxes" {
		t.Fatalf("Outputs() = %v, want scores, boxes", outs)
	}

	// A synthetic image: a diagonal gradient with a bright disc, normalised
	// as the model expects, (x-127)/128, planar RGB.
	const h, w = 240, 320
	img := make([]float32, 3*h*w)
	for c := range 3 {
		for y := range h {
			for x := range w {
				v := float64((x+y+40*c)%256) * 0.5
				if dx, dy := float64(x-160), float64(y-110); dx*dx/3600+dy*dy/5000 < 1 {
					v = 220 - 30*float64(c)
				}
				img[(c*h+y)*w+x] = float32((v - 127) / 128)
			}
		}
	}
	out, err := s.Run(map[string]Tensor{"input": NewTensor([]int64{1, 3, h, w}, img)})
	if err != nil {
		t.Fatal(err)
	}
	scores, boxes := out["scores"], out["boxes"]
	if !reflect.DeepEqual(scores.Shape, []int64{1, 4420, 2}) || !reflect.DeepEqual(boxes.Shape, []int64{1, 4420, 4}) {
		t.Fatalf("shapes scores %v boxes %v, want [1 4420 2] and [1 4420 4]", scores.Shape, boxes.Shape)
	}
	sc, err := Data[float32](scores)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(sc); i += 2 {
		p0, p1 := sc[i], sc[i+1]
		if p0 < 0 || p0 > 1 || p1 < 0 || p1 > 1 || math.Abs(float64(p0+p1)-1) > 1e-5 {
			t.Fatalf("anchor %d: scores (%g, %g) are not a probability pair", i/2, p0, p1)
		}
	}
	bx, err := Data[float32](boxes)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range bx {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("boxes[%d] = %g", i, v)
		}
	}
}
