// Package ort runs ONNX models with ONNX Runtime through
// github.com/yalue/onnxruntime_go.
//
// The ONNX Runtime shared library is loaded at run time (dlopen), once per
// process: LibraryPath finds it, Init loads it, and Open loads a model into a
// Session whose Run takes and returns plain Go tensors. The library must be
// ONNX Runtime 1.24 or newer (onnxruntime_go v1.27.0 asks for C API version
// 24); tools/install-ort.sh installs a pinned 1.30.0 into <repo>/.cache/ort.
//
// Execution providers (CPU, CUDA, TensorRT) are chosen per session in
// Options; a provider that cannot be enabled is an error, never a silent
// switch to CPU.
package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Environment variables LibraryPath reads, in this order.
const (
	// EnvLibrary names the library cocoflow should load.
	EnvLibrary = "COCOFLOW_ORT_LIB"
	// EnvSharedLibrary is the variable other onnxruntime_go programs use.
	EnvSharedLibrary = "ONNXRUNTIME_SHARED_LIBRARY_PATH"
)

// repoLibrary is where tools/install-ort.sh puts the library, relative to the
// repository root.
var repoLibrary = filepath.Join(".cache", "ort", "libonnxruntime.so.1")

// systemDirs are searched for the default library names when nothing else
// names a library.
var systemDirs = []string{
	"/usr/local/lib",
	"/usr/lib/x86_64-linux-gnu",
	"/usr/lib/aarch64-linux-gnu",
	"/usr/lib64",
	"/usr/lib",
	"/opt/onnxruntime/lib",
}

// defaultNames are the file names of the library on this platform, most
// specific first.
func defaultNames() []string {
	switch runtime.GOOS {
	case "darwin":
		return []string{"libonnxruntime.dylib"}
	case "windows":
		return []string{"onnxruntime.dll"}
	default:
		return []string{"libonnxruntime.so.1", "libonnxruntime.so"}
	}
}

// LibraryPath returns the ONNX Runtime shared library to load: configured
// when it is not empty, else $COCOFLOW_ORT_LIB, else
// $ONNXRUNTIME_SHARED_LIBRARY_PATH, else .cache/ort/libonnxruntime.so.1 in the
// working directory or the nearest parent folder that has one, else the first
// default library name found in the usual system folders, else the bare
// default name (left to the dynamic loader's search path). It only looks
// for files; it never loads anything and never fails.
func LibraryPath(configured string) string {
	if configured != "" {
		return configured
	}
	for _, env := range []string{EnvLibrary, EnvSharedLibrary} {
		if v := os.Getenv(env); v != "" {
			return v
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; {
			candidate := filepath.Join(dir, repoLibrary)
			if isFile(candidate) {
				return candidate
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	names := defaultNames()
	for _, dir := range systemDirs {
		for _, name := range names {
			candidate := filepath.Join(dir, name)
			if isFile(candidate) {
				return candidate
			}
		}
	}
	return names[0]
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// LibraryError is the error Init returns when the shared library is missing
// or cannot be loaded. Its message is one line.
type LibraryError struct {
	// Path is the library Init tried to load.
	Path string
	// Cause is the loader's reason; nil when the file does not exist.
	Cause error
}

// Error returns "onnx runtime library not found at PATH: run
// tools/install-ort.sh (or set COCOFLOW_ORT_LIB)", followed by the loader's
// reason on the same line when the file exists but did not load.
func (e *LibraryError) Error() string {
	msg := fmt.Sprintf("onnx runtime library not found at %s: run tools/install-ort.sh (or set %s)", e.Path, EnvLibrary)
	if e.Cause != nil {
		msg += ": " + oneLine(e.Cause.Error())
	}
	return msg
}

// Unwrap returns the loader's reason.
func (e *LibraryError) Unwrap() error { return e.Cause }

var (
	initMu   sync.Mutex
	initPath string // canonical path of the loaded library; "" before Init
)

// canonical returns an absolute, symlink-free form of a library path so that
// two spellings of one file compare equal; a bare name (no separator) is left
// alone because the dynamic loader resolves it.
func canonical(path string) string {
	if !strings.ContainsRune(path, os.PathSeparator) {
		return path
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return path
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// Init loads the ONNX Runtime shared library at path (LibraryPath("") when
// path is empty) and creates the process-wide ONNX Runtime environment. It
// may be called any number of times with the same library; after a
// successful Init, a different library is an error, because a process can
// hold only one ONNX Runtime environment. A missing or unloadable library is
// a *LibraryError.
func Init(path string) error {
	if path == "" {
		path = LibraryPath("")
	}
	want := canonical(path)
	initMu.Lock()
	defer initMu.Unlock()
	if initPath != "" {
		if initPath == want {
			return nil
		}
		return fmt.Errorf("onnx runtime already initialised with %s: cannot switch to %s in the same process", initPath, path)
	}
	if strings.ContainsRune(path, os.PathSeparator) && !isFile(path) {
		return &LibraryError{Path: path}
	}
	ortgo.SetSharedLibraryPath(path)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		if strings.Contains(err.Error(), "ORT API base") {
			// The library lacks the C API version onnxruntime_go asks for.
			err = fmt.Errorf("%w (onnxruntime_go v1.27.0 needs ONNX Runtime >= 1.24)", err)
		}
		return &LibraryError{Path: path, Cause: err}
	}
	initPath = want
	return nil
}

// ensureInit initialises the environment from LibraryPath("") unless Init
// already ran (with any library).
func ensureInit() error {
	if initialised() {
		return nil
	}
	if err := Init(""); err != nil && !initialised() {
		return err
	}
	return nil
}

func initialised() bool {
	initMu.Lock()
	defer initMu.Unlock()
	return initPath != ""
}

// Version returns the version string of the loaded ONNX Runtime library, or
// an error when Init has not succeeded yet.
func Version() (string, error) {
	if !initialised() {
		return "", errors.New("onnx runtime version: library not initialised: call ort.Init first")
	}
	return ortgo.GetVersion(), nil
}

// oneLine collapses a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
