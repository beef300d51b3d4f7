package sdxl

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file decodes an ONNX ModelProto only as far as the graph surgery of surgery.go needs:
// the graph's nodes, inputs, outputs and initializers. Every other field (of the model, the
// graph, a node, a tensor) is kept as the bytes it was encoded with and written back unchanged,
// so a rewritten model differs from the original only where the surgery changed it. Weights stay
// where they are: raw data inside the file is a sub-slice of the file's bytes, and external data
// is only referenced. (onnx-gomlx keeps its protobuf types in an internal package.)

// Field numbers of onnx.proto (IR version 10).
const (
	modelGraph        = 7  // ModelProto.graph
	modelOpsetImport  = 8  // ModelProto.opset_import
	opsetDomain       = 1  // OperatorSetIdProto.domain
	opsetVersion      = 2  // OperatorSetIdProto.version
	graphNode         = 1  // GraphProto.node
	graphInitializer  = 5  // GraphProto.initializer
	graphInput        = 11 // GraphProto.input
	graphOutput       = 12 // GraphProto.output
	graphValueInfo    = 13 // GraphProto.value_info
	nodeInput         = 1  // NodeProto.input
	nodeOutput        = 2  // NodeProto.output
	nodeName          = 3  // NodeProto.name
	nodeOpType        = 4  // NodeProto.op_type
	nodeAttribute     = 5  // NodeProto.attribute
	nodeDomain        = 7  // NodeProto.domain
	attrName          = 1  // AttributeProto.name
	attrI             = 3  // AttributeProto.i
	attrT             = 5  // AttributeProto.t
	attrG             = 6  // AttributeProto.g
	attrInts          = 8  // AttributeProto.ints
	attrGraphs        = 11 // AttributeProto.graphs
	attrType          = 20 // AttributeProto.type
	valueName         = 1  // ValueInfoProto.name
	valueType         = 2  // ValueInfoProto.type
	typeTensor        = 1  // TypeProto.tensor_type
	tensorTypeElem    = 1  // TypeProto.Tensor.elem_type
	tensorTypeShape   = 2  // TypeProto.Tensor.shape
	shapeDim          = 1  // TensorShapeProto.dim
	dimValue          = 1  // TensorShapeProto.Dimension.dim_value
	dimParam          = 2  // TensorShapeProto.Dimension.dim_param
	tensorDims        = 1  // TensorProto.dims
	tensorDataType    = 2  // TensorProto.data_type
	tensorFloatData   = 4  // TensorProto.float_data
	tensorInt64Data   = 7  // TensorProto.int64_data
	tensorName        = 8  // TensorProto.name
	tensorRawData     = 9  // TensorProto.raw_data
	tensorExternal    = 13 // TensorProto.external_data
	tensorDataLoc     = 14 // TensorProto.data_location
	entryKey          = 1  // StringStringEntryProto.key
	entryValue        = 2  // StringStringEntryProto.value
	dataLocationExtrn = 1  // TensorProto.DataLocation EXTERNAL
)

// ONNX element types (TensorProto.DataType) that the surgery meets.
const (
	elemFloat   = 1
	elemInt32   = 6
	elemInt64   = 7
	elemFloat16 = 10
	elemDouble  = 11
	elemBF16    = 16
)

// elemName names an ONNX element type for error messages.
func elemName(e int32) string {
	switch e {
	case elemFloat:
		return "float32"
	case elemInt32:
		return "int32"
	case elemInt64:
		return "int64"
	case elemFloat16:
		return "float16"
	case elemDouble:
		return "float64"
	case elemBF16:
		return "bfloat16"
	}
	return fmt.Sprintf("element type %d", e)
}

// onnxModel is a decoded ModelProto.
type onnxModel struct {
	rest  []byte // the model's fields other than the graph, as encoded
	graph onnxGraph
	opset int64 // version of the default ("" or "ai.onnx") operator set
}

// onnxGraph is a decoded GraphProto.
type onnxGraph struct {
	nodes           []*onnxNode
	inits           []*onnxTensor
	inputs, outputs []*onnxValue
	valueInfo       []*onnxValue
	rest            []byte // name, doc string, sparse initializers, ... as encoded
}

// onnxNode is a decoded NodeProto.
type onnxNode struct {
	inputs, outputs []string
	name, op        string
	domain          string
	attrs           []onnxAttr
	rest            []byte // doc string, overload, metadata, as encoded
}

// onnxAttr is an AttributeProto: its name, type and integer values decoded, the rest kept.
type onnxAttr struct {
	name     string
	typ      int64
	i        int64
	ints     []int64
	subgraph bool   // holds a graph (If, Loop, Scan bodies)
	raw      []byte // the AttributeProto as encoded; nil for one made by the surgery
}

