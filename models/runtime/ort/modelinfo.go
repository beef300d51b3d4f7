package ort

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	ortgo "github.com/yalue/onnxruntime_go"
)

// TensorInfo describes one input or output of a model.
type TensorInfo struct {
	// Name is the graph input or output name.
	Name string
	// Shape has -1 for dynamic dimensions; it is nil when the model does not
	// declare a rank, and empty for a scalar.
	Shape []int64
	// DType is the element type (float32, int64, ...; see Tensor.DType), or
	// sequence, map, optional or opaque for values that are not tensors.
	DType string
}

// modelInfo is what Open needs to know about a model before ONNX Runtime
// loads it.
type modelInfo struct {
	irVersion       int64
	inputs, outputs []TensorInfo
}

// readModelInfo reads the graph's inputs and outputs from the ONNX protobuf
// at path. Inputs that have an initializer are left out: models older than
// IR version 4 list every weight as a graph input, and ONNX Runtime fills
// such inputs from the initializer when they are not fed. It streams the
// file and skips weights, so large models cost one sequential read.
func readModelInfo(path string) (modelInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return modelInfo{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return modelInfo{}, err
	}
	return parseModelInfo(f, st.Size())
}

// parseModelInfo is readModelInfo for a model of size bytes read from r.
func parseModelInfo(r io.Reader, size int64) (modelInfo, error) {
	p := &pbReader{r: bufio.NewReaderSize(r, 1<<16)}
	var info modelInfo
	var inputs []TensorInfo
	initialized := map[string]bool{}
	sawGraph := false
	err := p.message(size, func(field, wire int) error {
		switch {
		case field == 1 && wire == wireVarint: // ModelProto.ir_version
			v, err := p.varint()
			info.irVersion = int64(v)
			return err
		case field == 7 && wire == wireBytes: // ModelProto.graph
			sawGraph = true
			end, err := p.length()
			if err != nil {
				return err
			}
			return p.message(end, func(field, wire int) error {
				switch {
				case field == 5 && wire == wireBytes: // GraphProto.initializer
					name, err := p.tensorName()
					initialized[name] = true
					return err
				case field == 15 && wire == wireBytes: // GraphProto.sparse_initializer
					name, err := p.sparseTensorName()
					initialized[name] = true
					return err
				case field == 11 && wire == wireBytes: // GraphProto.input
					ti, err := p.valueInfo()
					inputs = append(inputs, ti)
					return err
				case field == 12 && wire == wireBytes: // GraphProto.output
					ti, err := p.valueInfo()
					info.outputs = append(info.outputs, ti)
					return err
				}
				return p.skip(wire)
			})
		}
		return p.skip(wire)
	})
	if err != nil {
		return modelInfo{}, fmt.Errorf("not a readable ONNX model: byte %d: %w", p.pos, err)
	}
	if !sawGraph {
		return modelInfo{}, errors.New("not an ONNX model: no graph")
	}
	for _, in := range inputs {
		if !initialized[in.Name] {
			info.inputs = append(info.inputs, in)
		}
	}
	return info, nil
}

// Protobuf wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// maxName bounds the strings read from a model (names, dim params).
const maxName = 1 << 20

// pbReader is a minimal streaming protobuf reader that tracks its offset.
type pbReader struct {
	r   *bufio.Reader
	pos int64
}

// ReadByte implements io.ByteReader for binary.ReadUvarint.
func (p *pbReader) ReadByte() (byte, error) {
	b, err := p.r.ReadByte()
	if err == nil {
		p.pos++
	}
	return b, err
}

