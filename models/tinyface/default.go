package tinyface

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/cocoflow/cocoflow/models/engine"
)

// ErrNoDefaultWeights is returned by LoadDefault when the build carries no committed weights.
var ErrNoDefaultWeights = errors.New("tinyface default weights not found in models/tinyface/weights: " +
	"make them with `cocoflow run experiments/tiny/pretrain.yaml`, copy them in with tools/install-weights.sh, and rebuild")

// defaultWeights holds the committed default identity encoder (ConfigFile and the engine
// checkpoint) once tools/install-weights.sh has filled models/tinyface/weights/; otherwise only
// its README.
//
//go:embed weights
var defaultWeights embed.FS

// LoadDefault loads the committed default identity encoder embedded from
// models/tinyface/weights/. It returns ErrNoDefaultWeights (possibly wrapped, naming the missing
// file) when the build has none, or an error naming what is wrong with the embedded files.
func LoadDefault() (*Model, error) {
	sub, err := fs.Sub(defaultWeights, "weights")
	if err != nil {
		return nil, fmt.Errorf("tinyface: embedded weights: %w", err)
	}
	m, err := LoadFS(sub, ErrNoDefaultWeights, LoadFrom)
	if err != nil && !errors.Is(err, ErrNoDefaultWeights) {
		return nil, fmt.Errorf("tinyface: embedded default weights: %w", err)
	}
	return m, err
}

// LoadFS loads a model saved in the root of fsys (ConfigFile and engine.CheckpointFile, as Save
// writes them, for example an embedded weights folder) with load. It returns missing when fsys
// has no ConfigFile, missing wrapped with the file's name when it has ConfigFile but no
// checkpoint, and load's error otherwise.
func LoadFS[M any](fsys fs.FS, missing error, load func(fsys fs.FS, where string) (M, error)) (M, error) {
	var zero M
	files := []string{ConfigFile, engine.CheckpointFile}
	for i, name := range files {
		_, err := fs.Stat(fsys, name)
		switch {
		case errors.Is(err, fs.ErrNotExist) && i == 0:
			return zero, missing
		case errors.Is(err, fs.ErrNotExist):
			return zero, fmt.Errorf("%w (%s is there, %s is not)", missing, files[0], name)
		case err != nil:
			return zero, fmt.Errorf("%s: %w", name, err)
		}
	}
	return load(fsys, "weights")
}
