package onnxgraph

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// The protobuf wire format, read one field at a time from memory or from a file. Messages are
// decoded by functions written once against fieldIter; a file-backed iterator lets the model's
// outer messages (ModelProto, GraphProto, initializer TensorProtos) be walked without reading the
// weight bytes they contain: a tensor's raw_data is recorded as a span of the file and read later
// straight into its final buffer.

// span is a byte range of a file: the payload of a length-delimited field left in place.
type span struct {
	off, n int64
}

// fieldIter walks the fields of one protobuf message.
type fieldIter interface {
	// next advances to the next field and returns its number and wire type; ok is false at the
	// end of the message.
	next() (num protowire.Number, typ protowire.Type, ok bool, err error)
	// varint, fixed32, fixed64 and bytes read the current field's value (bytes: a
	// length-delimited payload, in memory).
	varint() (uint64, error)
	fixed32() (uint32, error)
	fixed64() (uint64, error)
	bytes() ([]byte, error)
	// payloadSpan returns where the current length-delimited payload lies in the file, without
	// reading it, and true; an in-memory iterator returns false (the caller then calls bytes).
	payloadSpan() (span, bool, error)
	// message returns an iterator over the current length-delimited payload as a message:
	// streamed from the file when stream is true and the iterator is file-backed, else in memory.
	message(stream bool) (fieldIter, error)
	// raw returns the current field's whole encoding (tag and value), for fields kept verbatim.
	raw() ([]byte, error)
	// offset is the file offset of the current field's tag (for error messages).
	offset() int64
}

// errTruncated reports a message that ends inside a field.
var errTruncated = errors.New("truncated protobuf message")

// memIter iterates a message held in memory; base is the file offset of b[0] (for errors).
type memIter struct {
	b        []byte
	pos      int
	base     int64
	tagStart int
	valStart int
	typ      protowire.Type
	consumed bool
}

func newMemIter(b []byte, base int64) *memIter { return &memIter{b: b, base: base, consumed: true} }

func (m *memIter) offset() int64 { return m.base + int64(m.tagStart) }

func (m *memIter) next() (protowire.Number, protowire.Type, bool, error) {
	if !m.consumed {
		if _, err := m.raw(); err != nil {
			return 0, 0, false, err
		}
	}
	if m.pos >= len(m.b) {
		return 0, 0, false, nil
	}
	num, typ, n := protowire.ConsumeTag(m.b[m.pos:])
	if n < 0 {
		return 0, 0, false, fmt.Errorf("at byte %d: %w", m.base+int64(m.pos), protowire.ParseError(n))
	}
	m.tagStart, m.valStart = m.pos, m.pos+n
	m.pos = m.valStart
	m.typ, m.consumed = typ, false
	return num, typ, true, nil
}

func (m *memIter) fail(n int) error {
	return fmt.Errorf("at byte %d: %w", m.base+int64(m.valStart), protowire.ParseError(n))
}

func (m *memIter) want(t protowire.Type) error {
	if m.typ != t {
		return fmt.Errorf("at byte %d: field has wire type %d, want %d", m.offset(), m.typ, t)
	}
	return nil
}

func (m *memIter) varint() (uint64, error) {
	if err := m.want(protowire.VarintType); err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeVarint(m.b[m.valStart:])
	if n < 0 {
		return 0, m.fail(n)
	}
	m.pos, m.consumed = m.valStart+n, true
	return v, nil
}

func (m *memIter) fixed32() (uint32, error) {
	if err := m.want(protowire.Fixed32Type); err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeFixed32(m.b[m.valStart:])
	if n < 0 {
		return 0, m.fail(n)
	}
	m.pos, m.consumed = m.valStart+n, true
	return v, nil
}

