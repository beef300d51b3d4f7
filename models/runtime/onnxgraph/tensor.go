package onnxgraph

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is TensorProto.DataType.
type DataType int32

// ONNX element types.
const (
	Undefined  DataType = 0
	Float      DataType = 1
	Uint8      DataType = 2
	Int8       DataType = 3
	Uint16     DataType = 4
	Int16      DataType = 5
	Int32      DataType = 6
	Int64      DataType = 7
	String     DataType = 8
	Bool       DataType = 9
	Float16    DataType = 10
	Double     DataType = 11
	Uint32     DataType = 12
	Uint64     DataType = 13
	Complex64  DataType = 14
	Complex128 DataType = 15
	BFloat16   DataType = 16
)

var dataTypeNames = map[DataType]string{
	Undefined: "undefined", Float: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16",
	Int16: "int16", Int32: "int32", Int64: "int64", String: "string", Bool: "bool",
	Float16: "float16", Double: "float64", Uint32: "uint32", Uint64: "uint64",
	Complex64: "complex64", Complex128: "complex128", BFloat16: "bfloat16",
}

// String returns the element type's name (float32, int64, float16, ...).
func (d DataType) String() string {
	if s, ok := dataTypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("onnx-type-%d", int32(d))
}

// Size returns the bytes one element takes, or 0 for types without a fixed size (string,
// undefined, and the 8-bit float and 4-bit types this package does not handle).
func (d DataType) Size() int {
	switch d {
	case Uint8, Int8, Bool:
		return 1
	case Uint16, Int16, Float16, BFloat16:
		return 2
	case Float, Int32, Uint32:
		return 4
	case Int64, Double, Uint64, Complex64:
		return 8
	case Complex128:
		return 16
	}
	return 0
}

// IsFloat reports whether d is a real floating-point type.
func (d DataType) IsFloat() bool {
	return d == Float || d == Double || d == Float16 || d == BFloat16
}

// KeyValue is one StringStringEntryProto (external_data entries, metadata).
type KeyValue struct {
	Key, Value string

	unknown [][]byte
}

// External is TensorProto.DataLocation's EXTERNAL value.
const External = 1

// Tensor is a TensorProto: a dense tensor's type, shape and data. The data is in memory (Raw or
// one of the typed fields), in the model file it was read from, or in an external data file
// (Location == External, entries in ExternalData); ReadInto reads any of them.
type Tensor struct {
	Name     string
	DataType DataType
	Dims     []int64

	// Raw is raw_data held in memory (little-endian, row-major).
	Raw []byte
	// The typed data fields, used by some exporters for small tensors instead of raw_data.
	FloatData  []float32
	Int32Data  []int32
	Int64Data  []int64
	DoubleData []float64
	Uint64Data []uint64

	// Location is 0 (data in this message) or External; ExternalData then holds location, offset,
	// length and checksum entries, location relative to Dir.
	Location     int32
	ExternalData []KeyValue
	// Dir is the folder external data locations are relative to.
	Dir string

	src     *source // file holding raw_data, when it was left there (rawSpan)
	rawSpan span
	stored  DataType // element type of the bytes in the file, when a conversion changed DataType

	set     fieldSet
	unknown [][]byte
}

// source is a model file whose tensors' raw_data was left in place.
type source struct{ path string }

