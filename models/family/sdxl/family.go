package sdxl

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/text"
)

// The sdxl family: model_dir is an optimum/diffusers ONNX export of SDXL (see Load).
func init() {
	family.Register(FamilyName, family.Spec{
		Tokenizer: func(dir string) (text.Tokenizer, error) {
			l, err := readLayout(dir)
			if err != nil {
				return nil, err
			}
			tok, _, err := tokenizers(l)
			if err != nil {
				return nil, err
			}
			return tok, nil
		},
		Autoencoder: func(dir string) (family.Autoencoder, error) {
			l, err := readLayout(dir)
			if err != nil {
				return nil, err
			}
			opt, err := Options{}.withEnv()
			if err != nil {
				return nil, err
			}
			ae := newAutoencoder(l, opt)
			if err := ae.open(); err != nil {
				return nil, err
			}
			return ae, nil
		},
		Generator: func(dir string) (family.Generator, error) { return Load(dir, Options{}) },
		Digest:    Digest,
		Check:     Check,
	})
}

// digestSpan is how much of each file's beginning and end Digest reads.
const digestSpan = 1 << 20

// Digest returns a digest of the export in dir that changes when any file of it does: SHA-256
// over every file's path, size, first and last MiB. Reading a whole 13 GB export on every run
// would cost minutes; a retrained or re-exported model changes its sizes or its first and last
// bytes (headers, graph, the last weights) in practice. It returns an error naming the file it
// cannot read.
func Digest(dir string) (string, error) {
	if _, err := readLayout(dir); err != nil {
		return "", err
	}
	// A model folder is often a symlink (a farm of them under COCOFLOW_MODELS): walk what it
	// points to, so that the digest is the export's wherever it is linked from.
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("sdxl: digest: %w", err)
	}
	var files []string
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0 {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("sdxl: digest: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	buf := make([]byte, digestSpan)
	for _, path := range files {
		if err := digestFile(h, dir, path, buf); err != nil {
			return "", fmt.Errorf("sdxl: digest: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func digestFile(h io.Writer, dir, path string, buf []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	rel, _ := filepath.Rel(dir, path)
	fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), fi.Size())
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return err
	}
	h.Write(buf[:n])
	if fi.Size() > int64(len(buf)) {
		tail := max(int64(len(buf)), fi.Size()-int64(len(buf)))
		n, err := f.ReadAt(buf, tail)
		if err != nil && err != io.EOF {
			return err
		}
		h.Write(buf[:n])
	}
	return nil
}
