package stages

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/pipeline"

	_ "github.com/cocoflow/cocoflow/models/family/tiny" // registers the tiny family
)

type encodeParams struct {
	Family   string `param:"family" default:"tiny" doc:"model family whose autoencoder and tokenizer to use"`
	ModelDir string `param:"model_dir" doc:"the family's model folder (\"\" for its built-in default)"`
}

func init() {
	pipeline.Register(pipeline.Spec[encodeParams]{
		Name:    "encode",
		Version: "2", // 2: an image whose mask row has an error is a latent row with that error (it stopped the stage)
		Doc: "Maps images to latents with the family's autoencoder, masks to latent resolution, and " +
			"captions to token ids with the family's tokenizer, recording the token position of the " +
			"concept word. A caption whose concept word is missing or would be truncated away (no room " +
			"left to insert a pseudo-word before it) is kept as a row with error set and counted, not " +
			"crashed on; so is an image whose mask row has an error (a latent row with that error).",
		Inputs: []pipeline.Port{
			{Name: "images", Doc: "ingest output"},
			{Name: "captions", Doc: "caption output"},
			{Name: "masks", Doc: "mask output"},
		},
		Outputs: []pipeline.Port{
			{Name: "latents", Doc: "one row per image", Schema: LatentRow{}},
			{Name: "tokens", Doc: "one row per caption", Schema: TokenRow{}},
		},
		Sharded: true,
		Check:   func(p *encodeParams) error { return checkFamily(p.Family, p.ModelDir) },
		New: func(p *encodeParams) (pipeline.Stage, error) {
			spec, err := family.Lookup(p.Family)
			if err != nil {
				return nil, err
			}
			tok, err := spec.Tokenizer(p.ModelDir)
			if err != nil {
				return nil, fmt.Errorf("family %s: tokenizer: %w", p.Family, err)
			}
			ae, err := spec.Autoencoder(p.ModelDir)
			if err != nil {
				return nil, fmt.Errorf("family %s: autoencoder: %w", p.Family, err)
			}
			return &encoder{family: p.Family, tok: tok, ae: ae}, nil
		},
	})
}

type encoder struct {
	family string
	tok    text.Tokenizer
	ae     family.Autoencoder
}

func (e *encoder) Run(ctx context.Context, job *pipeline.Job) error {
	images, captions, masks := job.Input("images"), job.Input("captions"), job.Input("masks")
	n := images.NumShards()
	if captions.NumShards() != n || masks.NumShards() != n {
		return fmt.Errorf("inputs are not shard-aligned: images %d, captions %d, masks %d shards (they must come from one ingest)", n, captions.NumShards(), masks.NumShards())
	}
	var skipped, noMask atomic.Int64
	err := pipeline.MapShards(ctx, job, job.Output("latents"), n, func(ctx context.Context, shard int) ([]LatentRow, error) {
		ims, err := pipeline.ReadShard[ImageRow](images, shard)
		if err != nil {
			return nil, err
		}
		ms, err := pipeline.ReadShard[MaskRow](masks, shard)
		if err != nil {
			return nil, err
		}
		maskOf := map[string]MaskRow{}
		for _, m := range ms {
			maskOf[m.ID] = m
		}
		rows := make([]LatentRow, 0, len(ims))
		for _, im := range ims {
			m, ok := maskOf[im.ID]
			if !ok {
				return nil, fmt.Errorf("image %s has no row in the masks input (shard %d)", im.ID, shard)
			}
			if m.Error != "" || len(m.Mask) == 0 {
				// The mask stage kept the image as a row with its error (no box passed, say):
				// the image goes on as a row without a latent, skipped by triplets and counted.
				rows = append(rows, LatentRow{ID: im.ID, Family: e.family, Error: "no subject mask: " + m.Error})
				noMask.Add(1)
				continue
			}
			row, err := e.latent(im, m)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", im.ID, err)
			}
			rows = append(rows, row)
		}
		return rows, nil
	})
	if err != nil {
		return err
	}
	err = pipeline.MapShards(ctx, job, job.Output("tokens"), n, func(ctx context.Context, shard int) ([]TokenRow, error) {
		caps, err := pipeline.ReadShard[CaptionRow](captions, shard)
		if err != nil {
			return nil, err
		}
		rows := make([]TokenRow, len(caps))
		for i, c := range caps {
			rows[i] = e.tokens(c)
			if rows[i].Error != "" {
				skipped.Add(1)
			}
		}
		return rows, nil
	})
	if n := noMask.Load(); n > 0 {
		job.Log.Warn("images without a subject mask have no latent (see the error column of latents)", "count", n)
		job.Record("images_without_mask", n)
	}
	if n := skipped.Load(); n > 0 {
		job.Log.Warn("captions skipped (see the error column of tokens)", "count", n)
		job.Record("captions_skipped", n)
	}
	return err
}

func (e *encoder) latent(im ImageRow, m MaskRow) (LatentRow, error) {
	img, err := imageio.DecodeAs(im.Image, im.Format)
	if err != nil {
		return LatentRow{}, err
	}
	lat, shape, err := e.ae.Encode(img)
	if err != nil {
		return LatentRow{}, err
	}
	row := LatentRow{ID: im.ID, Family: e.family, Shape: toInt32(shape), Latent: lat}
	mask, err := imageio.DecodeMask(m.Mask)
	if err != nil {
		return LatentRow{}, fmt.Errorf("mask: %w", err)
	}
	row.Mask, shape, err = e.ae.Mask(mask)
	if err != nil {
		return LatentRow{}, err
	}
	row.MaskShape = toInt32(shape)
	return row, nil
}

// tokens tokenizes one caption and finds its concept token. Room for one inserted pseudo-word
// must remain before EOS, or the caption is unusable for CoCoIns and is skipped.
func (e *encoder) tokens(c CaptionRow) TokenRow {
	row := TokenRow{ID: c.ID, K: c.K, Text: c.Text, Concept: c.Concept, ConceptPos: -1}
	if c.Error != "" {
		row.Error = "no caption: " + c.Error
		return row
	}
	enc := e.tok.Encode(c.Text)
	pos := text.ConceptIndex(enc, c.Concept)
	if pos < 0 {
		row.Error = fmt.Sprintf("concept word %q not found among the caption's tokens", c.Concept)
		return row
	}
	ids, _, truncated := text.Fit(enc.IDs, e.tok.MaxLength(), e.tok.EOS(), e.tok.Pad())
	ids = unpad(ids, e.tok.EOS())
	if truncated {
		row.Error = fmt.Sprintf("caption has %d tokens, more than the encoder's %d", len(enc.IDs), e.tok.MaxLength())
		return row
	}
	if len(ids)+1 > e.tok.MaxLength() {
		row.Error = fmt.Sprintf("no room to insert a pseudo-word: caption fills all %d token positions", e.tok.MaxLength())
		return row
	}
	row.IDs, row.ConceptPos = ids, int32(pos)
	return row
}

// unpad cuts ids after the first EOS.
func unpad(ids []int32, eos int32) []int32 {
	for i, id := range ids {
		if id == eos {
			return ids[:i+1]
		}
	}
	return ids
}

func toInt32(xs []int) []int32 {
	out := make([]int32, len(xs))
	for i, x := range xs {
		out[i] = int32(x)
	}
	return out
}
