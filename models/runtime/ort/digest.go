package ort

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FileDigest is the SHA-256, in hex, of the base names and contents of the files at paths, in
// the order given: the digest stage fingerprints record for the ONNX models (and tokenizer
// files) a judge loads, so that outputs are recomputed when a model changes. Files are
// streamed, so multi-gigabyte weights cost one read and no memory. Errors name the file.
func FileDigest(paths ...string) (string, error) {
	h := sha256.New()
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("digest: %w", err)
		}
		fh := sha256.New()
		_, err = io.Copy(fh, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("digest %s: %w", p, err)
		}
		fmt.Fprintf(h, "%s %x\n", filepath.Base(p), fh.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
