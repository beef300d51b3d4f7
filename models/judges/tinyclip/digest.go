package tinyclip

import (
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// WeightsDigest is the digest of the CLIP saved in dir ("" for the embedded default).
func WeightsDigest(dir string) (string, error) {
	return engine.ModelDigest(dir, defaultWeights, tinyface.ConfigFile)
}
