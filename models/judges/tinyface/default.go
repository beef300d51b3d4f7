package tinyface

import (
	"embed"
	"errors"
	"fmt"

	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// ErrNoDefaultWeights is returned by LoadDefault when the build carries no committed weights.
var ErrNoDefaultWeights = errors.New("tinyface default weights not found in models/judges/tinyface/weights: " +
	"make them with `cocoflow run experiments/tiny/pretrain.yaml`, copy them in with tools/install-weights.sh, and rebuild")

// defaultWeights holds the committed default identity encoder (ConfigFile and the engine
// checkpoint) once tools/install-weights.sh has filled models/judges/tinyface/weights/; otherwise only
// its README.
//
//go:embed weights
var defaultWeights embed.FS

// LoadDefault loads the committed default identity encoder embedded from
// models/judges/tinyface/weights/. It returns ErrNoDefaultWeights (possibly wrapped, naming the missing
// file) when the build has none, or an error naming what is wrong with the embedded files.
func LoadDefault() (*Model, error) {
	m, err := engine.LoadEmbedded(defaultWeights, ConfigFile, ErrNoDefaultWeights, LoadFrom)
	if err != nil && !errors.Is(err, ErrNoDefaultWeights) {
		return nil, fmt.Errorf("tinyface: %w", err)
	}
	return m, err
}