func (m *memIter) fixed64() (uint64, error) {
	if err := m.want(protowire.Fixed64Type); err != nil {
		return 0, err
	}
	v, n := protowire.ConsumeFixed64(m.b[m.valStart:])
	if n < 0 {
		return 0, m.fail(n)
	}
	m.pos, m.consumed = m.valStart+n, true
	return v, nil
}

func (m *memIter) bytes() ([]byte, error) {
	if err := m.want(protowire.BytesType); err != nil {
		return nil, err
	}
	v, n := protowire.ConsumeBytes(m.b[m.valStart:])
	if n < 0 {
		return nil, m.fail(n)
	}
	m.pos, m.consumed = m.valStart+n, true
	return v, nil
}

func (m *memIter) payloadSpan() (span, bool, error) { return span{}, false, nil }

func (m *memIter) message(bool) (fieldIter, error) {
	start := m.valStart
	b, err := m.bytes()
	if err != nil {
		return nil, err
	}
	_, n := protowire.ConsumeVarint(m.b[start:])
	return newMemIter(b, m.base+int64(start+n)), nil
}

func (m *memIter) raw() ([]byte, error) {
	n := protowire.ConsumeFieldValue(0, m.typ, m.b[m.valStart:])
	if n < 0 {
		return nil, m.fail(n)
	}
	m.pos, m.consumed = m.valStart+n, true
	return m.b[m.tagStart:m.pos], nil
}

// fileIter iterates a message lying in [pos, end) of a file, through a read-ahead window.
type fileIter struct {
	ra       io.ReaderAt
	pos, end int64
	win      []byte // file bytes [winOff, winOff+len(win))
	winOff   int64
	tagStart int64
	valStart int64
	typ      protowire.Type
	consumed bool
}

const fileWindow = 64 << 10

func newFileIter(ra io.ReaderAt, off, end int64) *fileIter {
	return &fileIter{ra: ra, pos: off, end: end, consumed: true}
}

func (f *fileIter) offset() int64 { return f.tagStart }

// peek returns the bytes at off (up to n of them, fewer at the message's end), reading the
// window again when off is outside it.
func (f *fileIter) peek(off int64, n int) ([]byte, error) {
	if off >= f.winOff && off+int64(n) <= f.winOff+int64(len(f.win)) {
		return f.win[off-f.winOff : off-f.winOff+int64(n)], nil
	}
	size := max(n, fileWindow)
	if rest := f.end - off; int64(size) > rest {
		size = int(rest)
	}
	if cap(f.win) < size {
		f.win = make([]byte, size)
	}
	f.win = f.win[:size]
	if _, err := f.ra.ReadAt(f.win, off); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		f.win = f.win[:0]
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("at byte %d: %w (the file ends early)", off, errTruncated)
		}
		return nil, err
	}
	f.winOff = off
	if n > size {
		n = size
	}
	return f.win[:n], nil
}

func (f *fileIter) next() (protowire.Number, protowire.Type, bool, error) {
	if !f.consumed {
		if err := f.skip(); err != nil {
			return 0, 0, false, err
		}
	}
	if f.pos >= f.end {
		return 0, 0, false, nil
	}
	b, err := f.peek(f.pos, 2*binaryMaxVarint)
	if err != nil {
		return 0, 0, false, err
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, false, fmt.Errorf("at byte %d: %w", f.pos, protowire.ParseError(n))
	}
	f.tagStart, f.valStart = f.pos, f.pos+int64(n)
	f.pos = f.valStart
	f.typ, f.consumed = typ, false
	return num, typ, true, nil
}

const binaryMaxVarint = 10

func (f *fileIter) want(t protowire.Type) error {
	if f.typ != t {
		return fmt.Errorf("at byte %d: field has wire type %d, want %d", f.tagStart, f.typ, t)
	}
	return nil
}

func (f *fileIter) varintAt(off int64) (uint64, int, error) {
	b, err := f.peek(off, binaryMaxVarint)
	if err != nil {
		return 0, 0, err
	}
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, 0, fmt.Errorf("at byte %d: %w", off, protowire.ParseError(n))
	}
	return v, n, nil
}

