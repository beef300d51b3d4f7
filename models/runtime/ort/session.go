package ort

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Session is a model loaded into ONNX Runtime. Run may be called from many
// goroutines at once (ONNX Runtime's session run is thread safe and Run
// shares no mutable state between calls); Close waits for running calls.
type Session struct {
	path    string
	inputs  []TensorInfo
	outputs []TensorInfo
	byName  map[string]int

	mu   sync.RWMutex // held for reading by Run, for writing by Close
	sess *ortgo.DynamicAdvancedSession
}

// Open loads the ONNX model at path into a new Session with the given
// providers and thread counts. It initialises ONNX Runtime from
// LibraryPath("") when Init has not run yet. Errors name the model file;
// a provider that cannot be enabled fails Open with "<name> execution
// provider unavailable: <ONNX Runtime's message>".
func Open(path string, opt Options) (*Session, error) {
	if err := opt.check(path); err != nil {
		return nil, err
	}
	info, err := readModelInfo(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in the message
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return open(path, info, opt, nil, func(so *ortgo.SessionOptions, in, out []string) (*ortgo.DynamicAdvancedSession, error) {
		return ortgo.NewDynamicAdvancedSession(path, in, out, so)
	})
}

// check validates the providers and thread counts of a session for the model name.
func (opt Options) check(name string) error {
	if err := validateProviders(opt.Providers); err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	if opt.IntraOpThreads < 0 || opt.InterOpThreads < 0 {
		return fmt.Errorf("open %s: thread counts must be >= 0, got intra %d, inter %d", name, opt.IntraOpThreads, opt.InterOpThreads)
	}
	return nil
}

// open creates a session for the model described by info (named path in errors) with
// newSession, after setting up the session options (config entries first, then threads and
// providers).
func open(path string, info modelInfo, opt Options, config map[string]string,
	newSession func(so *ortgo.SessionOptions, in, out []string) (*ortgo.DynamicAdvancedSession, error)) (*Session, error) {
	if len(info.outputs) == 0 {
		return nil, fmt.Errorf("open %s: the model declares no outputs", path)
	}
	if err := ensureInit(); err != nil {
		return nil, err
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("open %s: session options: %w", path, err)
	}
	defer so.Destroy()
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := so.AddSessionConfigEntry(k, config[k]); err != nil {
			return nil, fmt.Errorf("open %s: session config %s: %w", path, k, err)
		}
	}
	if opt.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opt.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("open %s: intra-op threads: %w", path, err)
		}
	}
	if opt.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opt.InterOpThreads); err != nil {
			return nil, fmt.Errorf("open %s: inter-op threads: %w", path, err)
		}
	}
	for _, p := range opt.Providers {
		if err := appendProvider(so, p); err != nil {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
	}
	s := &Session{path: path, inputs: info.inputs, outputs: info.outputs, byName: map[string]int{}}
	inNames := make([]string, len(info.inputs))
	for i, in := range info.inputs {
		inNames[i] = in.Name
		s.byName[in.Name] = i
	}
	outNames := make([]string, len(info.outputs))
	for i, out := range info.outputs {
		outNames[i] = out.Name
	}
	s.sess, err = newSession(so, inNames, outNames)
	if err != nil {
		return nil, fmt.Errorf("open %s: onnx runtime cannot load the model: %s", path, oneLine(err.Error()))
	}
	return s, nil
}

// Path returns the model file the session was opened from.
func (s *Session) Path() string { return s.path }

// Inputs describes the inputs Run needs, in graph order; weights that old
// models list as inputs are not among them.
func (s *Session) Inputs() []TensorInfo { return cloneInfos(s.inputs) }

// Outputs describes the outputs Run returns, in graph order.
func (s *Session) Outputs() []TensorInfo { return cloneInfos(s.outputs) }

func cloneInfos(in []TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(in))
	for i, ti := range in {
		out[i] = TensorInfo{Name: ti.Name, DType: ti.DType, Shape: slices.Clone(ti.Shape)}
	}
	return out
}