// Elements returns the number of elements (the product of Dims; 1 for a scalar).
func (t *Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// NumBytes returns the size of the tensor's data, or an error for element types without a
// fixed size or negative dimensions.
func (t *Tensor) NumBytes() (int64, error) {
	size := t.DataType.Size()
	if size == 0 {
		return 0, fmt.Errorf("onnxgraph: tensor %q has element type %s, which has no fixed size", t.Name, t.DataType)
	}
	for _, d := range t.Dims {
		if d < 0 {
			return 0, fmt.Errorf("onnxgraph: tensor %q has a negative dimension in %v", t.Name, t.Dims)
		}
	}
	return t.Elements() * int64(size), nil
}

// IsExternal reports whether the tensor's data is in an external data file.
func (t *Tensor) IsExternal() bool { return t.Location == External }

// InMemory reports whether the tensor's data is held in memory (Raw or a typed field).
func (t *Tensor) InMemory() bool { return !t.IsExternal() && t.src == nil }

// externalEntry returns the value of an external_data entry.
func (t *Tensor) externalEntry(key string) (string, bool) {
	for _, kv := range t.ExternalData {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// ExternalFile returns the path of the external data file holding the tensor's data, or an
// error when the location entry is missing or points outside the model's folder.
func (t *Tensor) ExternalFile() (string, error) {
	loc, ok := t.externalEntry("location")
	if !ok || loc == "" {
		return "", fmt.Errorf("onnxgraph: tensor %q is stored externally but has no location entry", t.Name)
	}
	clean := filepath.Clean(filepath.FromSlash(loc))
	if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("onnxgraph: tensor %q: external data location %q must be a path relative to the model's folder", t.Name, loc)
	}
	return filepath.Join(t.Dir, clean), nil
}

// Files caches the open files Tensor.ReadInto reads from, and a scratch buffer for conversions.
// The zero value is ready to use; Close closes the files. A Files is not safe for concurrent use.
type Files struct {
	open    map[string]*os.File
	sizes   map[string]int64
	scratch []byte
}

// Close closes the cached files; the Files can be used again afterwards.
func (fs *Files) Close() error {
	var first error
	for p, f := range fs.open {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
		delete(fs.open, p)
	}
	fs.scratch = nil
	return first
}

func (fs *Files) get(path string) (*os.File, int64, error) {
	if f, ok := fs.open[path]; ok {
		return f, fs.sizes[path], nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if fs.open == nil {
		fs.open, fs.sizes = map[string]*os.File{}, map[string]int64{}
	}
	fs.open[path], fs.sizes[path] = f, st.Size()
	return f, st.Size(), nil
}

// ReadInto fills dst, which must be exactly NumBytes long, with the tensor's data as
// little-endian row-major bytes of DataType, reading it from memory, the model file or the
// external data file (converting float16 or bfloat16 bytes when ConvertToFloat32 changed the
// type). files caches open files across calls and may be nil. It returns an error naming the
// tensor and file when the data is missing, truncated or of the wrong size.
func (t *Tensor) ReadInto(dst []byte, files *Files) error {
	want, err := t.NumBytes()
	if err != nil {
		return err
	}
	if int64(len(dst)) != want {
		return fmt.Errorf("onnxgraph: tensor %q (%s %v) has %d bytes, got a buffer of %d", t.Name, t.DataType, t.Dims, want, len(dst))
	}
	if files == nil {
		files = &Files{}
		defer files.Close()
	}
	stored := t.DataType
	if t.stored != Undefined {
		stored = t.stored
	}
	if stored == t.DataType {
		return t.readStored(dst, files)
	}
	n := t.Elements() * int64(stored.Size())
	if int64(cap(files.scratch)) < n {
		files.scratch = make([]byte, n)
	}
	buf := files.scratch[:n]
	if err := t.readStored(buf, files); err != nil {
		return err
	}
	return convertToFloat32(dst, buf, stored)
}

// readStored reads the tensor's bytes as stored (before any type conversion) into dst.
func (t *Tensor) readStored(dst []byte, files *Files) error {
	switch {
	case t.IsExternal():
		return t.readExternal(dst, files)
	case t.src != nil:
		if t.rawSpan.n != int64(len(dst)) {
			return fmt.Errorf("onnxgraph: %s: tensor %q (%v %v) needs %d bytes, but its raw_data has %d", t.src.path, t.Name, t.storedType(), t.Dims, len(dst), t.rawSpan.n)
		}
		f, _, err := files.get(t.src.path)
		if err != nil {
			return fmt.Errorf("onnxgraph: reading tensor %q: %w", t.Name, err)
		}
		if _, err := f.ReadAt(dst, t.rawSpan.off); err != nil {
			return fmt.Errorf("onnxgraph: %s: reading tensor %q: %w", t.src.path, t.Name, err)
		}
		return nil
	case t.Raw != nil:
		if len(t.Raw) != len(dst) {
			return fmt.Errorf("onnxgraph: tensor %q (%v %v) needs %d bytes, but its raw_data has %d", t.Name, t.storedType(), t.Dims, len(dst), len(t.Raw))
		}
		copy(dst, t.Raw)
		return nil
	}
	return t.readTyped(dst)
}

func (t *Tensor) storedType() DataType {
	if t.stored != Undefined {
		return t.stored
	}
	return t.DataType
}

func (t *Tensor) readExternal(dst []byte, files *Files) error {
	path, err := t.ExternalFile()
	if err != nil {
		return err
	}
	var off int64
	if s, ok := t.externalEntry("offset"); ok {
		if off, err = strconv.ParseInt(s, 10, 64); err != nil || off < 0 {
			return fmt.Errorf("onnxgraph: tensor %q: external data offset %q is not a byte offset", t.Name, s)
		}
	}
	if s, ok := t.externalEntry("length"); ok {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n != int64(len(dst)) {
			return fmt.Errorf("onnxgraph: tensor %q (%v %v) needs %d bytes, but its external data length is %q", t.Name, t.storedType(), t.Dims, len(dst), s)
		}
	}
	f, size, err := files.get(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("onnxgraph: tensor %q is stored in the external data file %s, which does not exist: keep the %s file the exporter wrote next to the .onnx file", t.Name, path, filepath.Base(path))
		}
		return fmt.Errorf("onnxgraph: tensor %q: opening its external data file: %w", t.Name, err)
	}
	if end := off + int64(len(dst)); end > size {
		return fmt.Errorf("onnxgraph: %s is truncated: tensor %q needs bytes [%d, %d) but the file has %d bytes (copy or download it again)", path, t.Name, off, end, size)
	}
	if _, err := f.ReadAt(dst, off); err != nil && !(errors.Is(err, io.EOF) && len(dst) == 0) {
		return fmt.Errorf("onnxgraph: %s: reading tensor %q: %w", path, t.Name, err)
	}
	return nil
}

// readTyped converts the typed data fields to raw little-endian bytes.
func (t *Tensor) readTyped(dst []byte) error {
	n := int(t.Elements())
	dt := t.storedType()
	bad := func(have int) error {
		return fmt.Errorf("onnxgraph: tensor %q (%v %v) has %d elements, but holds %d values", t.Name, dt, t.Dims, n, have)
	}
	switch dt {
	case Float:
		if len(t.FloatData) != n {
			return bad(len(t.FloatData))
		}
		for i, v := range t.FloatData {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case Double:
		if len(t.DoubleData) != n {
			return bad(len(t.DoubleData))
		}
		for i, v := range t.DoubleData {
			binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(v))
		}
	case Int64:
		if len(t.Int64Data) != n {
			return bad(len(t.Int64Data))
		}
		for i, v := range t.Int64Data {
			binary.LittleEndian.PutUint64(dst[8*i:], uint64(v))
		}
	case Uint64, Uint32:
		if len(t.Uint64Data) != n {
			return bad(len(t.Uint64Data))
		}
		for i, v := range t.Uint64Data {
			if dt == Uint32 {
				binary.LittleEndian.PutUint32(dst[4*i:], uint32(v))
			} else {
				binary.LittleEndian.PutUint64(dst[8*i:], v)
			}
		}
	case Int32, Int16, Int8, Uint8, Uint16, Bool, Float16, BFloat16:
		if len(t.Int32Data) != n {
			return bad(len(t.Int32Data))
		}
		size := dt.Size()
		for i, v := range t.Int32Data {
			switch size {
			case 1:
				dst[i] = byte(v)
			case 2:
				binary.LittleEndian.PutUint16(dst[2*i:], uint16(v))
			default:
				binary.LittleEndian.PutUint32(dst[4*i:], uint32(v))
			}
		}
	default:
		if n == 0 {
			return nil
		}
		return fmt.Errorf("onnxgraph: tensor %q has no data this package can read (element type %s)", t.Name, dt)
	}
	return nil
}

// Bytes returns the tensor's data as little-endian bytes of DataType (see ReadInto).
func (t *Tensor) Bytes() ([]byte, error) {
	n, err := t.NumBytes()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	return b, t.ReadInto(b, nil)
}

// Int64s returns the values of an integer or boolean tensor as int64s.
func (t *Tensor) Int64s() ([]int64, error) {
	b, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	out := make([]int64, t.Elements())
	for i := range out {
		switch t.DataType {
		case Int64, Uint64:
			out[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		case Int32:
			out[i] = int64(int32(binary.LittleEndian.Uint32(b[4*i:])))
		case Uint32:
			out[i] = int64(binary.LittleEndian.Uint32(b[4*i:]))
		case Int16:
			out[i] = int64(int16(binary.LittleEndian.Uint16(b[2*i:])))
		case Uint16:
			out[i] = int64(binary.LittleEndian.Uint16(b[2*i:]))
		case Int8:
			out[i] = int64(int8(b[i]))
		case Uint8, Bool:
			out[i] = int64(b[i])
		default:
			return nil, fmt.Errorf("onnxgraph: tensor %q is %s, want an integer tensor", t.Name, t.DataType)
		}
	}
	return out, nil
}

// Float64s returns the values of a real tensor (floating-point or integer) as float64s.
func (t *Tensor) Float64s() ([]float64, error) {
	if !t.DataType.IsFloat() {
		ints, err := t.Int64s()
		if err != nil {
			return nil, err
		}
		out := make([]float64, len(ints))
		for i, v := range ints {
			out[i] = float64(v)
		}
		return out, nil
	}
	b, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	out := make([]float64, t.Elements())
	for i := range out {
		switch t.DataType {
		case Float:
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		case Double:
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		case Float16:
			out[i] = float64(halfToFloat32(binary.LittleEndian.Uint16(b[2*i:])))
		case BFloat16:
			out[i] = float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16))
		}
	}
	return out, nil
}

// Float32s returns the values of a float32 tensor (or a float16/bfloat16 one, converted), read
// with one buffer of the tensor's size: for large tables such as token embeddings.
func (t *Tensor) Float32s() ([]float32, error) {
	if t.DataType == Float16 || t.DataType == BFloat16 {
		c := *t
		if err := c.ConvertToFloat32(); err != nil {
			return nil, err
		}
		return c.Float32s()
	}
	if t.DataType != Float {
		return nil, fmt.Errorf("onnxgraph: tensor %q is %s, want float32", t.Name, t.DataType)
	}
	out := make([]float32, t.Elements())
	if len(out) == 0 {
		return out, nil
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*len(out))
	if err := t.ReadInto(b, nil); err != nil {
		return nil, err
	}
	if !littleEndian {
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	}
	return out, nil
}

// littleEndian reports whether this machine stores numbers as ONNX files do.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// NewTensor returns an in-memory tensor of type dt holding vals (converted to dt; integer types
// truncate, and are exact up to 2^53: see NewInt64Tensor), for constants a rewrite adds. It panics on element types without a fixed size.
func NewTensor(name string, dt DataType, dims []int64, vals ...float64) *Tensor {
	size := dt.Size()
	if size == 0 {
		panic(fmt.Sprintf("onnxgraph.NewTensor: element type %s has no fixed size", dt))
	}
	raw := make([]byte, len(vals)*size)
	for i, v := range vals {
		switch dt {
		case Float:
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(v)))
		case Double:
			binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(v))
		case Float16:
			binary.LittleEndian.PutUint16(raw[2*i:], float32ToHalf(float32(v)))
		case BFloat16:
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(math.Float32bits(float32(v))>>16))
		case Int64, Uint64:
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(int64(v)))
		case Int32, Uint32:
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(int64(v)))
		case Int16, Uint16:
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(int64(v)))
		default:
			raw[i] = byte(int64(v))
		}
	}
	if raw == nil {
		raw = []byte{}
	}
	return &Tensor{Name: name, DataType: dt, Dims: dims, Raw: raw}
}

