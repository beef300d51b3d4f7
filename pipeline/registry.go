package pipeline

import (
	"context"
	"fmt"
	"sort"
	"sync"
)

// Stage runs one configured stage: it reads the job's inputs and writes its outputs.
// Like http.Handler, it is the whole contract between the engine and a stage.
type Stage interface {
	Run(ctx context.Context, job *Job) error
}

// StageFunc adapts a function to Stage.
type StageFunc func(ctx context.Context, job *Job) error

// Run calls f(ctx, job).
func (f StageFunc) Run(ctx context.Context, job *Job) error { return f(ctx, job) }

// Kind is a registered stage kind: what `uses:` names in a config. The engine reads it; stage
// packages declare one with a Spec and Register, never by hand.
type Kind struct {
	Name string
	Doc  string // one paragraph for `cocoflow stages`
	// Version is part of every output fingerprint: bump it when the kind's output for the same
	// inputs and parameters changes, so existing outputs are recomputed.
	Version string
	Params  ParamSpec
	Inputs  []Port
	Outputs []Port
	// Sharded kinds produce output shard i from input shard i alone (or, without inputs, from
	// the seed and i alone), so they can run a slice of shards with --shard-index/--shard-count.
	Sharded bool
	// Models returns the digests of the model weights the stage would load for params (a *P
	// made by Params.Decode), by role; nil when the kind loads none. See Spec.Models.
	Models func(params any) (map[string]string, error)
	// Check validates params beyond types and bounds; nil when the kind has nothing to check.
	Check func(params any) error
	// New builds the stage for validated params.
	New func(params any) (Stage, error)
}

// Spec declares a stage kind whose parameters are the tagged struct P (see ParamsOf): the
// engine decodes a config's `with:` into a *P and hands it, typed, to Check, Models and Run
// (or New), so stage code never casts its parameters.
type Spec[P any] struct {
	Name string
	Doc  string // one paragraph for `cocoflow stages`
	// Version is part of every output fingerprint: bump it when the kind's output for the same
	// inputs and parameters changes, so existing outputs are recomputed.
	Version string
	Inputs  []Port
	Outputs []Port
	// Sharded kinds produce output shard i from input shard i alone (or, without inputs, from
	// the seed and i alone), so they can run a slice of shards with --shard-index/--shard-count.
	Sharded bool
	// Models returns the digests of the model weights the stage would load for p, by role
	// ("generator", "face", ...); optional. They are part of every output fingerprint, so
	// outputs made with other weights (say, after new built-in defaults) are recomputed, and
	// the run manifest records them.
	Models func(p *P) (map[string]string, error)
	// Check validates parameter combinations beyond types and bounds (optional); it runs at
	// config load, so `cocoflow validate` reports it with the stage's line, or with the line
	// and column of one parameter's value when the error is (or wraps) a *ParamError. It is
	// also where a stage checks what it will load can run (a model family, a model folder's
	// signature) before any stage of the run starts: cheaply, without loading weights.
	Check func(p *P) error
	// Run runs the stage with its validated parameters. Set Run, or New when building the
	// stage does work of its own that can fail before any input is read (opening a model,
	// dialling a server); not both.
	Run func(ctx context.Context, job *Job, p *P) error
	New func(p *P) (Stage, error)
}

// Port is a named input or output dataset of a kind.
type Port struct {
	Name     string
	Doc      string
	Optional bool
	// List lets a config connect several datasets to the port, as a YAML list; the stage reads
	// them in order with Job.Inputs.
	List bool
	// Schema is a zero row value (a struct with parquet tags) documenting the dataset's rows.
	Schema any
}

func (k *Kind) input(name string) (Port, bool)  { return findPort(k.Inputs, name) }
func (k *Kind) output(name string) (Port, bool) { return findPort(k.Outputs, name) }

func findPort(ports []Port, name string) (Port, bool) {
	for _, p := range ports {
		if p.Name == name {
			return p, true
		}
	}
	return Port{}, false
}

func portNames(ports []Port) []string {
	names := make([]string, len(ports))
	for i, p := range ports {
		names[i] = p.Name
	}
	return names
}

var (
	registryMu sync.RWMutex
	registry   = map[string]*Kind{}
)

// Register adds the stage kind s declares, with the parameters of P. It panics on a duplicate
// name or an incomplete declaration: registration happens at init, so that is a programming
// error.
func Register[P any](s Spec[P]) {
	if (s.Run == nil) == (s.New == nil) {
		panic(fmt.Sprintf("pipeline.Register: kind %q needs exactly one of Run and New", s.Name))
	}
	k := &Kind{Name: s.Name, Doc: s.Doc, Version: s.Version, Params: ParamsOf[P](), Inputs: s.Inputs, Outputs: s.Outputs, Sharded: s.Sharded}
	// Params.Decode makes every params value a *P, so these assertions cannot fail.
	if s.Models != nil {
		k.Models = func(params any) (map[string]string, error) { return s.Models(params.(*P)) }
	}
	if s.Check != nil {
		k.Check = func(params any) error { return s.Check(params.(*P)) }
	}
	if s.New != nil {
		k.New = func(params any) (Stage, error) { return s.New(params.(*P)) }
	} else {
		k.New = func(params any) (Stage, error) {
			p := params.(*P)
			return StageFunc(func(ctx context.Context, job *Job) error { return s.Run(ctx, job, p) }), nil
		}
	}
	register(k)
}

func register(k *Kind) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if k.Name == "" || k.Version == "" {
		panic(fmt.Sprintf("pipeline.Register: kind %q needs Name and Version", k.Name))
	}
	if _, dup := registry[k.Name]; dup {
		panic(fmt.Sprintf("pipeline.Register: kind %q registered twice", k.Name))
	}
	if len(k.Outputs) == 0 {
		panic(fmt.Sprintf("pipeline.Register: kind %q declares no outputs", k.Name))
	}
	registry[k.Name] = k
}

// Lookup returns the registered kind with the given name.
func Lookup(name string) (*Kind, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	k, ok := registry[name]
	return k, ok
}

// KindNames lists the registered kinds, sorted.
func KindNames() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ParamError is a Check error about one parameter: the config loader reports it at the line
// and column of that parameter's value.
type ParamError struct {
	Param string // the parameter's YAML key
	Err   error
}

// ParamErr wraps err (nil stays nil) as a *ParamError about param.
func ParamErr(param string, err error) error {
	if err == nil {
		return nil
	}
	return &ParamError{Param: param, Err: err}
}

func (e *ParamError) Error() string { return e.Param + ": " + e.Err.Error() }
func (e *ParamError) Unwrap() error { return e.Err }