func (f *fileIter) varint() (uint64, error) {
	if err := f.want(protowire.VarintType); err != nil {
		return 0, err
	}
	v, n, err := f.varintAt(f.valStart)
	if err != nil {
		return 0, err
	}
	f.pos, f.consumed = f.valStart+int64(n), true
	return v, nil
}

func (f *fileIter) fixed(size int) ([]byte, error) {
	b, err := f.peek(f.valStart, size)
	if err != nil {
		return nil, err
	}
	if len(b) < size {
		return nil, fmt.Errorf("at byte %d: %w", f.valStart, errTruncated)
	}
	f.pos, f.consumed = f.valStart+int64(size), true
	return b, nil
}

func (f *fileIter) fixed32() (uint32, error) {
	if err := f.want(protowire.Fixed32Type); err != nil {
		return 0, err
	}
	b, err := f.fixed(4)
	if err != nil {
		return 0, err
	}
	v, _ := protowire.ConsumeFixed32(b)
	return v, nil
}

func (f *fileIter) fixed64() (uint64, error) {
	if err := f.want(protowire.Fixed64Type); err != nil {
		return 0, err
	}
	b, err := f.fixed(8)
	if err != nil {
		return 0, err
	}
	v, _ := protowire.ConsumeFixed64(b)
	return v, nil
}

// lenSpan reads the current length-delimited field's length and returns its payload's span.
func (f *fileIter) lenSpan() (span, error) {
	if err := f.want(protowire.BytesType); err != nil {
		return span{}, err
	}
	n, k, err := f.varintAt(f.valStart)
	if err != nil {
		return span{}, err
	}
	sp := span{off: f.valStart + int64(k), n: int64(n)}
	if sp.n < 0 || sp.off+sp.n > f.end {
		return span{}, fmt.Errorf("at byte %d: a field of %d bytes runs past the end of its message at byte %d: %w", f.tagStart, n, f.end, errTruncated)
	}
	f.pos, f.consumed = sp.off+sp.n, true
	return sp, nil
}

func (f *fileIter) read(sp span) ([]byte, error) {
	b := make([]byte, sp.n)
	if _, err := f.ra.ReadAt(b, sp.off); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("at byte %d: %w (the file ends early)", sp.off, errTruncated)
		}
		return nil, err
	}
	return b, nil
}

func (f *fileIter) bytes() ([]byte, error) {
	sp, err := f.lenSpan()
	if err != nil {
		return nil, err
	}
	return f.read(sp)
}

func (f *fileIter) payloadSpan() (span, bool, error) {
	sp, err := f.lenSpan()
	return sp, err == nil, err
}

func (f *fileIter) message(stream bool) (fieldIter, error) {
	sp, err := f.lenSpan()
	if err != nil {
		return nil, err
	}
	if stream {
		return newFileIter(f.ra, sp.off, sp.off+sp.n), nil
	}
	b, err := f.read(sp)
	if err != nil {
		return nil, err
	}
	return newMemIter(b, sp.off), nil
}

// skip moves past the current field's value.
func (f *fileIter) skip() error {
	switch f.typ {
	case protowire.VarintType:
		_, err := f.varint()
		return err
	case protowire.Fixed32Type:
		_, err := f.fixed(4)
		return err
	case protowire.Fixed64Type:
		_, err := f.fixed(8)
		return err
	case protowire.BytesType:
		_, err := f.lenSpan()
		return err
	}
	return fmt.Errorf("at byte %d: unsupported wire type %d (ONNX uses no groups)", f.tagStart, f.typ)
}

func (f *fileIter) raw() ([]byte, error) {
	if err := f.skip(); err != nil {
		return nil, err
	}
	return f.read(span{off: f.tagStart, n: f.pos - f.tagStart})
}

// Helpers for the decoders.

