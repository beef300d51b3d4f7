// Package onnxgraph reads, edits and writes ONNX models (onnx.proto's ModelProto) with no
// generated protobuf code, and lowers graphs that PyTorch, diffusers and transformers exports
// produce into the op set onnx-gomlx v0.3.4 converts (see [Lower]).
//
// A [Model] keeps every field it does not model verbatim, so decoding and re-encoding an
// unchanged model reproduces its bytes. Weights are not read when a model is read from a file:
// each initializer records where its bytes lie (the model file's raw_data, or an external data
// file such as optimum's model.onnx_data) and [Tensor.ReadInto] copies them straight into a
// caller's buffer, so loading a 10 GB UNet holds its weights once.
package onnxgraph

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protowire"
)

// Model is an ONNX ModelProto.
type Model struct {
	// Path is the file the model was read from ("" when decoded from bytes); Dir is the folder
	// external data locations are relative to.
	Path, Dir string
	// IRVersion is the ONNX IR version; Opsets the imported operator sets.
	IRVersion int64
	Opsets    []Opset
	// Graph is the model's main graph.
	Graph *Graph

	set     fieldSet
	unknown [][]byte
}

// Opset is one OperatorSetIdProto: a domain ("" or "ai.onnx" for the standard ops) and its version.
type Opset struct {
	Domain  string
	Version int64

	set     fieldSet
	unknown [][]byte
}

// Graph is a GraphProto: nodes in topological order, weights, and the typed inputs and outputs.
type Graph struct {
	Name         string
	Nodes        []*Node
	Initializers []*Tensor
	// Inputs, Outputs and ValueInfo describe named values (ValueInfo: intermediate ones, when the
	// exporter recorded their types).
	Inputs, Outputs, ValueInfo []*ValueInfo

	set     fieldSet
	unknown [][]byte
}

// Node is a NodeProto: one op applied to named inputs ("" for an omitted optional input).
type Node struct {
	Inputs, Outputs []string
	Name, OpType    string
	Domain          string
	Attrs           []*Attr

	set     fieldSet
	unknown [][]byte
}

// AttrType is AttributeProto.AttributeType.
type AttrType int32

// The attribute types a rewrite reads or writes; others are kept verbatim.
const (
	AttrFloat   AttrType = 1
	AttrInt     AttrType = 2
	AttrString  AttrType = 3
	AttrTensor  AttrType = 4
	AttrGraph   AttrType = 5
	AttrFloats  AttrType = 6
	AttrInts    AttrType = 7
	AttrStrings AttrType = 8
	attrGraphs  AttrType = 10
)

// Attr is an AttributeProto. Only the fields of its Type are meaningful.
type Attr struct {
	Name    string
	Type    AttrType
	F       float32
	I       int64
	S       []byte
	T       *Tensor
	Floats  []float32
	Ints    []int64
	Strings [][]byte

	unknown [][]byte // graphs, sparse tensors, type protos, ref_attr_name, doc_string
}

// ValueInfo is a ValueInfoProto: a named value and its type. The TypeProto is kept as bytes;
// ElemType and Shape read it, SetElemType edits it.
type ValueInfo struct {
	Name string
	Type []byte

	unknown [][]byte
}

// Dim is one dimension of a ValueInfo's shape: Value when known, else Param (a symbolic name
// such as "batch_size", or "" when unnamed).
type Dim struct {
	Value int64
	Param string
}

// Read decodes the ONNX model file at path. The weights are not read: initializers refer to
// their bytes in path or in external data files beside it (see Tensor.ReadInto). It returns an
// error naming the file when it cannot be opened or is not a valid ModelProto.
func Read(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("onnxgraph: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("onnxgraph: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("onnxgraph: %s is a directory, want an .onnx file", path)
	}
	m := &Model{Path: path, Dir: filepath.Dir(path)}
	src := &source{path: path}
	if err := m.decode(newFileIter(f, 0, st.Size()), src); err != nil {
		return nil, fmt.Errorf("onnxgraph: %s is not a valid ONNX model: %w", path, err)
	}
	if m.Graph == nil {
		return nil, fmt.Errorf("onnxgraph: %s has no graph: not an ONNX model", path)
	}
	m.Graph.setDir(m.Dir)
	return m, nil
}

