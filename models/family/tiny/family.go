package tiny

import (
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/text"
)

// The tiny family: a word tokenizer, the fixed patch latent, and a generator that cocoflow
// pretrains itself (experiments/tiny/pretrain.yaml).
func init() {
	family.Register("tiny", family.Spec{
		Tokenizer: func(dir string) (text.Tokenizer, error) {
			t, err := Tokenizer()
			if err != nil {
				return nil, err
			}
			return t, nil
		},
		Autoencoder: func(dir string) (family.Autoencoder, error) { return DefaultLatent, nil },
		Generator:   loadFamilyGenerator, // generator.go: dir "" loads the embedded default weights
		Digest:      WeightsDigest,
		Check:       CheckDir,
	})
}
