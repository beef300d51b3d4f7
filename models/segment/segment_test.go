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