// NewInt64Tensor returns an in-memory int64 tensor holding vals.
func NewInt64Tensor(name string, dims []int64, vals ...int64) *Tensor {
	raw := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return &Tensor{Name: name, DataType: Int64, Dims: dims, Raw: raw}
}

// Header returns a copy of the tensor's name, type and shape with no data.
func (t *Tensor) Header() *Tensor {
	return &Tensor{Name: t.Name, DataType: t.DataType, Dims: append([]int64(nil), t.Dims...), Dir: t.Dir}
}

// InMemoryCopy returns a copy of the tensor with its data read into Raw (external data and data
// left in the model file included).
func (t *Tensor) InMemoryCopy() (*Tensor, error) {
	b, err := t.Bytes()
	if err != nil {
		return nil, err
	}
	c := t.Header()
	c.Raw = b
	return c, nil
}

// ConvertToFloat32 changes a float16 or bfloat16 tensor to float32: data in memory is converted
// now, data in files when it is read (ReadInto). It does nothing to other types.
func (t *Tensor) ConvertToFloat32() error {
	if t.DataType != Float16 && t.DataType != BFloat16 {
		return nil
	}
	if t.InMemory() {
		b, err := t.Bytes()
		if err != nil {
			return err
		}
		out := make([]byte, 2*len(b))
		if err := convertToFloat32(out, b, t.DataType); err != nil {
			return err
		}
		*t = Tensor{Name: t.Name, DataType: Float, Dims: t.Dims, Raw: out, Dir: t.Dir, set: t.set, unknown: t.unknown}
		return nil
	}
	t.stored, t.DataType = t.DataType, Float
	return nil
}