// Decode decodes an ONNX ModelProto held in memory. Tensors keep slices of data (do not modify
// it while the model is in use); external data locations are relative to dir. It returns an
// error when data is not a valid ModelProto.
func Decode(data []byte, dir string) (*Model, error) {
	m := &Model{Dir: dir}
	if err := m.decode(newMemIter(data, 0), nil); err != nil {
		return nil, fmt.Errorf("onnxgraph: not a valid ONNX model: %w", err)
	}
	if m.Graph == nil {
		return nil, fmt.Errorf("onnxgraph: no graph: not an ONNX model")
	}
	m.Graph.setDir(m.Dir)
	return m, nil
}

// Encode returns the model's protobuf encoding. Tensors whose data lies in the model file it was
// read from are read back into the output; external data stays external (the output refers to
// the same files). It returns an error when such data cannot be read.
func (m *Model) Encode() ([]byte, error) {
	var e encoder
	if m.IRVersion != 0 || m.set.has(1) {
		e.varint(1, uint64(m.IRVersion))
	}
	if m.Graph != nil {
		g, err := m.Graph.encode()
		if err != nil {
			return nil, err
		}
		e.bytes(7, g)
	}
	for _, o := range m.Opsets {
		e.bytes(8, o.encode())
	}
	e.unknown(m.unknown)
	return e.finish(), nil
}

// Write writes the model's encoding (see Encode) to w.
func (m *Model) Write(w io.Writer) error {
	b, err := m.Encode()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// OpsetVersion returns the version of the standard operator set ("" or "ai.onnx") the model
// imports, or 0 when it imports none.
func (m *Model) OpsetVersion() int64 {
	for _, o := range m.Opsets {
		if o.Domain == "" || o.Domain == "ai.onnx" {
			return o.Version
		}
	}
	return 0
}

func (m *Model) decode(it fieldIter, src *source) error {
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		switch {
		case num == 1 && typ == protowire.VarintType:
			m.IRVersion, err = getInt64(it)
			m.set.add(1)
		case num == 7 && typ == protowire.BytesType:
			var sub fieldIter
			if sub, err = it.message(true); err == nil {
				m.Graph = &Graph{}
				err = m.Graph.decode(sub, src)
			}
		case num == 8 && typ == protowire.BytesType:
			var sub fieldIter
			if sub, err = it.message(false); err == nil {
				var o Opset
				err = o.decode(sub)
				m.Opsets = append(m.Opsets, o)
			}
		default:
			var b []byte
			b, err = it.raw()
			m.unknown = append(m.unknown, b)
		}
		if err != nil {
			return err
		}
	}
}

func (o *Opset) decode(it fieldIter) error {
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			o.Domain, err = getString(it)
			o.set.add(1)
		case num == 2 && typ == protowire.VarintType:
			o.Version, err = getInt64(it)
		default:
			var b []byte
			b, err = it.raw()
			o.unknown = append(o.unknown, b)
		}
		if err != nil {
			return err
		}
	}
}

func (o *Opset) encode() []byte {
	var e encoder
	if o.Domain != "" || o.set.has(1) {
		e.string(1, o.Domain)
	}
	e.varint(2, uint64(o.Version))
	e.unknown(o.unknown)
	return e.finish()
}

