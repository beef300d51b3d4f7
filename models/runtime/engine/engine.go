// Package engine is cocoflow's single entry point to GoMLX, its training and differentiation
// engine: it picks and configures the backend (pure Go by default, XLA with `-tags xla`),
// replaces GoMLX's stock matrix-multiply gradients with GEMM-based ones, saves and loads
// checkpoints atomically, and imports frozen ONNX networks into GoMLX graphs so that gradients
// flow through them.
//
// # Backends
//
// [Backend] returns one process-wide backend. Its configuration is, in order of precedence:
//
//  1. the environment variable GOMLX_BACKEND, when the user set it (e.g. "go:ops_sequential",
//     "xla:cuda");
//  2. the string given to [Configure] (typically from a run's YAML config);
//  3. the default: "go:" + [DefaultGoConfig] for the pure-Go backend, or "xla" (CUDA if its PJRT
//     plugin is found, else CPU) in binaries built with `-tags xla`.
//
// The default build imports only the pure-Go backend (github.com/gomlx/gomlx/backends/simplego)
// and needs no cgo for GoMLX. To run on XLA (CPU or CUDA PJRT plugin), build with the tag:
//
//	go build -tags xla ./cmd/cocoflow
//	GOMLX_BACKEND=xla:cuda ./cocoflow run train.yaml   # or xla:cpu; plain "xla" prefers cuda
//
// The XLA backend needs cgo and a PJRT plugin: it looks in PJRT_PLUGIN_LIBRARY_PATH and, unless
// GOMLX_NO_AUTO_INSTALL is set, tries to download one at start-up.
//
// Importing this package also registers GEMM-based gradients for DotGeneral and Dot (see
// [SetGEMMGradients]), the gradients GoMLX v0.26.0 lacks for Identity, Rsqrt and Expm1, a
// Slice gradient that does not need the Pad op and a convolution gradient that does not need the
// Reverse op (both missing on the pure-Go backend).
//
// # ONNX networks
//
// [ImportONNX] reads a frozen network exported by torch.onnx.export or optimum-cli (diffusers'
// UNet2DConditionModel, transformers' CLIP text models; weights inline or as external data),
// rewrites the ops onnx-gomlx v0.3.4 lacks or mis-converts (onnxgraph.Lower), and builds it into
// GoMLX graphs with [Imported.Call], its weights frozen variables read once, straight into the
// backend's buffers.
package engine

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
)

// DefaultGoConfig is the configuration of the pure-Go backend used when neither GOMLX_BACKEND nor
// Configure chose one. GoMLX's default parallel executor (parallelism = number of CPUs) hangs on
// 2-core machines for multi-op graphs; unlimited parallelism ("parallelism=-1") was measured
// about 30% faster than "ops_sequential" on a transformer training step (1.97 vs 2.81 s, width
// 96, depth 3, batch 32; see engine_bench_test.go).
const DefaultGoConfig = "parallelism=-1"

// xlaCompiled is set by engine_xla.go in builds with `-tags xla`.
var xlaCompiled bool

var state struct {
	mu         sync.Mutex
	configured string // set by Configure
	backend    backends.Backend
	config     string // the full "name:config" the backend was created with
	source     string // "GOMLX_BACKEND", "Configure" or "default"
}

// Configure sets the backend configuration ("name:config", e.g. "go:ops_sequential" or
// "xla:cuda") that Backend uses when GOMLX_BACKEND is not set. Call it before the first Backend
// call. It returns an error if config is empty or names a backend not compiled into this binary,
// or if the backend was already created with a different configuration.
func Configure(config string) error {
	config = strings.TrimSpace(config)
	if config == "" {
		return fmt.Errorf("engine.Configure: empty backend config, want \"name:config\" such as %q", "go:"+DefaultGoConfig)
	}
	name, _ := splitConfig(config)
	if !compiledIn(name) {
		return fmt.Errorf("engine.Configure(%q): backend %q is not compiled in (have %s)%s",
			config, name, strings.Join(backends.List(), ", "), xlaHint(name))
	}
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.backend != nil && state.config != config && state.source != "GOMLX_BACKEND" {
		return fmt.Errorf("engine.Configure(%q): backend already created with config %q", config, state.config)
	}
	state.configured = config
	return nil
}

