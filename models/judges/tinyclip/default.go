package tinyclip

import (
	"embed"
	"errors"
	"fmt"

	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// ErrNoDefaultWeights is returned by LoadDefault when the build carries no committed weights.
var ErrNoDefaultWeights = errors.New("tinyclip default weights not found in models/judges/tinyclip/weights: " +
	"make them with `cocoflow run experiments/tiny/pretrain.yaml`, copy them in with tools/install-weights.sh, and rebuild")

// defaultWeights holds the committed default tiny CLIP (config.json and the engine checkpoint)
// once tools/install-weights.sh has filled models/judges/tinyclip/weights/; otherwise only its README.
//
//go:embed weights
var defaultWeights embed.FS

// LoadDefault loads the committed default tiny CLIP embedded from models/judges/tinyclip/weights/. It
// returns ErrNoDefaultWeights (possibly wrapped, naming the missing file) when the build has
// none, or an error naming what is wrong with the embedded files.
func LoadDefault() (*Model, error) {
	m, err := engine.LoadEmbedded(defaultWeights, tinyface.ConfigFile, ErrNoDefaultWeights, LoadFrom)
	if err != nil && !errors.Is(err, ErrNoDefaultWeights) {
		return nil, fmt.Errorf("tinyclip: %w", err)
	}
	return m, err
}