func (g *Graph) decode(it fieldIter, src *source) error {
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		if typ != protowire.BytesType {
			var b []byte
			b, err = it.raw()
			g.unknown = append(g.unknown, b)
			if err != nil {
				return err
			}
			continue
		}
		switch num {
		case 1:
			var sub fieldIter
			if sub, err = it.message(false); err == nil {
				n := &Node{}
				err = n.decode(sub)
				g.Nodes = append(g.Nodes, n)
			}
		case 2:
			g.Name, err = getString(it)
			g.set.add(2)
		case 5:
			// Initializers are streamed: their raw_data stays in the file.
			var sub fieldIter
			if sub, err = it.message(true); err == nil {
				t := &Tensor{}
				err = t.decode(sub, src)
				g.Initializers = append(g.Initializers, t)
			}
		case 11, 12, 13:
			var sub fieldIter
			if sub, err = it.message(false); err == nil {
				v := &ValueInfo{}
				err = v.decode(sub)
				switch num {
				case 11:
					g.Inputs = append(g.Inputs, v)
				case 12:
					g.Outputs = append(g.Outputs, v)
				default:
					g.ValueInfo = append(g.ValueInfo, v)
				}
			}
		default:
			var b []byte
			b, err = it.raw()
			g.unknown = append(g.unknown, b)
		}
		if err != nil {
			return err
		}
	}
}

// setDir records the folder external data is relative to in every tensor of the graph.
func (g *Graph) setDir(dir string) {
	for _, t := range g.Initializers {
		t.Dir = dir
	}
	for _, n := range g.Nodes {
		for _, a := range n.Attrs {
			if a.T != nil {
				a.T.Dir = dir
			}
		}
	}
}

func (g *Graph) encode() ([]byte, error) {
	var e encoder
	for _, n := range g.Nodes {
		b, err := n.encode()
		if err != nil {
			return nil, err
		}
		e.bytes(1, b)
	}
	if g.Name != "" || g.set.has(2) {
		e.string(2, g.Name)
	}
	for _, t := range g.Initializers {
		b, err := t.encode()
		if err != nil {
			return nil, err
		}
		e.bytes(5, b)
	}
	for _, v := range g.Inputs {
		e.bytes(11, v.encode())
	}
	for _, v := range g.Outputs {
		e.bytes(12, v.encode())
	}
	for _, v := range g.ValueInfo {
		e.bytes(13, v.encode())
	}
	e.unknown(g.unknown)
	return e.finish(), nil
}

func (n *Node) decode(it fieldIter) error {
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		if typ != protowire.BytesType {
			var b []byte
			b, err = it.raw()
			n.unknown = append(n.unknown, b)
			if err != nil {
				return err
			}
			continue
		}
		var s string
		switch num {
		case 1:
			s, err = getString(it)
			n.Inputs = append(n.Inputs, s)
		case 2:
			s, err = getString(it)
			n.Outputs = append(n.Outputs, s)
		case 3:
			n.Name, err = getString(it)
			n.set.add(3)
		case 4:
			n.OpType, err = getString(it)
			n.set.add(4)
		case 5:
			var sub fieldIter
			if sub, err = it.message(false); err == nil {
				a := &Attr{}
				err = a.decode(sub)
				n.Attrs = append(n.Attrs, a)
			}
		case 7:
			n.Domain, err = getString(it)
			n.set.add(7)
		default:
			var b []byte
			b, err = it.raw()
			n.unknown = append(n.unknown, b)
		}
		if err != nil {
			return err
		}
	}
}

func (n *Node) encode() ([]byte, error) {
	var e encoder
	for _, s := range n.Inputs {
		e.string(1, s)
	}
	for _, s := range n.Outputs {
		e.string(2, s)
	}
	if n.Name != "" || n.set.has(3) {
		e.string(3, n.Name)
	}
	if n.OpType != "" || n.set.has(4) {
		e.string(4, n.OpType)
	}
	for _, a := range n.Attrs {
		b, err := a.encode()
		if err != nil {
			return nil, err
		}
		e.bytes(5, b)
	}
	if n.Domain != "" || n.set.has(7) {
		e.string(7, n.Domain)
	}
	e.unknown(n.unknown)
	return e.finish(), nil
}

