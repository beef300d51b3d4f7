package tiny

import (
	"fmt"

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
		Generator:   loadGenerator,
	})
}

// loadGenerator is replaced by the generator's loader (generator.go) when it exists.
var loadGenerator = func(dir string) (family.Generator, error) {
	return nil, fmt.Errorf("tiny generator not available in this build")
}