// Backend returns the process-wide GoMLX backend, creating it on the first call with the
// configuration described in the package documentation. It returns an error if the configured
// backend is unknown, not compiled in, or fails to start; a later call tries again.
func Backend() (backends.Backend, error) {
	state.mu.Lock()
	defer state.mu.Unlock()
	if state.backend != nil {
		return state.backend, nil
	}
	env, envSet := os.LookupEnv(backends.ConfigEnvVar)
	config, source := resolveConfig(env, envSet, state.configured)
	b, err := newBackend(config)
	if err != nil {
		return nil, fmt.Errorf("engine: creating GoMLX backend from %s=%q: %w", source, config, err)
	}
	state.backend, state.config, state.source = b, config, source
	slog.Debug("engine: GoMLX backend ready", "backend", b.Name(), "config", config, "source", source)
	return b, nil
}

// Describe returns a one-line description of the backend for run manifests: backend name,
// configuration, where the configuration came from, GoMLX version, GOMAXPROCS and whether the
// GEMM gradients are active. It returns "backend not created" details (without creating it) if
// Backend was not called yet.
func Describe() string {
	state.mu.Lock()
	defer state.mu.Unlock()
	grad := "stock"
	if GEMMGradients() {
		grad = "gemm"
	}
	common := fmt.Sprintf("gomlx=%s gomaxprocs=%d dot_gradients=%s", moduleVersion("github.com/gomlx/gomlx"), runtime.GOMAXPROCS(0), grad)
	if state.backend == nil {
		env, envSet := os.LookupEnv(backends.ConfigEnvVar)
		config, source := resolveConfig(env, envSet, state.configured)
		return fmt.Sprintf("backend=(not created) config=%q source=%s %s", config, source, common)
	}
	return fmt.Sprintf("backend=%q config=%q source=%s %s", state.backend.Name(), state.config, state.source, common)
}

// resolveConfig returns the backend configuration to use and where it came from.
func resolveConfig(env string, envSet bool, configured string) (config, source string) {
	if envSet && strings.TrimSpace(env) != "" {
		return strings.TrimSpace(env), "GOMLX_BACKEND"
	}
	if configured != "" {
		return configured, "Configure"
	}
	return defaultConfig(), "default"
}

func defaultConfig() string {
	if xlaCompiled {
		return "xla"
	}
	return simplego.BackendName + ":" + DefaultGoConfig
}

func splitConfig(config string) (name, rest string) {
	name, rest, _ = strings.Cut(config, ":")
	return name, rest
}

func compiledIn(name string) bool {
	for _, n := range backends.List() {
		if n == name {
			return true
		}
	}
	return false
}

func xlaHint(name string) string {
	switch name {
	case "xla", "stablehlo", "hlo", "shlo":
		return "; build with `-tags xla` to include the XLA backend"
	}
	return ""
}

// newBackend creates a backend from a "name:config" string, turning GoMLX's panics into errors.
// The pure-Go backend prints its parallelism setting on stdout; that line is moved to the debug
// log so that commands whose stdout is data stay clean.
func newBackend(config string) (b backends.Backend, err error) {
	name, _ := splitConfig(config)
	if !compiledIn(name) {
		return nil, fmt.Errorf("backend %q is not compiled in (have %s)%s", name, strings.Join(backends.List(), ", "), xlaHint(name))
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("backend %q panicked: %v", config, r)
		}
	}()
	if name == simplego.BackendName {
		restore := captureStdout()
		defer restore()
	}
	return backends.NewWithConfig(config)
}

// captureStdout redirects os.Stdout to a pipe until the returned function is called; captured
// lines from the pure-Go backend go to the debug log, anything else back to the real stdout.
func captureStdout() (restore func()) {
	r, w, err := os.Pipe()
	if err != nil {
		return func() {}
	}
	orig := os.Stdout
	os.Stdout = w
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "SimpleGo backend:") {
				slog.Debug("engine: " + line)
				continue
			}
			_, _ = io.WriteString(orig, line+"\n")
		}
		_ = r.Close()
	}()
	return func() {
		os.Stdout = orig
		_ = w.Close()
		<-done
	}
}

// moduleVersion returns the version of a module dependency in the running binary, or "unknown".
func moduleVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == path {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}
