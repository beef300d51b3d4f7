package tinyface

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// savedFiles trains and saves a tiny model and returns it with the files of its folder.
func savedFiles(t *testing.T) (*Model, Data, map[string][]byte) {
	t.Helper()
	d := world(t, 3, 2)
	m := mustTrain(t, d, tinyOptions())
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, name := range []string{ConfigFile, engine.CheckpointFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return m, d, files
}

func TestLoadEmbedded(t *testing.T) {
	m, d, files := savedFiles(t)
	readme := &fstest.MapFile{Data: []byte("# weights\n")}
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		missing bool   // want ErrNoDefaultWeights
		want    string // in the error; "" for success
	}{
		{"only the README", fstest.MapFS{"README.md": readme}, true, "pretrain.yaml"},
		{"config without weights", fstest.MapFS{"README.md": readme, ConfigFile: {Data: files[ConfigFile]}}, true, "checkpoint.bin is not"},
		{"corrupt weights", fstest.MapFS{ConfigFile: {Data: files[ConfigFile]}, engine.CheckpointFile: {Data: files[engine.CheckpointFile][:100]}}, false, "checkpoint"},
		{"complete", fstest.MapFS{"README.md": readme, ConfigFile: {Data: files[ConfigFile]}, engine.CheckpointFile: {Data: files[engine.CheckpointFile]}}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			weights := fstest.MapFS{} // as //go:embed weights holds the folder
			for name, f := range tc.fsys {
				weights["weights/"+name] = f
			}
			got, err := engine.LoadEmbedded(weights, ConfigFile, ErrNoDefaultWeights, LoadFrom)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				a, _ := m.Embed(d.Images)
				b, err := got.Embed(d.Images)
				if err != nil {
					t.Fatal(err)
				}
				if got.Config() != m.Config() || a[1][0] != b[1][0] || a[2][3] != b[2][3] {
					t.Fatal("the model loaded from the file system differs from the saved one")
				}
				return
			}
			if err == nil || errors.Is(err, ErrNoDefaultWeights) != tc.missing || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q (ErrNoDefaultWeights: %v)", err, tc.want, tc.missing)
			}
		})
	}
}

// TestLoadDefault checks the embedded folder in whichever state it is committed: with only
// its README, LoadDefault says which command makes the weights; with weights, they load and
// match their SHA256SUMS.
func TestLoadDefault(t *testing.T) {
	_, statErr := fs.Stat(defaultWeights, "weights/"+ConfigFile)
	checkEmbedded(t, defaultWeights, statErr == nil)
	m, err := LoadDefault()
	if statErr != nil {
		if !errors.Is(err, ErrNoDefaultWeights) || !strings.Contains(err.Error(), "experiments/tiny/pretrain.yaml") {
			t.Fatalf("without embedded weights: got %v, want ErrNoDefaultWeights naming the command", err)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Config().Validate(); err != nil {
		t.Fatal(err)
	}
}

// checkEmbedded checks that an embedded weights folder has a README and, when it holds
// installed weights, a SHA256SUMS that every file listed there matches.
func checkEmbedded(t *testing.T, fsys fs.FS, installed bool) {
	t.Helper()
	if _, err := fs.Stat(fsys, "weights/README.md"); err != nil {
		t.Fatalf("weights/README.md: %v", err)
	}
	sums, err := fs.ReadFile(fsys, "weights/SHA256SUMS")
	if errors.Is(err, fs.ErrNotExist) && !installed {
		return
	} else if err != nil {
		t.Fatal(err)
	}
	for n, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("SHA256SUMS:%d: want \"<sha256>  <file>\", got %q", n+1, line)
		}
		data, err := fs.ReadFile(fsys, "weights/"+name)
		if err != nil {
			t.Fatalf("SHA256SUMS:%d: %v", n+1, err)
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
			t.Errorf("SHA256SUMS:%d: %s has sha256 %x, want %s", n+1, name, h, sum)
		}
	}
}