func getString(it fieldIter) (string, error) {
	b, err := it.bytes()
	return string(b), err
}

func getInt64(it fieldIter) (int64, error) {
	v, err := it.varint()
	return int64(v), err
}

// repeatedVarints reads one entry of a repeated varint field, packed or not, appending to dst.
func repeatedVarints(it fieldIter, typ protowire.Type, dst []int64) ([]int64, error) {
	if typ == protowire.VarintType {
		v, err := it.varint()
		return append(dst, int64(v)), err
	}
	b, err := it.bytes()
	if err != nil {
		return dst, err
	}
	for len(b) > 0 {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return dst, protowire.ParseError(n)
		}
		dst = append(dst, int64(v))
		b = b[n:]
	}
	return dst, nil
}

// repeatedFixed32 reads one entry of a repeated fixed32 field (float), packed or not.
func repeatedFixed32(it fieldIter, typ protowire.Type, dst []uint32) ([]uint32, error) {
	if typ == protowire.Fixed32Type {
		v, err := it.fixed32()
		return append(dst, v), err
	}
	b, err := it.bytes()
	if err != nil {
		return dst, err
	}
	if len(b)%4 != 0 {
		return dst, fmt.Errorf("packed fixed32 field of %d bytes", len(b))
	}
	for ; len(b) > 0; b = b[4:] {
		v, _ := protowire.ConsumeFixed32(b)
		dst = append(dst, v)
	}
	return dst, nil
}

// repeatedFixed64 reads one entry of a repeated fixed64 field (double), packed or not.
func repeatedFixed64(it fieldIter, typ protowire.Type, dst []uint64) ([]uint64, error) {
	if typ == protowire.Fixed64Type {
		v, err := it.fixed64()
		return append(dst, v), err
	}
	b, err := it.bytes()
	if err != nil {
		return dst, err
	}
	if len(b)%8 != 0 {
		return dst, fmt.Errorf("packed fixed64 field of %d bytes", len(b))
	}
	for ; len(b) > 0; b = b[8:] {
		v, _ := protowire.ConsumeFixed64(b)
		dst = append(dst, v)
	}
	return dst, nil
}

// Encoding: fields are collected as (number, bytes) pieces and written in field-number order
// (stable, so repeated fields keep their order), the order protobuf's C++ and Go serializers use,
// so that re-encoding an unchanged message reproduces its bytes.

type piece struct {
	num protowire.Number
	b   []byte
}

type encoder struct{ pieces []piece }

func (e *encoder) add(num protowire.Number, b []byte) { e.pieces = append(e.pieces, piece{num, b}) }

func (e *encoder) varint(num protowire.Number, v uint64) {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	e.add(num, protowire.AppendVarint(b, v))
}

func (e *encoder) bytes(num protowire.Number, v []byte) {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	e.add(num, protowire.AppendBytes(b, v))
}

func (e *encoder) string(num protowire.Number, v string) { e.bytes(num, []byte(v)) }

func (e *encoder) fixed32(num protowire.Number, v uint32) {
	b := protowire.AppendTag(nil, num, protowire.Fixed32Type)
	e.add(num, protowire.AppendFixed32(b, v))
}

// unknown re-adds fields kept verbatim; each starts with its own tag.
func (e *encoder) unknown(fields [][]byte) {
	for _, f := range fields {
		num, _, n := protowire.ConsumeTag(f)
		if n < 0 {
			continue
		}
		e.add(num, f)
	}
}

// finish returns the message's bytes, pieces sorted by field number.
func (e *encoder) finish() []byte {
	ps := e.pieces
	slices.SortStableFunc(ps, func(a, b piece) int { return cmp.Compare(a.num, b.num) })
	n := 0
	for _, p := range ps {
		n += len(p.b)
	}
	out := make([]byte, 0, n)
	for _, p := range ps {
		out = append(out, p.b...)
	}
	return out
}
