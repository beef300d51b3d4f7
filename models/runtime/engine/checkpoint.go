package engine

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// CheckpointFile is the name of the checkpoint file that Save writes inside its directory.
const CheckpointFile = "checkpoint.bin"

// checkpointMagic starts every checkpoint file; the digit is the format version.
const checkpointMagic = "COCOCKP1"

// Checkpoint file layout (all integers little-endian):
//
//	"COCOCKP1"                 8 bytes
//	header length              uint64
//	header                     JSON checkpointHeader
//	data                       the variables' raw bytes, back to back, in header order
//
// A checkpoint holds every variable of the context — trainable weights, optimizer state (Adam's
// moments), the global step and the RNG state — so a resumed run continues identically.
// Context hyperparameters (ctx.SetParam) are not saved: they come from the run's config.
type checkpointHeader struct {
	Meta       map[string]string `json:"meta"`
	Variables  []checkpointVar   `json:"variables"`
	DataBytes  int64             `json:"data_bytes"`
	DataSHA256 string            `json:"data_sha256"`
}

type checkpointVar struct {
	Scope     string `json:"scope"`
	Name      string `json:"name"`
	DType     string `json:"dtype"`
	Dims      []int  `json:"dims"`
	Trainable bool   `json:"trainable"`
	Offset    int64  `json:"offset"`
	Bytes     int64  `json:"bytes"`
}

// saveWriterHook, when set by tests, wraps the writer of the temporary checkpoint file (to
// simulate a crash in the middle of a save).
var saveWriterHook func(io.Writer) io.Writer

// Save writes every variable of ctx (all scopes, trainable or not, including optimizer state, the
// global step and the RNG state) and the string metadata meta to dir/checkpoint.bin, creating
// dir if needed. The file is written under a temporary name, synced and renamed into place, so a
// crash or kill during Save leaves the previous checkpoint intact and loadable; stale temporary
// files from such crashes are removed by the next Save. It returns an error naming the variable
// or file that failed; a variable without a value is an error.
func Save(ctx *context.Context, dir string, meta map[string]string) error {
	return SaveExcept(ctx, dir, meta, nil)
}