// onnxValue is a ValueInfoProto of a tensor.
type onnxValue struct {
	name string
	elem int32     // element type, 0 if the value is not a tensor
	dims []onnxDim // nil when the shape is not declared
	raw  []byte    // as encoded; nil for one made by the surgery
}

// onnxDim is one dimension: a size, a symbolic name, or neither (unknown).
type onnxDim struct {
	value int64
	param string
}

// onnxTensor is an initializer.
type onnxTensor struct {
	name     string
	dims     []int64
	elem     int32
	raw      []byte            // the TensorProto as encoded
	rawData  []byte            // raw_data, a sub-slice of the file's bytes
	floats   []float32         // float_data
	ints     []int64           // int64_data
	external map[string]string // external_data entries (location, offset, length)
}

// isExternal reports whether the tensor's values live in an external data file.
func (t *onnxTensor) isExternal() bool { return t.external != nil }

// parseModel decodes a serialized ModelProto. data must stay unchanged while the model is used:
// raw weights are sub-slices of it.
func parseModel(data []byte) (*onnxModel, error) {
	m := &onnxModel{}
	sawGraph := false
	err := walk(data, func(num protowire.Number, typ protowire.Type, val, field []byte) error {
		switch {
		case num == modelGraph && typ == protowire.BytesType:
			sawGraph = true
			return m.graph.parse(val)
		case num == modelOpsetImport && typ == protowire.BytesType:
			var domain string
			var version int64
			if err := walk(val, func(n protowire.Number, t protowire.Type, v, _ []byte) error {
				switch {
				case n == opsetDomain && t == protowire.BytesType:
					domain = string(v)
				case n == opsetVersion && t == protowire.VarintType:
					version = int64(varint(v))
				}
				return nil
			}); err != nil {
				return err
			}
			if domain == "" || domain == "ai.onnx" {
				m.opset = version
			}
		}
		m.rest = append(m.rest, field...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("not a readable ONNX model: %w", err)
	}
	if !sawGraph {
		return nil, fmt.Errorf("not an ONNX model: no graph")
	}
	return m, nil
}

func (g *onnxGraph) parse(data []byte) error {
	return walk(data, func(num protowire.Number, typ protowire.Type, val, field []byte) error {
		if typ != protowire.BytesType {
			g.rest = append(g.rest, field...)
			return nil
		}
		switch num {
		case graphNode:
			n, err := parseNode(val)
			if err != nil {
				return fmt.Errorf("node %d: %w", len(g.nodes), err)
			}
			g.nodes = append(g.nodes, n)
		case graphInitializer:
			t, err := parseTensor(val)
			if err != nil {
				return fmt.Errorf("initializer %d: %w", len(g.inits), err)
			}
			g.inits = append(g.inits, t)
		case graphInput, graphOutput, graphValueInfo:
			v, err := parseValue(val)
			if err != nil {
				return err
			}
			switch num {
			case graphInput:
				g.inputs = append(g.inputs, v)
			case graphOutput:
				g.outputs = append(g.outputs, v)
			default:
				g.valueInfo = append(g.valueInfo, v)
			}
		default:
			g.rest = append(g.rest, field...)
		}
		return nil
	})
}

func parseNode(data []byte) (*onnxNode, error) {
	n := &onnxNode{}
	err := walk(data, func(num protowire.Number, typ protowire.Type, val, field []byte) error {
		if typ != protowire.BytesType {
			n.rest = append(n.rest, field...)
			return nil
		}
		switch num {
		case nodeInput:
			n.inputs = append(n.inputs, string(val))
		case nodeOutput:
			n.outputs = append(n.outputs, string(val))
		case nodeName:
			n.name = string(val)
		case nodeOpType:
			n.op = string(val)
		case nodeDomain:
			n.domain = string(val)
		case nodeAttribute:
			a := onnxAttr{raw: val}
			if err := walk(val, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
				switch {
				case num == attrName && typ == protowire.BytesType:
					a.name = string(v)
				case num == attrType && typ == protowire.VarintType:
					a.typ = int64(varint(v))
				case num == attrI && typ == protowire.VarintType:
					a.i = int64(varint(v))
				case num == attrInts:
					ints, err := int64s(typ, v)
					if err != nil {
						return err
					}
					a.ints = append(a.ints, ints...)
				case num == attrG || num == attrGraphs:
					a.subgraph = true
				}
				return nil
			}); err != nil {
				return fmt.Errorf("attribute: %w", err)
			}
			n.attrs = append(n.attrs, a)
		default:
			n.rest = append(n.rest, field...)
		}
		return nil
	})
	return n, err
}

func parseValue(data []byte) (*onnxValue, error) {
	v := &onnxValue{raw: data}
	err := walk(data, func(num protowire.Number, typ protowire.Type, val, _ []byte) error {
		switch {
		case num == valueName && typ == protowire.BytesType:
			v.name = string(val)
		case num == valueType && typ == protowire.BytesType:
			return walk(val, func(num protowire.Number, typ protowire.Type, val, _ []byte) error {
				if num != typeTensor || typ != protowire.BytesType {
					return nil
				}
				return walk(val, func(num protowire.Number, typ protowire.Type, val, _ []byte) error {
					switch {
					case num == tensorTypeElem && typ == protowire.VarintType:
						v.elem = int32(varint(val))
					case num == tensorTypeShape && typ == protowire.BytesType:
						v.dims = []onnxDim{}
						return walk(val, func(num protowire.Number, typ protowire.Type, val, _ []byte) error {
							if num != shapeDim || typ != protowire.BytesType {
								return nil
							}
							var d onnxDim
							err := walk(val, func(num protowire.Number, typ protowire.Type, val, _ []byte) error {
								switch {
								case num == dimValue && typ == protowire.VarintType:
									d.value = int64(varint(val))
								case num == dimParam && typ == protowire.BytesType:
									d.param = string(val)
								}
								return nil
							})
							v.dims = append(v.dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("value info: %w", err)
	}
	return v, nil
}

func parseTensor(data []byte) (*onnxTensor, error) {
	t := &onnxTensor{raw: data}
	var location int64
	external := map[string]string{}
	err := walk(data, func(num protowire.Number, typ protowire.Type, val, _ []byte) error {
		switch {
		case num == tensorDims:
			d, err := int64s(typ, val)
			t.dims = append(t.dims, d...)
			return err
		case num == tensorDataType && typ == protowire.VarintType:
			t.elem = int32(varint(val))
		case num == tensorName && typ == protowire.BytesType:
			t.name = string(val)
		case num == tensorRawData && typ == protowire.BytesType:
			t.rawData = val
		case num == tensorFloatData:
			f, err := float32s(typ, val)
			t.floats = append(t.floats, f...)
			return err
		case num == tensorInt64Data:
			d, err := int64s(typ, val)
			t.ints = append(t.ints, d...)
			return err
		case num == tensorDataLoc && typ == protowire.VarintType:
			location = int64(varint(val))
		case num == tensorExternal && typ == protowire.BytesType:
			var k, v string
			if err := walk(val, func(num protowire.Number, typ protowire.Type, val, _ []byte) error {
				switch num {
				case entryKey:
					k = string(val)
				case entryValue:
					v = string(val)
				}
				return nil
			}); err != nil {
				return err
			}
			external[k] = v
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("tensor: %w", err)
	}
	if location == dataLocationExtrn {
		t.external = external
	}
	return t, nil
}

// walk calls fn for every field of the message data with its number, wire type, value (the
// payload of a length-delimited field, the varint's bytes, or the fixed bytes) and the whole
// encoded field.
func walk(data []byte, fn func(num protowire.Number, typ protowire.Type, val, field []byte) error) error {
	for pos := 0; pos < len(data); {
		num, typ, n := protowire.ConsumeTag(data[pos:])
		if n < 0 {
			return fmt.Errorf("byte %d: %w", pos, protowire.ParseError(n))
		}
		start := pos
		pos += n
		var val []byte
		switch typ {
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(data[pos:])
			if m < 0 {
				return fmt.Errorf("byte %d: field %d: %w", pos, num, protowire.ParseError(m))
			}
			val, pos = v, pos+m
		default:
			m := protowire.ConsumeFieldValue(num, typ, data[pos:])
			if m < 0 {
				return fmt.Errorf("byte %d: field %d: %w", pos, num, protowire.ParseError(m))
			}
			val, pos = data[pos:pos+m], pos+m
		}
		if err := fn(num, typ, val, data[start:pos]); err != nil {
			return err
		}
	}
	return nil
}

// varint decodes the bytes of a varint field value.
func varint(b []byte) uint64 {
	v, _ := protowire.ConsumeVarint(b)
	return v
}

// int64s decodes a repeated int64 field, packed or not.
func int64s(typ protowire.Type, val []byte) ([]int64, error) {
	if typ == protowire.VarintType {
		return []int64{int64(varint(val))}, nil
	}
	if typ != protowire.BytesType {
		return nil, fmt.Errorf("repeated int64 with wire type %d", typ)
	}
	var out []int64
	for len(val) > 0 {
		v, n := protowire.ConsumeVarint(val)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		out = append(out, int64(v))
		val = val[n:]
	}
	return out, nil
}

// float32s decodes a repeated float field, packed or not.
func float32s(typ protowire.Type, val []byte) ([]float32, error) {
	switch typ {
	case protowire.Fixed32Type:
		return []float32{math.Float32frombits(binary.LittleEndian.Uint32(val))}, nil
	case protowire.BytesType:
		if len(val)%4 != 0 {
			return nil, fmt.Errorf("packed floats of %d bytes", len(val))
		}
		out := make([]float32, len(val)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(val[4*i:]))
		}
		return out, nil
	}
	return nil, fmt.Errorf("repeated float with wire type %d", typ)
}

// encode serializes the model.
func (m *onnxModel) encode() []byte {
	g := m.graph.encode()
	out := make([]byte, 0, len(m.rest)+len(g)+16)
	out = append(out, m.rest...)
	out = protowire.AppendTag(out, modelGraph, protowire.BytesType)
	return protowire.AppendBytes(out, g)
}

func (g *onnxGraph) encode() []byte {
	size := len(g.rest)
	for _, t := range g.inits {
		size += len(t.raw) + 16
	}
	out := make([]byte, 0, size+1<<16)
	for _, n := range g.nodes {
		out = appendMessage(out, graphNode, n.encode())
	}
	for _, t := range g.inits {
		out = appendMessage(out, graphInitializer, t.raw)
	}
	for _, v := range g.inputs {
		out = appendMessage(out, graphInput, v.encode())
	}
	for _, v := range g.outputs {
		out = appendMessage(out, graphOutput, v.encode())
	}
	for _, v := range g.valueInfo {
		out = appendMessage(out, graphValueInfo, v.encode())
	}
	return append(out, g.rest...)
}

func (n *onnxNode) encode() []byte {
	var out []byte
	for _, s := range n.inputs {
		out = appendString(out, nodeInput, s)
	}
	for _, s := range n.outputs {
		out = appendString(out, nodeOutput, s)
	}
	if n.name != "" {
		out = appendString(out, nodeName, n.name)
	}
	out = appendString(out, nodeOpType, n.op)
	if n.domain != "" {
		out = appendString(out, nodeDomain, n.domain)
	}
	for _, a := range n.attrs {
		out = appendMessage(out, nodeAttribute, a.encode())
	}
	return append(out, n.rest...)
}

// Attribute types (AttributeProto.AttributeType).
const (
	attrTypeInt    = 2
	attrTypeTensor = 4
	attrTypeInts   = 7
)

func (a onnxAttr) encode() []byte {
	if a.raw != nil {
		return a.raw
	}
	out := appendString(nil, attrName, a.name)
	switch a.typ {
	case attrTypeInt:
		out = protowire.AppendTag(out, attrI, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(a.i))
	case attrTypeInts:
		var packed []byte
		for _, v := range a.ints {
			packed = protowire.AppendVarint(packed, uint64(v))
		}
		out = appendMessage(out, attrInts, packed)
	}
	out = protowire.AppendTag(out, attrType, protowire.VarintType)
	return protowire.AppendVarint(out, uint64(a.typ))
}

func (v *onnxValue) encode() []byte {
	if v.raw != nil {
		return v.raw
	}
	var shape []byte
	for _, d := range v.dims {
		var dim []byte
		if d.param != "" {
			dim = appendString(dim, dimParam, d.param)
		} else {
			dim = protowire.AppendTag(dim, dimValue, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d.value))
		}
		shape = appendMessage(shape, shapeDim, dim)
	}
	tt := protowire.AppendTag(nil, tensorTypeElem, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(v.elem))
	if v.dims != nil {
		tt = appendMessage(tt, tensorTypeShape, shape)
	}
	out := appendString(nil, valueName, v.name)
	return appendMessage(out, valueType, appendMessage(nil, typeTensor, tt))
}

// int64Tensor encodes an int64 TensorProto (a Constant node's value) with raw data.
func int64Tensor(name string, dims []int64, vals []int64) []byte {
	var out []byte
	if len(dims) > 0 {
		var packed []byte
		for _, d := range dims {
			packed = protowire.AppendVarint(packed, uint64(d))
		}
		out = appendMessage(out, tensorDims, packed)
	}
	out = protowire.AppendTag(out, tensorDataType, protowire.VarintType)
	out = protowire.AppendVarint(out, elemInt64)
	out = appendString(out, tensorName, name)
	raw := make([]byte, 0, 8*len(vals))
	for _, v := range vals {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
	}
	return appendMessage(out, tensorRawData, raw)
}

// tensorAttr is an attribute holding a tensor (a Constant's value).
func tensorAttr(name string, tensor []byte) onnxAttr {
	out := appendString(nil, attrName, name)
	out = appendMessage(out, attrT, tensor)
	out = protowire.AppendTag(out, attrType, protowire.VarintType)
	out = protowire.AppendVarint(out, attrTypeTensor)
	return onnxAttr{name: name, typ: attrTypeTensor, raw: out}
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}

// attr returns the named attribute of n and whether it is there.
func (n *onnxNode) attr(name string) (onnxAttr, bool) {
	for _, a := range n.attrs {
		if a.name == name {
			return a, true
		}
	}
	return onnxAttr{}, false
}
