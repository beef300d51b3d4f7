package tiny

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CheckDir (the family's validation check) accepts the built-in default and a saved generator
// folder, and names what is missing otherwise, without loading weights.
func TestCheckDir(t *testing.T) {
	if err := CheckDir(""); err != nil {
		t.Fatalf("built-in default: %v", err)
	}
	if err := CheckDir("weights"); err != nil {
		t.Fatalf("the committed weights folder: %v", err)
	}
	dir := t.TempDir()
	if err := CheckDir(dir); err == nil || !strings.Contains(err.Error(), "want a generator folder (config.json, checkpoint.bin)") {
		t.Fatalf("empty folder: %v", err)
	}
	cfg, err := os.ReadFile(filepath.Join("weights", ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir); err == nil || !strings.Contains(err.Error(), "checkpoint.bin") {
		t.Fatalf("no checkpoint: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"width": "wide"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CheckDir(dir); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Fatalf("bad config: %v", err)
	}
}
