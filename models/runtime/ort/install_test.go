package ort

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// These tests run tools/install-ort.sh offline: a fake npm (NPM=...) writes
// a small tarball, and a fake uname (first on PATH) changes the platform.

// fakeTarball writes an onnxruntime-node-1.30.0.tgz holding the given
// members to dir.
func fakeTarball(t *testing.T, dir string, members map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range members {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "onnxruntime-node-1.30.0.tgz"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestInstallScript(t *testing.T) {
	script := filepath.Join(repoRoot(t), "tools", "install-ort.sh")
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	tarballs := filepath.Join(work, "tarballs")
	if err := os.MkdirAll(tarballs, 0o755); err != nil {
		t.Fatal(err)
	}
	fakeTarball(t, tarballs, map[string]string{
		"package/bin/napi-v6/linux/x64/libonnxruntime.so.1": "not the pinned library",
		"package/package.json":                              "{}",
	})
	// fake npm: records the call, then copies the tarball into the cwd.
	calls := filepath.Join(work, "npm-calls")
	fakeNpm := filepath.Join(work, "npm")
	writeScript(t, fakeNpm, `echo "$@" >>`+calls+`
cp `+tarballs+`/onnxruntime-node-1.30.0.tgz .
`)
	failNpm := filepath.Join(work, "npm-fail")
	writeScript(t, failNpm, "echo >>"+calls+"; exit 3\n")
	darwin := filepath.Join(work, "darwin-bin")
	if err := os.MkdirAll(darwin, 0o755); err != nil {
		t.Fatal(err)
	}
	writeScript(t, filepath.Join(darwin, "uname"), `case "$1" in -s) echo Darwin;; *) echo arm64;; esac
`)

	// A DEST that already holds the pinned library: a link to the one the
	// script installed into the repository.
	installed := filepath.Join(work, "installed")
	if err := os.MkdirAll(installed, 0o755); err != nil {
		t.Fatal(err)
	}
	lib := filepath.Join(repoRoot(t), repoLibrary)
	if _, err := os.Stat(lib); err != nil {
		t.Fatalf("%v: run tools/install-ort.sh", err)
	}
	if err := os.Symlink(lib, filepath.Join(installed, "libonnxruntime.so.1")); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name     string
		dest     string
		npm      string
		path     string // prepended to PATH
		wantOK   bool
		wantErr  string
		wantNpm  bool
		wantFile bool
	}{
		{"already installed downloads nothing", installed, failNpm, "", true, "", false, true},
		{"npm missing", filepath.Join(work, "d1"), filepath.Join(work, "no-such-npm"), "", false, "npm not found", false, false},
		{"checksum mismatch", filepath.Join(work, "d2"), fakeNpm, "", false, "checksum mismatch for libonnxruntime.so.1", true, false},
		{"npm pack fails", filepath.Join(work, "d3"), failNpm, "", false, "npm pack onnxruntime-node@1.30.0 failed", true, false},
		{"other platform", filepath.Join(work, "d4"), fakeNpm, darwin, false, "unsupported platform Darwin/arm64", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(calls)
			cmd := exec.Command("bash", script, c.dest)
			env := append(os.Environ(), "NPM="+c.npm)
			if c.path != "" {
				env = append(env, "PATH="+c.path+":"+os.Getenv("PATH"))
			}
			cmd.Env = env
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if c.wantOK {
				if err != nil {
					t.Fatalf("install-ort.sh failed: %v\n%s", err, stderr.String())
				}
				want := filepath.Join(c.dest, "libonnxruntime.so.1")
				if last := lines[len(lines)-1]; last != want {
					t.Errorf("last stdout line %q, want %q", last, want)
				}
			} else {
				if err == nil {
					t.Fatalf("install-ort.sh succeeded, want %q\nstdout: %s", c.wantErr, stdout.String())
				}
				msg := strings.TrimSpace(stderr.String())
				errLines := strings.Split(msg, "\n")
				last := errLines[len(errLines)-1]
				if !strings.HasPrefix(last, "install-ort.sh: ") || !strings.Contains(last, c.wantErr) {
					t.Errorf("last stderr line %q, want a one-line cause containing %q", last, c.wantErr)
				}
				if stdout.Len() != 0 && strings.Contains(stdout.String(), "libonnxruntime.so.1") {
					t.Errorf("failed run printed a library path: %q", stdout.String())
				}
			}
			_, callErr := os.Stat(calls)
			if called := callErr == nil; called != c.wantNpm {
				t.Errorf("npm called = %v, want %v", called, c.wantNpm)
			}
			_, statErr := os.Stat(filepath.Join(c.dest, "libonnxruntime.so.1"))
			if has := statErr == nil; has != c.wantFile {
				t.Errorf("library in DEST = %v, want %v", has, c.wantFile)
			}
		})
	}
}

// TestInstallScriptGPU runs the --gpu variant offline: a fake npm hands out a core tarball
// whose library is not the pinned one, which must stop the install before anything is copied.
func TestInstallScriptGPU(t *testing.T) {
	script := filepath.Join(repoRoot(t), "tools", "install-ort.sh")
	work := t.TempDir()
	fakeTarball(t, work, map[string]string{"package/bin/napi-v6/linux/x64/libonnxruntime.so.1": "not the pinned library"})
	if err := os.Rename(filepath.Join(work, "onnxruntime-node-1.30.0.tgz"), filepath.Join(work, "onnxruntime-node-1.29.0.tgz")); err != nil {
		t.Fatal(err)
	}
	calls := filepath.Join(work, "npm-calls")
	fakeNpm := filepath.Join(work, "npm")
	writeScript(t, fakeNpm, `echo "$@" >>`+calls+`
cp `+work+`/onnxruntime-node-1.29.0.tgz .
`)
	for _, c := range []struct {
		args    []string
		wantErr string
		wantNpm string
	}{
		{[]string{"--gpu", filepath.Join(work, "gpu")}, "checksum mismatch for libonnxruntime.so.1 from onnxruntime-node-1.29.0.tgz", "pack onnxruntime-node@1.29.0"},
		{[]string{"--cuda"}, "unknown option --cuda", ""},
		{[]string{"a", "b"}, "too many arguments", ""},
	} {
		os.Remove(calls)
		cmd := exec.Command("bash", append([]string{script}, c.args...)...)
		cmd.Env = append(os.Environ(), "NPM="+fakeNpm)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil {
			t.Fatalf("%v: install-ort.sh succeeded", c.args)
		}
		if !strings.Contains(stderr.String(), c.wantErr) {
			t.Errorf("%v: stderr %q, want %q", c.args, stderr.String(), c.wantErr)
		}
		got, _ := os.ReadFile(calls)
		if !strings.Contains(string(got), c.wantNpm) || (c.wantNpm == "" && len(got) > 0) {
			t.Errorf("%v: npm calls %q, want %q", c.args, got, c.wantNpm)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "gpu", "libonnxruntime.so.1")); err == nil {
		t.Error("a library with the wrong checksum was installed")
	}
}
