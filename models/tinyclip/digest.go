package tinyclip

import (
	"github.com/cocoflow/cocoflow/models/engine"
	"github.com/cocoflow/cocoflow/models/tinyface"
)

// WeightsDigest is the digest of the CLIP saved in dir ("" for the embedded default).
func WeightsDigest(dir string) (string, error) {
	return engine.ModelDigest(dir, defaultWeights, tinyface.ConfigFile)
}
