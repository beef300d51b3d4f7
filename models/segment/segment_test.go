package segment

import (
	"image"
	"image/color"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

func TestTensor(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	img.Set(0, 0, color.NRGBA{255, 0, 0, 255})
	img.Set(1, 0, color.NRGBA{0, 255, 51, 255})
	x := Tensor(img, 2, 1)
	if !reflect.DeepEqual(x.Shape, []int64{1, 3, 1, 2}) {
		t.Fatalf("shape %v", x.Shape)
	}
	got, _ := ort.Data[float32](x)
	// Channel-major: R of both pixels, then G, then B; (v/255 - mean) / std.
	want := []float64{(1 - 0.485) / 0.229, -0.485 / 0.229, -0.456 / 0.224, (1 - 0.456) / 0.224, -0.406 / 0.225, (0.2 - 0.406) / 0.225}
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-5 {
			t.Fatalf("tensor %v, want %v", got, want)
		}
	}
	if s := Tensor(img, 4, 3).Shape; !reflect.DeepEqual(s, []int64{1, 3, 3, 4}) {
		t.Errorf("resized shape %v", s)
	}
}

func TestValuesAndNames(t *testing.T) {
	b, err := Values("bool", []int64{3}, []float64{0, 2, 1})
	if err != nil || !reflect.DeepEqual(b.Data, []bool{false, true, true}) {
		t.Errorf("bool: %v %v", b.Data, err)
	}
	i, err := Filled("int32", []int64{2}, 7)
	if err != nil || !reflect.DeepEqual(i.Data, []int32{7, 7}) {
		t.Errorf("int32: %v %v", i.Data, err)
	}
	if _, err := Values("string", []int64{1}, []float64{1}); err == nil || !strings.Contains(err.Error(), "string") {
		t.Errorf("string dtype: err = %v", err)
	}
	infos := []ort.TensorInfo{{Name: "a"}, {Name: "c"}}
	if m := Missing(infos, "a", "b", "c", "d"); !reflect.DeepEqual(m, []string{"b", "d"}) || List(m) != "b, d" || List(nil) != "none" {
		t.Errorf("Missing = %v", m)
	}
	if got := (Box{-2, 3, 70, 40}).Clamp(64, 32); got != (Box{0, 3, 64, 32}) {
		t.Errorf("Clamp = %+v", got)
	}
}

// F.interpolate(x, size=(4, 5), mode="bilinear", align_corners=False) of a 2x3 map, from torch
// 1.13.
func TestResizeMatchesTorch(t *testing.T) {
	src := []float32{1, 2, 4, -3, 0, 8}
	want := []float64{1.0, 1.4000000953674316, 2.0, 3.200000286102295, 4.0, 0.0, 0.6000000238418579, 1.500000238418579, 3.6000003814697266, 5.0,
		-2.0, -0.9999999403953552, 0.5000003576278687, 4.40000057220459, 7.0, -3.0, -1.7999999523162842, 4.76837158203125e-07, 4.8000006675720215, 8.0}
	got := Resize(src, 3, 2, 5, 4)
	for i := range want {
		if math.Abs(float64(got[i])-want[i]) > 1e-5 {
			t.Fatalf("Resize = %v\nwant %v", got, want)
		}
	}
}

// FloatTensor enlarges in float: a 1x1 image stays one value; a 2x1 one is interpolated
// between its pixels without rounding; shrinking is Tensor's.
func TestFloatTensor(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	img.Set(0, 0, color.NRGBA{0, 0, 0, 255})
	img.Set(1, 0, color.NRGBA{1, 0, 0, 255})
	got, _ := ort.Data[float32](FloatTensor(img, 4, 1))
	// Red at x = 0..3 samples the source at -0.25, 0.25, 0.75, 1.25: 0, 0.25, 0.75, 1 grey levels.
	for i, lv := range []float64{0, 0.25, 0.75, 1} {
		if want := (lv/255 - 0.485) / 0.229; math.Abs(float64(got[i])-want) > 1e-6 {
			t.Errorf("red %d = %v, want %v", i, got[i], want)
		}
	}
	big := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	a, _ := ort.Data[float32](FloatTensor(big, 4, 4))
	b, _ := ort.Data[float32](Tensor(big, 4, 4))
	if !reflect.DeepEqual(a, b) {
		t.Error("shrinking differs from Tensor")
	}
}