// SaveExcept is Save leaving out the variables whose scoped names (Variable.ScopeAndName) are in
// skip: weights that are loaded from elsewhere and never change, such as a frozen generator of
// several GB, need not be copied into every checkpoint. Load leaves such variables as they are.
func SaveExcept(ctx *context.Context, dir string, meta map[string]string, skip map[string]bool) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("engine.Save: %w", err)
	}
	removeStaleTemps(dir)
	tmp, err := os.CreateTemp(dir, ".checkpoint-*.tmp")
	if err != nil {
		return fmt.Errorf("engine.Save: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	var w io.Writer = tmp
	if saveWriterHook != nil {
		w = saveWriterHook(w)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	if err = write(bw, ctx, meta, skip, tmp.Name()); err != nil {
		return fmt.Errorf("engine.Save: %w", err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("engine.Save: writing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("engine.Save: syncing %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("engine.Save: closing %s: %w", tmp.Name(), err)
	}
	final := filepath.Join(dir, CheckpointFile)
	if err = os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("engine.Save: %w", err)
	}
	syncDir(dir)
	return nil
}

// Marshal returns the bytes Save would write to checkpoint.bin, for keeping a checkpoint in
// memory or in a shard; LoadBytes reads them back.
func Marshal(ctx *context.Context, meta map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	if err := write(&buf, ctx, meta, nil, "memory"); err != nil {
		return nil, fmt.Errorf("engine.Marshal: %w", err)
	}
	return buf.Bytes(), nil
}

// write writes the checkpoint of ctx's variables but those named in skip, and meta, to w in the
// layout above; dest names w in errors.
func write(w io.Writer, ctx *context.Context, meta map[string]string, skip map[string]bool, dest string) error {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return fmt.Errorf("checkpoints are little-endian and this machine is not")
	}
	hdr := checkpointHeader{Meta: meta}
	if hdr.Meta == nil {
		hdr.Meta = map[string]string{}
	}
	var values []*tensors.Tensor
	var offset int64
	for v := range ctx.IterVariables() {
		if !v.IsValid() || skip[v.ScopeAndName()] {
			continue
		}
		t, err := v.Value()
		if err != nil {
			return fmt.Errorf("variable %s: %w", v.ScopeAndName(), err)
		}
		if t == nil {
			return fmt.Errorf("variable %s has no value (initialize variables before saving)", v.ScopeAndName())
		}
		n := int64(t.Shape().Size()) * int64(t.DType().Size())
		hdr.Variables = append(hdr.Variables, checkpointVar{
			Scope: v.Scope(), Name: v.Name(), DType: t.DType().String(), Dims: slices.Clone(t.Shape().Dimensions),
			Trainable: v.Trainable, Offset: offset, Bytes: n,
		})
		values = append(values, t)
		offset += n
	}
	hdr.DataBytes = offset

	// Hash the data first so that the header, written before the data, can carry the digest.
	h := sha256.New()
	for i, t := range values {
		if err := tensorBytes(t, func(b []byte) error { _, err := h.Write(b); return err }); err != nil {
			return fmt.Errorf("variable %s/%s: %w", hdr.Variables[i].Scope, hdr.Variables[i].Name, err)
		}
	}
	hdr.DataSHA256 = hex.EncodeToString(h.Sum(nil))
	hdrJSON, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("encoding header: %w", err)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdrJSON)))
	for _, part := range [][]byte{[]byte(checkpointMagic), lenBuf[:], hdrJSON} {
		if _, err := w.Write(part); err != nil {
			return fmt.Errorf("writing %s: %w", dest, err)
		}
	}
	for i, t := range values {
		if err := tensorBytes(t, func(b []byte) error { _, err := w.Write(b); return err }); err != nil {
			return fmt.Errorf("writing variable %s/%s to %s: %w", hdr.Variables[i].Scope, hdr.Variables[i].Name, dest, err)
		}
	}
	return nil
}

// Load reads dir/checkpoint.bin written by Save into ctx and returns its metadata. Variables that
// already exist in ctx get the stored value (their shape and dtype must match); the others are
// created with it, so graphs built afterwards must use ctx.Reuse() or ctx.Checked(false) to get
// them. Every variable's trainable flag is restored. It returns an error if the file is missing,
// truncated, corrupt (checksum) or does not match ctx; all of that is checked before ctx is
// changed.
func Load(ctx *context.Context, dir string) (map[string]string, error) {
	path := filepath.Join(dir, CheckpointFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("engine.Load: %w", err)
	}
	return LoadBytes(ctx, raw, path)
}

