package family

import (
	"fmt"

	"github.com/cocoflow/cocoflow/models/text/prompt"
)

// HostSampler is implemented by a generator that has its own inference path for sampling, such
// as ONNX Runtime sessions of an exported model: Sampler then runs the text encoders and the
// denoiser through it instead of compiling Embed, Encode and Denoise into GoMLX graphs. The
// sampling itself (batching, pseudo-word plans, the unconditional rows, guidance, the DDIM loop
// of models/diffusion) stays the Sampler's, so both paths sample the same way. Training always
// uses the graph methods, which gradients need.
type HostSampler interface {
	// NewHostRunner returns a runner for batches of up to rows rows (cond and uncond rows
	// together), or an error when the inference path cannot start (a missing library, a
	// provider that cannot load).
	NewHostRunner(rows int) (HostRunner, error)
}

// HostRunner runs one generator's text encoders and denoiser on the host. A runner is used by
// one Sampler at a time.
type HostRunner interface {
	// EncodeText returns the conditioning of the rows of b, in the runner's own form, for
	// Denoise.
	EncodeText(b TextBatch) (HostCond, error)
	// Denoise returns the denoiser's prediction (Info.Prediction) for the noisy latents xt
	// ([rows, LatentShape...] row-major), all at train timestep t, under cond from EncodeText
	// of the same rows.
	Denoise(xt []float32, t int, cond HostCond) ([]float32, error)
	// Close releases what the runner holds.
	Close() error
}

// HostCond is a runner's text conditioning of one batch, opaque to the Sampler.
type HostCond any

// TextBatch is the text side of one batch of rows as the Sampler prepares it for both paths.
type TextBatch struct {
	Rows, Length int           // rows N and token positions L (the encoders' MaxLength)
	IDs          []int32       // [N, L] token ids as tokenized, padded with the tokenizer's Pad
	Plans        []prompt.Plan // per row: where each of the L encoder positions comes from
	EOS          []int32       // [N] EOS index of each row after its insertions (Plans[r].EOS)
	Words        int           // W: pseudo-word slots per row
	// Vectors[k] holds encoder k's pseudo-words, [N, W, Dim_k]: word j of row r (Plans' -1-j)
	// at (r*W + j)*Dim_k. Unused slots are zero.
	Vectors [][]float32
}

// Row returns the embeddings of row r for one encoder: the token embeddings e [L, dim] of the
// row's ids (as the encoder looks them up) with its pseudo-words placed by its plan (eq. 4).
func (b TextBatch) Row(r, k int, e []float32, dim int) ([]float32, error) {
	p := b.Plans[r]
	words := make([][]float32, p.NumWords()) // word j is the plan's source -1-j
	if len(words) > b.Words {
		return nil, fmt.Errorf("family: row %d places %d words, the batch has %d slots", r, len(words), b.Words)
	}
	for j := range words {
		words[j] = b.Vectors[k][(r*b.Words+j)*dim : (r*b.Words+j+1)*dim]
	}
	return prompt.Insert(e, dim, p, words...)
}

// hostText encodes the batch's text with the generator's host runner and returns its denoiser
// under that conditioning.
func (s *Sampler) hostText(b TextBatch) (denoiser, func(), error) {
	cond, err := s.host.EncodeText(b)
	if err != nil {
		return nil, nil, err
	}
	return func(xt []float32, t int) ([]float32, error) { return s.host.Denoise(xt, t, cond) }, func() {}, nil
}
