package ort

import (
	"fmt"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Element is the set of Go types a Tensor's data can hold.
type Element interface {
	float32 | float64 | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64 | bool
}

// Tensor is a dense row-major tensor owned by Go. Data is a []E for an E in
// Element (for example []float32 or []int64), and that element type is the
// tensor's dtype (see DType); its length is the product of Shape, and an
// empty Shape is a scalar with one element.
type Tensor struct {
	Shape []int64
	Data  any
}

// NewTensor returns a Tensor holding data with the given shape. It does not
// copy; Validate reports a length that does not match the shape.
func NewTensor[T Element](shape []int64, data []T) Tensor {
	return Tensor{Shape: shape, Data: data}
}

// Data returns t's elements as a []T, or an error naming both dtypes when t
// holds another element type.
func Data[T Element](t Tensor) ([]T, error) {
	d, ok := t.Data.([]T)
	if !ok {
		var zero T
		return nil, fmt.Errorf("tensor holds %s, not %s", dtypeOrKind(t.Data), dtypeOf(zero))
	}
	return d, nil
}

// DType returns the element type's ONNX-style name (float32, int64, uint8,
// bool, ...), or "" when Data is not a slice of an Element type.
func (t Tensor) DType() string {
	switch t.Data.(type) {
	case []float32:
		return "float32"
	case []float64:
		return "float64"
	case []int8:
		return "int8"
	case []int16:
		return "int16"
	case []int32:
		return "int32"
	case []int64:
		return "int64"
	case []uint8:
		return "uint8"
	case []uint16:
		return "uint16"
	case []uint32:
		return "uint32"
	case []uint64:
		return "uint64"
	case []bool:
		return "bool"
	}
	return ""
}

// Len returns the number of elements in Data (0 when Data is not a slice of
// an Element type).
func (t Tensor) Len() int {
	switch d := t.Data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int8:
		return len(d)
	case []int16:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []uint8:
		return len(d)
	case []uint16:
		return len(d)
	case []uint32:
		return len(d)
	case []uint64:
		return len(d)
	case []bool:
		return len(d)
	}
	return 0
}

// Validate checks that Data is a slice of an Element type, that no dimension
// is negative and that the data length equals the product of the shape.
func (t Tensor) Validate() error {
	if t.DType() == "" {
		return fmt.Errorf("tensor data is %s, want a slice of float32, float64, int8..int64, uint8..uint64 or bool", dtypeOrKind(t.Data))
	}
	n := int64(1)
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor shape %v: dimension %d is negative", t.Shape, i)
		}
		if d != 0 && n > (1<<62)/d {
			return fmt.Errorf("tensor shape %v: too many elements", t.Shape)
		}
		n *= d
	}
	if int64(t.Len()) != n {
		return fmt.Errorf("tensor shape %v needs %d elements, data has %d", t.Shape, n, t.Len())
	}
	return nil
}

func dtypeOf[T Element](T) string { return NewTensor[T](nil, nil).DType() }

// dtypeOrKind names v's element type, or its Go type when it is not one.
func dtypeOrKind(v any) string {
	if s := (Tensor{Data: v}).DType(); s != "" {
		return s
	}
	if v == nil {
		return "nil"
	}
	return fmt.Sprintf("%T", v)
}

// dtypeName maps ONNX Runtime's element type to the names DType uses; types
// Tensor cannot hold get ONNX's own names (float16, bfloat16, string, ...).
func dtypeName(t ortgo.TensorElementDataType) string {
	switch t {
	case ortgo.TensorElementDataTypeFloat:
		return "float32"
	case ortgo.TensorElementDataTypeDouble:
		return "float64"
	case ortgo.TensorElementDataTypeInt8:
		return "int8"
	case ortgo.TensorElementDataTypeInt16:
		return "int16"
	case ortgo.TensorElementDataTypeInt32:
		return "int32"
	case ortgo.TensorElementDataTypeInt64:
		return "int64"
	case ortgo.TensorElementDataTypeUint8:
		return "uint8"
	case ortgo.TensorElementDataTypeUint16:
		return "uint16"
	case ortgo.TensorElementDataTypeUint32:
		return "uint32"
	case ortgo.TensorElementDataTypeUint64:
		return "uint64"
	case ortgo.TensorElementDataTypeBool:
		return "bool"
	case ortgo.TensorElementDataTypeFloat16:
		return "float16"
	case ortgo.TensorElementDataTypeBFloat16:
		return "bfloat16"
	case ortgo.TensorElementDataTypeString:
		return "string"
	case ortgo.TensorElementDataTypeComplex64:
		return "complex64"
	case ortgo.TensorElementDataTypeComplex128:
		return "complex128"
	}
	return fmt.Sprintf("onnx-type-%d", int(t))
}