func (a *Attr) decode(it fieldIter) error {
	var seen fieldSet
	for {
		num, typ, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			a.inferType(seen)
			return nil
		}
		if num < 64 {
			seen.add(num)
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			a.Name, err = getString(it)
		case num == 20 && typ == protowire.VarintType:
			var v int64
			v, err = getInt64(it)
			a.Type = AttrType(v)
		case num == 2 && typ == protowire.Fixed32Type:
			var v uint32
			v, err = it.fixed32()
			a.F = float32frombits(v)
		case num == 3 && typ == protowire.VarintType:
			a.I, err = getInt64(it)
		case num == 4 && typ == protowire.BytesType:
			a.S, err = it.bytes()
		case num == 5 && typ == protowire.BytesType:
			var sub fieldIter
			if sub, err = it.message(false); err == nil {
				a.T = &Tensor{}
				err = a.T.decode(sub, nil)
			}
		case num == 7 && (typ == protowire.Fixed32Type || typ == protowire.BytesType):
			var bits []uint32
			bits, err = repeatedFixed32(it, typ, nil)
			for _, b := range bits {
				a.Floats = append(a.Floats, float32frombits(b))
			}
		case num == 8 && (typ == protowire.VarintType || typ == protowire.BytesType):
			a.Ints, err = repeatedVarints(it, typ, a.Ints)
		case num == 9 && typ == protowire.BytesType:
			var s []byte
			s, err = it.bytes()
			a.Strings = append(a.Strings, s)
		default:
			var b []byte
			b, err = it.raw()
			a.unknown = append(a.unknown, b)
		}
		if err != nil {
			return err
		}
	}
}

// inferType sets Type from the fields present when the file left it unset (IR version 1).
func (a *Attr) inferType(seen fieldSet) {
	if a.Type != 0 {
		return
	}
	for _, c := range []struct {
		num protowire.Number
		t   AttrType
	}{{2, AttrFloat}, {3, AttrInt}, {4, AttrString}, {5, AttrTensor}, {7, AttrFloats}, {8, AttrInts}, {9, AttrStrings}} {
		if seen.has(c.num) {
			a.Type = c.t
			return
		}
	}
}

// encode writes the attribute's type-specific field (and, for lists, each element unpacked, as
// proto2's onnx.proto declares them).
func (a *Attr) encode() ([]byte, error) {
	var e encoder
	e.string(1, a.Name)
	switch a.Type {
	case AttrFloat:
		e.fixed32(2, float32bits(a.F))
	case AttrInt:
		e.varint(3, uint64(a.I))
	case AttrString:
		e.bytes(4, a.S)
	case AttrTensor:
		if a.T != nil {
			b, err := a.T.encode()
			if err != nil {
				return nil, err
			}
			e.bytes(5, b)
		}
	case AttrFloats:
		for _, f := range a.Floats {
			e.fixed32(7, float32bits(f))
		}
	case AttrInts:
		for _, i := range a.Ints {
			e.varint(8, uint64(i))
		}
	case AttrStrings:
		for _, s := range a.Strings {
			e.bytes(9, s)
		}
	}
	e.varint(20, uint64(a.Type))
	e.unknown(a.unknown)
	return e.finish(), nil
}

func (v *ValueInfo) decode(it fieldIter) error {
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return err
		}
		switch {
		case num == 1 && typ == protowire.BytesType:
			v.Name, err = getString(it)
		case num == 2 && typ == protowire.BytesType:
			v.Type, err = it.bytes()
		default:
			var b []byte
			b, err = it.raw()
			v.unknown = append(v.unknown, b)
		}
		if err != nil {
			return err
		}
	}
}

func (v *ValueInfo) encode() []byte {
	var e encoder
	e.string(1, v.Name)
	if v.Type != nil {
		e.bytes(2, v.Type)
	}
	e.unknown(v.unknown)
	return e.finish()
}

// tensorType returns the TypeProto.Tensor payload of v's type, or nil when v is not a tensor.
func (v *ValueInfo) tensorType() []byte {
	it := newMemIter(v.Type, 0)
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return nil
		}
		if num == 1 && typ == protowire.BytesType {
			b, err := it.bytes()
			if err != nil {
				return nil
			}
			return b
		}
	}
}

