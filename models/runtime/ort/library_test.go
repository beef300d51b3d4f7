package ort

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestLibraryPath(t *testing.T) {
	// A fake repository with an installed library two levels above the
	// working directory.
	repo := t.TempDir()
	lib := filepath.Join(repo, ".cache", "ort", "libonnxruntime.so.1")
	deep := filepath.Join(repo, "models", "ort")
	for _, d := range []string{filepath.Dir(lib), deep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(lib, []byte("fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()

	cases := []struct {
		name       string
		configured string
		cocoflow   string
		shared     string
		wd         string
		want       string
	}{
		{"configured wins", "/opt/x/libort.so", "/env/a.so", "/env/b.so", deep, "/opt/x/libort.so"},
		{"COCOFLOW_ORT_LIB next", "", "/env/a.so", "/env/b.so", deep, "/env/a.so"},
		{"ONNXRUNTIME_SHARED_LIBRARY_PATH next", "", "", "/env/b.so", deep, "/env/b.so"},
		{"repo cache searched upward", "", "", "", deep, lib},
		{"repo cache in the working directory", "", "", "", repo, lib},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvLibrary, c.cocoflow)
			t.Setenv(EnvSharedLibrary, c.shared)
			t.Chdir(c.wd)
			got := LibraryPath(c.configured)
			if canonical(got) != canonical(c.want) {
				t.Errorf("LibraryPath(%q) = %q, want %q", c.configured, got, c.want)
			}
		})
	}
	t.Run("system default", func(t *testing.T) {
		t.Setenv(EnvLibrary, "")
		t.Setenv(EnvSharedLibrary, "")
		t.Chdir(empty)
		got := LibraryPath("")
		if strings.Contains(got, ".cache") {
			t.Errorf("LibraryPath = %q outside any repository, want a system name", got)
		}
		if !strings.Contains(filepath.Base(got), "onnxruntime") {
			t.Errorf("LibraryPath = %q, want a default onnxruntime library name", got)
		}
	})
}

func TestLibraryErrorMessage(t *testing.T) {
	cases := []struct {
		err  *LibraryError
		want string
	}{
		{&LibraryError{Path: "/x/libonnxruntime.so.1"},
			"onnx runtime library not found at /x/libonnxruntime.so.1: run tools/install-ort.sh (or set COCOFLOW_ORT_LIB)"},
		{&LibraryError{Path: "/x/lib.so", Cause: errors.New("dlopen failed:\n  invalid ELF header")},
			"onnx runtime library not found at /x/lib.so: run tools/install-ort.sh (or set COCOFLOW_ORT_LIB): dlopen failed: invalid ELF header"},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

// helperEnv makes the test binary act as a fresh process that calls Init on
// the library named in it and prints the error; Init can run only once per
// process, so first-Init failures are checked in children.
const helperEnv = "COCOFLOW_ORT_TEST_INIT_CHILD"

func TestInitChildProcess(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		return // only meaningful as a child of TestInitFailures
	}
	if err := Init(path); err != nil {
		os.Stdout.WriteString("ERR " + err.Error() + "\n")
		var le *LibraryError
		if errors.As(err, &le) {
			os.Stdout.WriteString("LIBRARY-ERROR\n")
		}
		os.Exit(0)
	}
	os.Stdout.WriteString("OK\n")
	os.Exit(0)
}

func TestInitFailures(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "libonnxruntime.so.1")
	if err := os.WriteFile(garbage, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "absent", "libonnxruntime.so.1")
	cases := []struct {
		name, path, want string
	}{
		{"missing", missing, "ERR onnx runtime library not found at " + missing + ": run tools/install-ort.sh (or set COCOFLOW_ORT_LIB)\nLIBRARY-ERROR\n"},
		{"unloadable", garbage, "ERR onnx runtime library not found at " + garbage + ": run tools/install-ort.sh (or set COCOFLOW_ORT_LIB): "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestInitChildProcess$")
			cmd.Env = append(os.Environ(), helperEnv+"="+c.path)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			got := string(out)
			if !strings.HasPrefix(got, c.want) {
				t.Errorf("child printed %q, want prefix %q", got, c.want)
			}
			if !strings.HasSuffix(got, "\nLIBRARY-ERROR\n") || strings.Count(got, "\n") != 2 {
				t.Errorf("child printed %q, want a one-line *LibraryError", got)
			}
		})
	}
}

func TestInitIdempotent(t *testing.T) {
	initORT(t)
	path := LibraryPath("")
	if err := Init(path); err != nil {
		t.Errorf("second Init(%q): %v", path, err)
	}
	// Another spelling of the same file is the same library.
	link := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, link); err != nil {
		t.Fatal(err)
	}
	if err := Init(link); err != nil {
		t.Errorf("Init via symlink %q: %v", link, err)
	}
	other := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	if err := os.WriteFile(other, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Init(other); err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Errorf("Init with a different library: %v, want an already-initialised error", err)
	}
	v, err := Version()
	if err != nil {
		t.Fatal(err)
	}
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil || major != 1 || minor < 24 {
		t.Errorf("Version() = %q, want ONNX Runtime 1.24 or newer", v)
	}
}