func convertToFloat32(dst, src []byte, from DataType) error {
	if len(dst) != 2*len(src) {
		return fmt.Errorf("onnxgraph: converting %s to float32: %d bytes into %d", from, len(src), len(dst))
	}
	for i := 0; 2*i < len(src); i++ {
		h := binary.LittleEndian.Uint16(src[2*i:])
		var bits uint32
		if from == BFloat16 {
			bits = uint32(h) << 16
		} else {
			bits = math.Float32bits(halfToFloat32(h))
		}
		binary.LittleEndian.PutUint32(dst[4*i:], bits)
	}
	return nil
}

// halfToFloat32 converts IEEE 754 binary16 bits to float32 (exactly: every half is a float32).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, nan
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac · 2^-24
		f := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | frac<<13)
}

// float32ToHalf converts a float32 to the nearest binary16 (ties to even).
func float32ToHalf(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int32(bits>>23) & 0xff
	frac := bits & 0x7fffff
	if exp == 0xff {
		if frac != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := frac | 0x800000
		shift := uint32(14 - e)
		half := m >> shift
		rem := m & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | frac>>13
	rem := frac & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++
	}
	return sign | uint16(half)
}

func float32frombits(b uint32) float32 { return math.Float32frombits(b) }
func float32bits(f float32) uint32     { return math.Float32bits(f) }