// toValue wraps t's data (without copying) in an ONNX Runtime value; the
// caller destroys it after Run.
func toValue(t Tensor) (ortgo.Value, error) {
	switch d := t.Data.(type) {
	case []float32:
		return newValue(t.Shape, d)
	case []float64:
		return newValue(t.Shape, d)
	case []int8:
		return newValue(t.Shape, d)
	case []int16:
		return newValue(t.Shape, d)
	case []int32:
		return newValue(t.Shape, d)
	case []int64:
		return newValue(t.Shape, d)
	case []uint8:
		return newValue(t.Shape, d)
	case []uint16:
		return newValue(t.Shape, d)
	case []uint32:
		return newValue(t.Shape, d)
	case []uint64:
		return newValue(t.Shape, d)
	case []bool:
		return newValue(t.Shape, d)
	}
	return nil, fmt.Errorf("tensor data is %s, not a supported element slice", dtypeOrKind(t.Data))
}

func newValue[T Element](shape []int64, data []T) (ortgo.Value, error) {
	if len(shape) == 0 {
		return ortgo.NewScalar(data[0])
	}
	return ortgo.NewTensor(ortgo.NewShape(shape...), data)
}

// newScalar allocates a rank-0 output of the given dtype.
func newScalar(dtype string) (ortgo.Value, error) {
	switch dtype {
	case "float32":
		return ortgo.NewEmptyScalar[float32]()
	case "float64":
		return ortgo.NewEmptyScalar[float64]()
	case "int8":
		return ortgo.NewEmptyScalar[int8]()
	case "int16":
		return ortgo.NewEmptyScalar[int16]()
	case "int32":
		return ortgo.NewEmptyScalar[int32]()
	case "int64":
		return ortgo.NewEmptyScalar[int64]()
	case "uint8":
		return ortgo.NewEmptyScalar[uint8]()
	case "uint16":
		return ortgo.NewEmptyScalar[uint16]()
	case "uint32":
		return ortgo.NewEmptyScalar[uint32]()
	case "uint64":
		return ortgo.NewEmptyScalar[uint64]()
	case "bool":
		return ortgo.NewEmptyScalar[bool]()
	}
	return nil, fmt.Errorf("scalar of dtype %s is not supported", dtype)
}

// fromValue copies nothing: onnxruntime_go already copied the output into a
// Go slice, which the returned Tensor keeps after v is destroyed.
func fromValue(v ortgo.Value) (Tensor, error) {
	switch x := v.(type) {
	case *ortgo.Tensor[float32]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[float64]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[int8]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[int16]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[int32]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[int64]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[uint8]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[uint16]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[uint32]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[uint64]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Tensor[bool]:
		return NewTensor([]int64(x.GetShape()), x.GetData()), nil
	case *ortgo.Scalar[float32]:
		return NewTensor([]int64{}, []float32{x.GetData()}), nil
	case *ortgo.Scalar[float64]:
		return NewTensor([]int64{}, []float64{x.GetData()}), nil
	case *ortgo.Scalar[int8]:
		return NewTensor([]int64{}, []int8{x.GetData()}), nil
	case *ortgo.Scalar[int16]:
		return NewTensor([]int64{}, []int16{x.GetData()}), nil
	case *ortgo.Scalar[int32]:
		return NewTensor([]int64{}, []int32{x.GetData()}), nil
	case *ortgo.Scalar[int64]:
		return NewTensor([]int64{}, []int64{x.GetData()}), nil
	case *ortgo.Scalar[uint8]:
		return NewTensor([]int64{}, []uint8{x.GetData()}), nil
	case *ortgo.Scalar[uint16]:
		return NewTensor([]int64{}, []uint16{x.GetData()}), nil
	case *ortgo.Scalar[uint32]:
		return NewTensor([]int64{}, []uint32{x.GetData()}), nil
	case *ortgo.Scalar[uint64]:
		return NewTensor([]int64{}, []uint64{x.GetData()}), nil
	case *ortgo.Scalar[bool]:
		return NewTensor([]int64{}, []bool{x.GetData()}), nil
	case *ortgo.CustomDataTensor:
		return Tensor{}, fmt.Errorf("output element type %s is not supported", dtypeName(ortgo.TensorElementDataType(x.DataType())))
	}
	return Tensor{}, fmt.Errorf("output is a %s, only tensors are supported", v.GetONNXType())
}