// LoadBytes is Load for the bytes of a checkpoint file held in memory (embedded default
// weights, a checkpoint stored in a shard); path names them in errors.
func LoadBytes(ctx *context.Context, raw []byte, path string) (map[string]string, error) {
	hdr, data, err := parseCheckpoint(raw)
	if err != nil {
		return nil, fmt.Errorf("engine.Load: %s: %w", path, err)
	}
	// Decode and validate everything before touching ctx.
	type pending struct {
		spec  checkpointVar
		value *tensors.Tensor
		old   *context.Variable
	}
	todo := make([]pending, 0, len(hdr.Variables))
	for i, cv := range hdr.Variables {
		where := fmt.Sprintf("%s: variable #%d (%s/%s)", path, i, cv.Scope, cv.Name)
		dt, err := dtypes.DTypeString(cv.DType)
		if err != nil || dt.Size() <= 0 {
			return nil, fmt.Errorf("engine.Load: %s: unknown dtype %q", where, cv.DType)
		}
		size := int64(1)
		for _, d := range cv.Dims {
			if d < 0 {
				return nil, fmt.Errorf("engine.Load: %s: negative dimension in %v", where, cv.Dims)
			}
			size *= int64(d)
		}
		if cv.Bytes != size*int64(dt.Size()) || cv.Offset < 0 || cv.Offset+cv.Bytes > int64(len(data)) {
			return nil, fmt.Errorf("engine.Load: %s: %d bytes at offset %d, want %d bytes for %s%v inside %d data bytes",
				where, cv.Bytes, cv.Offset, size*int64(dt.Size()), dt, cv.Dims, len(data))
		}
		t := tensors.FromShape(shapes.Make(dt, cv.Dims...))
		if cv.Bytes > 0 {
			if err := t.MutableBytes(func(b []byte) { copy(b, data[cv.Offset:cv.Offset+cv.Bytes]) }); err != nil {
				return nil, fmt.Errorf("engine.Load: %s: %w", where, err)
			}
		}
		old := ctx.InspectVariableIfLoaded(cv.Scope, cv.Name)
		if old != nil && !old.Shape().Equal(t.Shape()) {
			return nil, fmt.Errorf("engine.Load: %s: stored shape %s, but the context's variable has shape %s", where, t.Shape(), old.Shape())
		}
		todo = append(todo, pending{spec: cv, value: t, old: old})
	}
	for _, p := range todo {
		v := p.old
		if v != nil {
			if err := v.SetValue(p.value); err != nil {
				return nil, fmt.Errorf("engine.Load: %s: setting %s/%s: %w", path, p.spec.Scope, p.spec.Name, err)
			}
		} else if err := catch(func() {
			v = ctx.InAbsPath(p.spec.Scope).Checked(false).VariableWithValue(p.spec.Name, p.value)
		}); err != nil {
			return nil, fmt.Errorf("engine.Load: %s: creating %s/%s: %w", path, p.spec.Scope, p.spec.Name, err)
		}
		v.SetTrainable(p.spec.Trainable)
	}
	return hdr.Meta, nil
}

// parseCheckpoint validates the magic, header and data checksum of a checkpoint file's bytes.
func parseCheckpoint(raw []byte) (checkpointHeader, []byte, error) {
	var hdr checkpointHeader
	if len(raw) < len(checkpointMagic)+8 || string(raw[:len(checkpointMagic)]) != checkpointMagic {
		return hdr, nil, fmt.Errorf("not a cocoflow checkpoint (want magic %q at byte 0)", checkpointMagic)
	}
	n := binary.LittleEndian.Uint64(raw[len(checkpointMagic):])
	start := uint64(len(checkpointMagic) + 8)
	if n > uint64(len(raw))-start {
		return hdr, nil, fmt.Errorf("truncated: header of %d bytes at byte %d, file has %d bytes", n, start, len(raw))
	}
	dec := json.NewDecoder(bytes.NewReader(raw[start : start+n]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&hdr); err != nil {
		return hdr, nil, fmt.Errorf("header at byte %d: %w", start, err)
	}
	data := raw[start+n:]
	if int64(len(data)) != hdr.DataBytes {
		return hdr, nil, fmt.Errorf("truncated or padded: header says %d data bytes, file has %d", hdr.DataBytes, len(data))
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != hdr.DataSHA256 {
		return hdr, nil, fmt.Errorf("data checksum mismatch: header sha256 %s, data sha256 %x", hdr.DataSHA256, sum)
	}
	return hdr, data, nil
}

// tensorBytes calls fn with the raw bytes of t (nothing for empty tensors).
func tensorBytes(t *tensors.Tensor, fn func([]byte) error) error {
	if t.Shape().Size() == 0 {
		return nil
	}
	var ferr error
	err := t.ConstBytes(func(b []byte) { ferr = fn(b) })
	return errors.Join(err, ferr)
}

func removeStaleTemps(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".checkpoint-") && strings.HasSuffix(e.Name(), ".tmp") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// syncDir makes a rename durable; errors are ignored (not all filesystems support it).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// catch runs fn and turns a GoMLX panic into an error.
func catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	fn()
	return nil
}