func (t *Tensor) decode(it fieldIter, src *source) error {
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		switch {
		case num == 1 && (typ == protowire.VarintType || typ == protowire.BytesType):
			t.Dims, err = repeatedVarints(it, typ, t.Dims)
		case num == 2 && typ == protowire.VarintType:
			var v int64
			v, err = getInt64(it)
			t.DataType = DataType(v)
			t.set.add(2)
		case num == 4 && (typ == protowire.Fixed32Type || typ == protowire.BytesType):
			var bits []uint32
			bits, err = repeatedFixed32(it, typ, nil)
			for _, b := range bits {
				t.FloatData = append(t.FloatData, math.Float32frombits(b))
			}
		case num == 5 && (typ == protowire.VarintType || typ == protowire.BytesType):
			var v []int64
			v, err = repeatedVarints(it, typ, nil)
			for _, x := range v {
				t.Int32Data = append(t.Int32Data, int32(x))
			}
		case num == 7 && (typ == protowire.VarintType || typ == protowire.BytesType):
			t.Int64Data, err = repeatedVarints(it, typ, t.Int64Data)
		case num == 8 && typ == protowire.BytesType:
			t.Name, err = getString(it)
			t.set.add(8)
		case num == 9 && typ == protowire.BytesType:
			var sp span
			var inFile bool
			if sp, inFile, err = it.payloadSpan(); err == nil {
				if inFile {
					t.src, t.rawSpan = src, sp
				} else {
					t.Raw, err = it.bytes()
					if t.Raw == nil {
						t.Raw = []byte{}
					}
				}
			}
		case num == 10 && (typ == protowire.Fixed64Type || typ == protowire.BytesType):
			var bits []uint64
			bits, err = repeatedFixed64(it, typ, nil)
			for _, b := range bits {
				t.DoubleData = append(t.DoubleData, math.Float64frombits(b))
			}
		case num == 11 && (typ == protowire.VarintType || typ == protowire.BytesType):
			var v []int64
			v, err = repeatedVarints(it, typ, nil)
			for _, x := range v {
				t.Uint64Data = append(t.Uint64Data, uint64(x))
			}
		case num == 13 && typ == protowire.BytesType:
			var sub fieldIter
			if sub, err = it.message(false); err == nil {
				var kv KeyValue
				err = kv.decode(sub)
				t.ExternalData = append(t.ExternalData, kv)
			}
		case num == 14 && typ == protowire.VarintType:
			var v int64
			v, err = getInt64(it)
			t.Location = int32(v)
			t.set.add(14)
		default:
			var b []byte
			b, err = it.raw()
			t.unknown = append(t.unknown, b)
		}
		if err != nil {
			return err
		}
	}
}

