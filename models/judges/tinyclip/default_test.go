package tinyclip

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

	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

func TestLoadEmbeddedTinyCLIP(t *testing.T) {
	d, _ := world(t, 3, 3)
	m := mustTrain(t, d, tinyOptions(t))
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"weights/README.md": {Data: []byte("# weights\n")}}
	if _, err := engine.LoadEmbedded(fsys, tinyface.ConfigFile, ErrNoDefaultWeights, LoadFrom); !errors.Is(err, ErrNoDefaultWeights) {
		t.Fatalf("README only: got %v, want ErrNoDefaultWeights", err)
	}
	for _, name := range []string{tinyface.ConfigFile, engine.CheckpointFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		fsys["weights/"+name] = &fstest.MapFile{Data: b}
	}
	got, err := engine.LoadEmbedded(fsys, tinyface.ConfigFile, ErrNoDefaultWeights, LoadFrom)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := m.EmbedTexts([]string{"a photo of a man."})
	b, err := got.EmbedTexts([]string{"a photo of a man."})
	if err != nil {
		t.Fatal(err)
	}
	if got.Config() != m.Config() || a[0][0] != b[0][0] || a[0][5] != b[0][5] {
		t.Fatal("the model loaded from the file system differs from the saved one")
	}
}

// TestLoadDefault checks the embedded folder in whichever state it is committed: with only
// its README, LoadDefault says which command makes the weights; with weights, they load and
// match their SHA256SUMS.
func TestLoadDefault(t *testing.T) {
	if _, err := fs.Stat(defaultWeights, "weights/README.md"); err != nil {
		t.Fatalf("weights/README.md: %v", err)
	}
	m, err := LoadDefault()
	if _, statErr := fs.Stat(defaultWeights, "weights/"+tinyface.ConfigFile); statErr != nil {
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
	sums, err := fs.ReadFile(defaultWeights, "weights/SHA256SUMS")
	if err != nil {
		t.Fatalf("installed weights without SHA256SUMS: %v", err)
	}
	for n, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		sum, name, _ := strings.Cut(line, "  ")
		data, err := fs.ReadFile(defaultWeights, "weights/"+name)
		if err != nil {
			t.Fatalf("SHA256SUMS:%d: %v", n+1, err)
		}
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum {
			t.Errorf("SHA256SUMS:%d: %s has sha256 %x, want %s", n+1, name, h, sum)
		}
	}
}
