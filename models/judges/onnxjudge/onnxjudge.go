// Package onnxjudge holds what the ONNX Runtime judges (clip-onnx, dreamsim-onnx) share: the
// options a judge spec gives them, ONNX Runtime calls timed for the benchmarks, and embedding
// outputs cut into unit-norm rows.
package onnxjudge

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cocoflow/cocoflow/models/metrics"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// DefaultBatch is the number of images or texts per ONNX Runtime call.
const DefaultBatch = 16

// Options are the spec options every ONNX judge takes.
type Options struct {
	// ImageSize is the input side for exports whose height and width are dynamic (0: the
	// judge's default).
	ImageSize int
	// Batch is the number of items per ONNX Runtime call (0: DefaultBatch).
	Batch int
	// ORT configures the sessions: threads sets IntraOpThreads, provider one provider.
	ORT ort.Options
	// Extra holds the judge's own options, those named in ParseOptions' extra.
	Extra map[string]string
}

// common names the options ParseOptions reads itself.
var common = []string{"image_size", "batch", "threads", "provider"}

// ParseOptions reads a judge spec's options: image_size, batch, threads (positive integers),
// provider (cpu, cuda[:N], ...), and the judge's own extra names, kept as given. Any other name
// is an error that lists the known ones, prefixed by the judge kind.
func ParseOptions(kind string, opts map[string]string, extra ...string) (Options, error) {
	o := Options{Extra: map[string]string{}}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := opts[k]
		var err error
		switch k {
		case "image_size":
			o.ImageSize, err = positive(v)
		case "batch":
			o.Batch, err = positive(v)
		case "threads":
			o.ORT.IntraOpThreads, err = positive(v)
		case "provider":
			var p ort.Provider
			p, err = ort.ParseProvider(v)
			o.ORT.Providers = []ort.Provider{p}
		default:
			if !slices.Contains(extra, k) {
				return o, fmt.Errorf("%s judge: unknown option %q (known: %s)", kind, k, strings.Join(append(slices.Clone(extra), common...), ", "))
			}
			o.Extra[k] = v
		}
		if err != nil {
			return o, fmt.Errorf("%s judge: option %s: %w", kind, k, err)
		}
	}
	return o, nil
}

func positive(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("want a positive integer, got %q", v)
	}
	return n, nil
}

// BatchOr returns o.Batch, or DefaultBatch when it is 0.
func (o Options) BatchOr() int {
	if o.Batch > 0 {
		return o.Batch
	}
	return DefaultBatch
}

// SquareSize is the side of a model's square image input of height h and width w (-1 where an
// axis is dynamic, and the caller has checked that fixed axes agree): the fixed side, else the
// image_size option, else def. An image_size that contradicts a fixed side is an error naming
// the model.
func SquareSize(kind, model string, h, w int64, imageSize, def int) (int, error) {
	size := def
	switch {
	case h >= 0:
		size = int(h)
	case w >= 0:
		size = int(w)
	case imageSize > 0:
		size = imageSize
	}
	if imageSize > 0 && imageSize != size {
		return 0, fmt.Errorf("%s judge: option image_size %d, but %s takes %dx%d images", kind, imageSize, model, size, size)
	}
	return size, nil
}

// Timer runs sessions and adds up the time spent inside ONNX Runtime. The zero value is ready.
type Timer struct{ nanos atomic.Int64 }

// Run is s.Run, timed.
func (t *Timer) Run(s *ort.Session, in map[string]ort.Tensor) (map[string]ort.Tensor, error) {
	t0 := time.Now()
	res, err := s.Run(in)
	t.nanos.Add(int64(time.Since(t0)))
	return res, err
}

// Spent is the time spent in Run so far.
func (t *Timer) Spent() time.Duration { return time.Duration(t.nanos.Load()) }

// UnitRows returns output name of res, which must be float32 [n, dim], as n rows each scaled
// to unit L2 norm. Errors name the model file and what the output was.
func UnitRows(res map[string]ort.Tensor, model, name string, n int) ([][]float32, error) {
	out, ok := res[name]
	if !ok {
		return nil, fmt.Errorf("%s: no output %s", model, name)
	}
	data, err := ort.Data[float32](out)
	if err != nil || len(out.Shape) != 2 || out.Shape[0] != int64(n) {
		return nil, fmt.Errorf("%s: output %s is %s%v, want float32 [%d, dim]", model, name, out.DType(), out.Shape, n)
	}
	d := int(out.Shape[1])
	rows := make([][]float32, n)
	for i := range rows {
		rows[i] = metrics.Unit(slices.Clone(data[i*d : (i+1)*d]))
	}
	return rows, nil
}

// Describe lists tensors as "name dtype[shape]" for error messages.
func Describe(ts []ort.TensorInfo) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s %s%v", t.Name, t.DType, t.Shape)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