// Run feeds one tensor per model input (keyed by input name) and returns
// every model output keyed by name. Dimensions the model declares dynamic
// (-1) may differ from call to call. The input data is read, not kept or
// changed; outputs are fresh Go slices. Errors name the model file and the
// input: an unknown or missing name, a wrong dtype, rank or fixed
// dimension, or data whose length does not match its shape. An output the
// model declares as a scalar comes back with an empty Shape; a scalar output
// of undeclared rank is an error (onnxruntime_go cannot wrap it).
func (s *Session) Run(inputs map[string]Tensor) (map[string]Tensor, error) {
	if err := s.check(inputs); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.sess == nil {
		return nil, fmt.Errorf("run %s: session is closed", s.path)
	}
	in := make([]ortgo.Value, len(s.inputs))
	defer destroyAll(in)
	for i, info := range s.inputs {
		v, err := toValue(inputs[info.Name])
		if err != nil {
			return nil, fmt.Errorf("run %s: input %q: %w", s.path, info.Name, err)
		}
		in[i] = v
	}
	// ONNX Runtime allocates the outputs, except scalars: onnxruntime_go
	// cannot wrap a rank-0 result it allocated, so declared scalars are
	// preallocated here.
	out := make([]ortgo.Value, len(s.outputs))
	defer destroyAll(out)
	for i, info := range s.outputs {
		if info.Shape != nil && len(info.Shape) == 0 {
			v, err := newScalar(info.DType)
			if err != nil {
				return nil, fmt.Errorf("run %s: output %q: %w", s.path, info.Name, err)
			}
			out[i] = v
		}
	}
	if err := s.sess.Run(in, out); err != nil {
		if errors.Is(err, ortgo.ZeroShapeLengthError) {
			return nil, fmt.Errorf("run %s: an output is a scalar that the model does not declare as rank 0; onnxruntime_go cannot return it: %s", s.path, oneLine(err.Error()))
		}
		return nil, fmt.Errorf("run %s: %s", s.path, oneLine(err.Error()))
	}
	res := make(map[string]Tensor, len(out))
	for i, v := range out {
		if v == nil {
			return nil, fmt.Errorf("run %s: output %q: onnx runtime returned no value", s.path, s.outputs[i].Name)
		}
		t, err := fromValue(v)
		if err != nil {
			return nil, fmt.Errorf("run %s: output %q: %w", s.path, s.outputs[i].Name, err)
		}
		res[s.outputs[i].Name] = t
	}
	return res, nil
}

// destroyAll releases the values; onnxruntime_go may leave typed nil
// pointers behind after a failed conversion, which are skipped.
func destroyAll(vs []ortgo.Value) {
	for _, v := range vs {
		if v != nil && !reflect.ValueOf(v).IsNil() {
			v.Destroy()
		}
	}
}

// check validates inputs against the model's declared inputs.
func (s *Session) check(inputs map[string]Tensor) error {
	var unknown []string
	for name := range inputs {
		if _, ok := s.byName[name]; !ok {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("run %s: unknown input %q: the model's inputs are %s", s.path, unknown[0], s.inputList())
	}
	for _, info := range s.inputs {
		t, ok := inputs[info.Name]
		if !ok {
			return fmt.Errorf("run %s: missing input %q %s%v: the model's inputs are %s", s.path, info.Name, info.DType, info.Shape, s.inputList())
		}
		if err := checkInput(info, t); err != nil {
			return fmt.Errorf("run %s: input %q: %w", s.path, info.Name, err)
		}
	}
	return nil
}

func checkInput(info TensorInfo, t Tensor) error {
	switch info.DType {
	case "sequence", "map", "optional", "opaque":
		return fmt.Errorf("the model wants a %s; only tensors are supported", info.DType)
	}
	if got := t.DType(); got != info.DType {
		return fmt.Errorf("want dtype %s, got %s", info.DType, dtypeOrKind(t.Data))
	}
	if info.Shape != nil {
		if len(t.Shape) != len(info.Shape) {
			return fmt.Errorf("want rank %d %v, got rank %d %v", len(info.Shape), info.Shape, len(t.Shape), t.Shape)
		}
		for i, d := range info.Shape {
			if d >= 0 && t.Shape[i] != d {
				return fmt.Errorf("dimension %d: want %d %v, got %d %v", i, d, info.Shape, t.Shape[i], t.Shape)
			}
		}
	}
	return t.Validate()
}

func (s *Session) inputList() string {
	parts := make([]string, len(s.inputs))
	for i, in := range s.inputs {
		parts[i] = fmt.Sprintf("%s %s%v", in.Name, in.DType, in.Shape)
	}
	return strings.Join(parts, ", ")
}

// Close releases the session; it waits for Run calls in progress. Closing
// twice is not an error; Run after Close is.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", s.path, err)
	}
	return nil
}
