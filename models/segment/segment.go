// Package segment holds what the referring-segmentation models of cocoflow's mask stage share:
// pixel boxes, the ImageNet-normalised input tensor both Grounding DINO and SAM 2 read, and the
// check of an ONNX model's input names. The models live in groundingdino (text-prompted boxes)
// and sam2 (a box-prompted mask).
package segment

import (
	"fmt"
	"image"
	"slices"
	"strings"

	"github.com/disintegration/imaging"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// ImageNet's per-channel mean and standard deviation (RGB, on [0, 1] values), the
// normalisation of Grounding DINO's and SAM 2's transforms.
var (
	ImageNetMean = [3]float32{0.485, 0.456, 0.406}
	ImageNetStd  = [3]float32{0.229, 0.224, 0.225}
)

// Box is an axis-aligned box in image pixels: X0, Y0 the top-left corner, X1, Y1 the
// bottom-right one.
type Box struct{ X0, Y0, X1, Y1 float64 }

// Clamp returns b inside a w x h image.
func (b Box) Clamp(w, h int) Box {
	c := func(v float64, hi int) float64 { return min(max(v, 0), float64(hi)) }
	return Box{c(b.X0, w), c(b.Y0, h), c(b.X1, w), c(b.Y1, h)}
}

// Tensor resizes img to w x h (bilinear, as PIL and torchvision's resize do) and returns it as
// a float32 [1, 3, h, w] tensor in channel-major order, each value (v/255 - mean) / std with
// ImageNet's statistics.
func Tensor(img image.Image, w, h int) ort.Tensor {
	src := imageio.ToNRGBA(img)
	if b := src.Bounds(); b.Dx() != w || b.Dy() != h {
		src = imaging.Resize(src, w, h, imaging.Linear)
	}
	data := make([]float32, 3*w*h)
	plane := w * h
	for y := 0; y < h; y++ {
		row := src.Pix[y*src.Stride:]
		for x := 0; x < w; x++ {
			for c := 0; c < 3; c++ {
				v := float32(row[4*x+c]) / 255
				data[c*plane+y*w+x] = (v - ImageNetMean[c]) / ImageNetStd[c]
			}
		}
	}
	return ort.NewTensor([]int64{1, 3, int64(h), int64(w)}, data)
}

// FloatTensor is Tensor with the resize done on the [0, 1] values, as torchvision resizes a
// ToTensor output (SAM 2's transforms), when it enlarges img: bilinear with half-pixel centres
// (Resize), no rounding to 8 bits. Shrinking needs an antialiasing filter; it falls back to
// Tensor's, at most half a grey level from float.
func FloatTensor(img image.Image, w, h int) ort.Tensor {
	src := imageio.ToNRGBA(img)
	sw, sh := src.Bounds().Dx(), src.Bounds().Dy()
	if w < sw || h < sh {
		return Tensor(img, w, h)
	}
	data := make([]float32, 0, 3*w*h)
	plane := make([]float32, sw*sh)
	for c := 0; c < 3; c++ {
		for y := 0; y < sh; y++ {
			for x := 0; x < sw; x++ {
				plane[y*sw+x] = float32(src.Pix[y*src.Stride+4*x+c]) / 255
			}
		}
		for _, v := range Resize(plane, sw, sh, w, h) {
			data = append(data, (v-ImageNetMean[c])/ImageNetStd[c])
		}
	}
	return ort.NewTensor([]int64{1, 3, int64(h), int64(w)}, data)
}

// Names returns the names of infos.
func Names(infos []ort.TensorInfo) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

// Find returns the info named name among infos, and whether there is one.
func Find(infos []ort.TensorInfo, name string) (ort.TensorInfo, bool) {
	for _, in := range infos {
		if in.Name == name {
			return in, true
		}
	}
	return ort.TensorInfo{}, false
}

// Missing returns the names of want that infos lack, in want's order.
func Missing(infos []ort.TensorInfo, want ...string) []string {
	have := Names(infos)
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

// List formats names for an error: "a, b, c", or "none".
func List(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// Filled returns a tensor of the given shape and dtype (float32, int64, int32 or bool, as a
// model declares its input) with every element v.
func Filled(dtype string, shape []int64, v float64) (ort.Tensor, error) {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = v
	}
	return Values(dtype, shape, vals)
}

// Values returns vals as a tensor of the given shape and dtype (float32, float64, int64, int32
// or bool; non-zero is true).
func Values(dtype string, shape []int64, vals []float64) (ort.Tensor, error) {
	switch dtype {
	case "float32":
		return ort.NewTensor(shape, convert[float32](vals)), nil
	case "float64":
		return ort.NewTensor(shape, vals), nil
	case "int64":
		return ort.NewTensor(shape, convert[int64](vals)), nil
	case "int32":
		return ort.NewTensor(shape, convert[int32](vals)), nil
	case "bool":
		out := make([]bool, len(vals))
		for i, v := range vals {
			out[i] = v != 0
		}
		return ort.NewTensor(shape, out), nil
	}
	return ort.Tensor{}, fmt.Errorf("unsupported input dtype %s", dtype)
}

func convert[T float32 | int64 | int32](vals []float64) []T {
	out := make([]T, len(vals))
	for i, v := range vals {
		out[i] = T(v)
	}
	return out
}

// Resize resizes a w x h row-major map to ow x oh bilinearly with half-pixel centres, as
// torch's F.interpolate(mode="bilinear", align_corners=False) does.
func Resize(src []float32, w, h, ow, oh int) []float32 {
	out := make([]float32, ow*oh)
	coord := func(o, in, out int) (int, int, float32) {
		x := (float32(o)+0.5)*float32(in)/float32(out) - 0.5
		if x < 0 {
			x = 0
		}
		i0 := int(x)
		if i0 > in-1 {
			i0 = in - 1
		}
		i1 := min(i0+1, in-1)
		return i0, i1, x - float32(i0)
	}
	for y := 0; y < oh; y++ {
		y0, y1, fy := coord(y, h, oh)
		for x := 0; x < ow; x++ {
			x0, x1, fx := coord(x, w, ow)
			top := src[y0*w+x0]*(1-fx) + src[y0*w+x1]*fx
			bot := src[y1*w+x0]*(1-fx) + src[y1*w+x1]*fx
			out[y*ow+x] = top*(1-fy) + bot*fy
		}
	}
	return out
}
