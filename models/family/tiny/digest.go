package tiny

import "github.com/cocoflow/cocoflow/models/runtime/engine"

// WeightsDigest is the digest of the generator saved in dir ("" for the embedded default).
func WeightsDigest(dir string) (string, error) {
	return engine.ModelDigest(dir, defaultWeights, ConfigFile)
}