func (t *Tensor) encode() ([]byte, error) {
	var e encoder
	for _, d := range t.Dims {
		e.varint(1, uint64(d))
	}
	if t.DataType != 0 || t.set.has(2) {
		e.varint(2, uint64(t.DataType))
	}
	if len(t.FloatData) > 0 {
		var b []byte
		for _, f := range t.FloatData {
			b = protowire.AppendFixed32(b, math.Float32bits(f))
		}
		e.bytes(4, b)
	}
	if len(t.Int32Data) > 0 {
		var b []byte
		for _, v := range t.Int32Data {
			b = protowire.AppendVarint(b, uint64(int64(v)))
		}
		e.bytes(5, b)
	}
	if len(t.Int64Data) > 0 {
		var b []byte
		for _, v := range t.Int64Data {
			b = protowire.AppendVarint(b, uint64(v))
		}
		e.bytes(7, b)
	}
	if t.Name != "" || t.set.has(8) {
		e.string(8, t.Name)
	}
	switch {
	case t.src != nil:
		b, err := t.Bytes()
		if err != nil {
			return nil, err
		}
		e.bytes(9, b)
	case t.Raw != nil:
		e.bytes(9, t.Raw)
	}
	if len(t.DoubleData) > 0 {
		var b []byte
		for _, f := range t.DoubleData {
			b = protowire.AppendFixed64(b, math.Float64bits(f))
		}
		e.bytes(10, b)
	}
	if len(t.Uint64Data) > 0 {
		var b []byte
		for _, v := range t.Uint64Data {
			b = protowire.AppendVarint(b, v)
		}
		e.bytes(11, b)
	}
	for _, kv := range t.ExternalData {
		e.bytes(13, kv.encode())
	}
	if t.Location != 0 || t.set.has(14) {
		e.varint(14, uint64(t.Location))
	}
	e.unknown(t.unknown)
	return e.finish(), nil
}

func (kv *KeyValue) decode(it fieldIter) error {
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			kv.Key, err = getString(it)
		case num == 2 && typ == protowire.BytesType:
			kv.Value, err = getString(it)
		default:
			var b []byte
			b, err = it.raw()
			kv.unknown = append(kv.unknown, b)
		}
		if err != nil {
			return err
		}
	}
}

func (kv *KeyValue) encode() []byte {
	var e encoder
	e.string(1, kv.Key)
	e.string(2, kv.Value)
	e.unknown(kv.unknown)
	return e.finish()
}
