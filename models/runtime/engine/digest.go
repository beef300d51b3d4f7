package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
)

// ModelDigest is the SHA-256, in hex, of a saved model: of the names and contents of its
// configFile and CheckpointFile. dir "" means the model's built-in default, the "weights"
// folder of embedded. Stage fingerprints use it to name the weights a stage loads, so
// outputs are recomputed when the weights change.
func ModelDigest(dir string, embedded fs.FS, configFile string) (string, error) {
	var fsys fs.FS = os.DirFS(dir)
	where := dir
	if dir == "" {
		sub, err := fs.Sub(embedded, "weights")
		if err != nil {
			return "", err
		}
		fsys, where = sub, "embedded weights"
	}
	h := sha256.New()
	for _, name := range []string{configFile, CheckpointFile} {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return "", fmt.Errorf("%s: %w", where, err)
		}
		fmt.Fprintf(h, "%s %x\n", name, sha256.Sum256(data))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