// ElemType returns the element type of a tensor value, or Undefined when v is not a tensor or
// has no element type.
func (v *ValueInfo) ElemType() DataType {
	it := newMemIter(v.tensorType(), 0)
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return Undefined
		}
		if num == 1 && typ == protowire.VarintType {
			e, err := it.varint()
			if err != nil {
				return Undefined
			}
			return DataType(e)
		}
	}
}

// Shape returns a tensor value's dimensions and true, or false when its shape is not recorded.
func (v *ValueInfo) Shape() ([]Dim, bool) {
	it := newMemIter(v.tensorType(), 0)
	for {
		num, typ, ok, err := it.next()
		if err != nil || !ok {
			return nil, false
		}
		if num != 2 || typ != protowire.BytesType {
			continue
		}
		shape, err := it.message(false)
		if err != nil {
			return nil, false
		}
		dims := []Dim{}
		for {
			num, typ, ok, err := shape.next()
			if err != nil {
				return nil, false
			}
			if !ok {
				return dims, true
			}
			if num != 1 || typ != protowire.BytesType {
				continue
			}
			dim, err := shape.message(false)
			if err != nil {
				return nil, false
			}
			var d Dim
			for {
				num, typ, ok, err := dim.next()
				if err != nil {
					return nil, false
				}
				if !ok {
					break
				}
				switch {
				case num == 1 && typ == protowire.VarintType:
					d.Value, err = getInt64(dim)
				case num == 2 && typ == protowire.BytesType:
					d.Param, err = getString(dim)
				}
				if err != nil {
					return nil, false
				}
			}
			dims = append(dims, d)
		}
	}
}

// SetElemType changes a tensor value's element type, keeping the rest of its type byte for
// byte. It returns an error when v is not a tensor value.
func (v *ValueInfo) SetElemType(dt DataType) error {
	tt := v.tensorType()
	if tt == nil {
		return fmt.Errorf("onnxgraph: value %q is not a tensor", v.Name)
	}
	var inner encoder
	it := newMemIter(tt, 0)
	inner.varint(1, uint64(dt))
	for {
		num, _, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		b, err := it.raw()
		if err != nil {
			return err
		}
		if num != 1 {
			inner.add(num, b)
		}
	}
	var outer encoder
	it = newMemIter(v.Type, 0)
	outer.bytes(1, inner.finish())
	for {
		num, _, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		b, err := it.raw()
		if err != nil {
			return err
		}
		if num != 1 {
			outer.add(num, b)
		}
	}
	v.Type = outer.finish()
	return nil
}

// fieldSet records which singular fields of a decoded message were present, so that fields set
// to their zero value are written again (proto2 presence).
type fieldSet uint64

func (s *fieldSet) add(num protowire.Number) {
	if num < 64 {
		*s |= 1 << num
	}
}

func (s fieldSet) has(num protowire.Number) bool { return num < 64 && s&(1<<num) != 0 }

// NewTensorType returns the bytes of a TypeProto for a tensor of dt with the given dimensions
// (Param names a dynamic one; a Dim with neither Value nor Param is dynamic and unnamed), for
// ValueInfo.Type. With no dims the shape is left unknown; a scalar has an empty, non-nil dims.
func NewTensorType(dt DataType, dims ...Dim) []byte {
	if dims == nil {
		var tensor encoder
		tensor.varint(1, uint64(dt))
		var typ encoder
		typ.bytes(1, tensor.finish())
		return typ.finish()
	}
	var shape encoder
	for _, d := range dims {
		var dim encoder
		switch {
		case d.Param != "":
			dim.string(2, d.Param)
		case d.Value > 0:
			dim.varint(1, uint64(d.Value))
		}
		shape.bytes(1, dim.finish())
	}
	var tensor encoder
	tensor.varint(1, uint64(dt))
	tensor.bytes(2, shape.finish())
	var typ encoder
	typ.bytes(1, tensor.finish())
	return typ.finish()
}