func (p *pbReader) varint() (uint64, error) {
	v, err := binary.ReadUvarint(p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return v, err
}

// length reads a length prefix and returns the offset where the value ends.
func (p *pbReader) length() (int64, error) {
	n, err := p.varint()
	if err != nil {
		return 0, err
	}
	if n > 1<<62 {
		return 0, fmt.Errorf("field length %d is too large", n)
	}
	return p.pos + int64(n), nil
}

// discard skips n bytes.
func (p *pbReader) discard(n int64) error {
	for n > 0 {
		step := n
		if step > 1<<30 {
			step = 1 << 30
		}
		got, err := p.r.Discard(int(step))
		p.pos += int64(got)
		n -= int64(got)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// skip skips a value of the given wire type.
func (p *pbReader) skip(wire int) error {
	switch wire {
	case wireVarint:
		_, err := p.varint()
		return err
	case wireFixed64:
		return p.discard(8)
	case wireFixed32:
		return p.discard(4)
	case wireBytes:
		end, err := p.length()
		if err != nil {
			return err
		}
		return p.discard(end - p.pos)
	}
	return fmt.Errorf("unsupported protobuf wire type %d", wire)
}

// message calls fn for every field until offset end; fn must consume the
// field's value.
func (p *pbReader) message(end int64, fn func(field, wire int) error) error {
	for p.pos < end {
		tag, err := p.varint()
		if err != nil {
			return err
		}
		if tag>>3 == 0 || tag>>3 > 1<<29 {
			return fmt.Errorf("invalid protobuf field number %d", tag>>3)
		}
		if err := fn(int(tag>>3), int(tag&7)); err != nil {
			return err
		}
	}
	if p.pos != end {
		return fmt.Errorf("field overruns its message by %d bytes", p.pos-end)
	}
	return nil
}

// str reads a length-delimited string.
func (p *pbReader) str() (string, error) {
	end, err := p.length()
	if err != nil {
		return "", err
	}
	n := end - p.pos
	if n > maxName {
		return "", fmt.Errorf("string of %d bytes is too long for a name", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(p.r, buf); err != nil {
		return "", io.ErrUnexpectedEOF
	}
	p.pos = end
	return string(buf), nil
}

// tensorName reads a TensorProto and returns its name (field 8).
func (p *pbReader) tensorName() (string, error) {
	end, err := p.length()
	if err != nil {
		return "", err
	}
	var name string
	err = p.message(end, func(field, wire int) error {
		if field == 8 && wire == wireBytes {
			name, err = p.str()
			return err
		}
		return p.skip(wire)
	})
	return name, err
}

// sparseTensorName reads a SparseTensorProto and returns the name of its
// values tensor (field 1).
func (p *pbReader) sparseTensorName() (string, error) {
	end, err := p.length()
	if err != nil {
		return "", err
	}
	var name string
	err = p.message(end, func(field, wire int) error {
		if field == 1 && wire == wireBytes {
			name, err = p.tensorName()
			return err
		}
		return p.skip(wire)
	})
	return name, err
}

// valueInfo reads a ValueInfoProto: name (1) and type (2).
func (p *pbReader) valueInfo() (TensorInfo, error) {
	end, err := p.length()
	if err != nil {
		return TensorInfo{}, err
	}
	var ti TensorInfo
	err = p.message(end, func(field, wire int) error {
		switch {
		case field == 1 && wire == wireBytes:
			ti.Name, err = p.str()
			return err
		case field == 2 && wire == wireBytes:
			return p.typeProto(&ti)
		}
		return p.skip(wire)
	})
	return ti, err
}

// typeProto reads a TypeProto into ti's DType and Shape.
func (p *pbReader) typeProto(ti *TensorInfo) error {
	end, err := p.length()
	if err != nil {
		return err
	}
	return p.message(end, func(field, wire int) error {
		if wire != wireBytes {
			return p.skip(wire)
		}
		switch field {
		case 1, 8: // tensor_type, sparse_tensor_type
			return p.tensorType(ti)
		case 4:
			ti.DType = "sequence"
		case 5:
			ti.DType = "map"
		case 7:
			ti.DType = "opaque"
		case 9:
			ti.DType = "optional"
		}
		return p.skip(wire)
	})
}

// tensorType reads TypeProto.Tensor: elem_type (1) and shape (2).
func (p *pbReader) tensorType(ti *TensorInfo) error {
	end, err := p.length()
	if err != nil {
		return err
	}
	return p.message(end, func(field, wire int) error {
		switch {
		case field == 1 && wire == wireVarint:
			v, err := p.varint()
			ti.DType = dtypeName(ortgo.TensorElementDataType(v))
			return err
		case field == 2 && wire == wireBytes:
			ti.Shape = []int64{}
			shapeEnd, err := p.length()
			if err != nil {
				return err
			}
			return p.message(shapeEnd, func(field, wire int) error {
				if field == 1 && wire == wireBytes {
					d, err := p.dim()
					ti.Shape = append(ti.Shape, d)
					return err
				}
				return p.skip(wire)
			})
		}
		return p.skip(wire)
	})
}

// dim reads TensorShapeProto.Dimension: dim_value (1), else -1.
func (p *pbReader) dim() (int64, error) {
	end, err := p.length()
	if err != nil {
		return 0, err
	}
	d := int64(-1)
	err = p.message(end, func(field, wire int) error {
		if field == 1 && wire == wireVarint {
			v, err := p.varint()
			d = int64(v)
			return err
		}
		return p.skip(wire)
	})
	return d, err
}
