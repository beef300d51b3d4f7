package stages

import (
	"context"
	"fmt"
	"hash/fnv"
	"sync/atomic"

	"github.com/cocoflow/cocoflow/pipeline"
)

type tripletParams struct {
	Pairs       string  `param:"pairs" default:"all" enum:"all,first" doc:"caption pairs per image: all ordered pairs (P1, P2) with P1 ≠ P2, or only the first"`
	ValFraction float64 `param:"val_fraction" default:"0.05" min:"0" max:"0.5" doc:"share of images marked split=val (by a hash of the image id)"`
}

func init() {
	pipeline.Register(pipeline.Spec[tripletParams]{
		Name:    "triplets",
		Version: "2", // 2: latent rows with an error are skipped and counted
		Doc: "Joins latents, masks and tokenized captions into CoCoIns training rows: the image latent " +
			"x, its latent-resolution subject mask m, two different captions P1, P2 with their concept " +
			"positions i, j (paper §3.3). The identity is kept for metrics only. Images with fewer than " +
			"two usable captions, or without a latent (no subject mask), are skipped and counted.",
		Inputs: []pipeline.Port{
			{Name: "images", Doc: "ingest output (identity, class)"},
			{Name: "latents", Doc: "encode.latents"},
			{Name: "tokens", Doc: "encode.tokens"},
		},
		Outputs: []pipeline.Port{{Name: "triplets", Doc: "training rows", Schema: TripletRow{}}},
		Sharded: true,
		Run:     runTriplets,
	})
}

func runTriplets(ctx context.Context, job *pipeline.Job, p *tripletParams) error {
	images, latents, tokens := job.Input("images"), job.Input("latents"), job.Input("tokens")
	n := images.NumShards()
	if latents.NumShards() != n || tokens.NumShards() != n {
		return fmt.Errorf("inputs are not shard-aligned: images %d, latents %d, tokens %d shards (they must come from one ingest)", n, latents.NumShards(), tokens.NumShards())
	}
	var skipped, noLatent atomic.Int64
	err := pipeline.MapShards(ctx, job, job.Output("triplets"), n, func(ctx context.Context, shard int) ([]TripletRow, error) {
		ims, err := pipeline.ReadShard[ImageRow](images, shard)
		if err != nil {
			return nil, err
		}
		lats, err := pipeline.ReadShard[LatentRow](latents, shard)
		if err != nil {
			return nil, err
		}
		toks, err := pipeline.ReadShard[TokenRow](tokens, shard)
		if err != nil {
			return nil, err
		}
		latOf := map[string]*LatentRow{}
		for i := range lats {
			latOf[lats[i].ID] = &lats[i]
		}
		capsOf := map[string][]TokenRow{}
		for _, t := range toks {
			if t.Error == "" {
				capsOf[t.ID] = append(capsOf[t.ID], t)
			}
		}
		var rows []TripletRow
		for _, im := range ims {
			lat, ok := latOf[im.ID]
			if !ok {
				return nil, fmt.Errorf("image %s has no latent in shard %d of %s", im.ID, shard, latents.Dir)
			}
			if lat.Error != "" {
				noLatent.Add(1)
				continue
			}
			caps := capsOf[im.ID]
			pairs := captionPairs(caps, p.Pairs)
			if len(pairs) == 0 {
				skipped.Add(1)
				continue
			}
			split := "train"
			if hashFraction(im.ID) < p.ValFraction {
				split = "val"
			}
			for _, pr := range pairs {
				a, b := caps[pr[0]], caps[pr[1]]
				rows = append(rows, TripletRow{
					ID: im.ID, Identity: im.Identity, Class: im.Class, Split: split,
					Shape: lat.Shape, Latent: lat.Latent, MaskShape: lat.MaskShape, Mask: lat.Mask,
					P1: a.Text, P1IDs: a.IDs, I: a.ConceptPos,
					P2: b.Text, P2IDs: b.IDs, J: b.ConceptPos,
				})
			}
		}
		return rows, nil
	})
	if n := skipped.Load(); n > 0 {
		job.Log.Warn("images without two usable captions were skipped", "count", n)
		job.Record("images_skipped", n)
	}
	if n := noLatent.Load(); n > 0 {
		job.Log.Warn("images without a latent (no subject mask) were skipped", "count", n)
		job.Record("images_without_latent", n)
	}
	return err
}

// captionPairs lists index pairs of captions with different texts.
func captionPairs(caps []TokenRow, mode string) [][2]int {
	var out [][2]int
	for a := range caps {
		for b := range caps {
			if a == b || caps[a].Text == caps[b].Text {
				continue
			}
			out = append(out, [2]int{a, b})
			if mode == "first" {
				return out
			}
		}
	}
	return out
}

// hashFraction maps a string to [0, 1) deterministically.
func hashFraction(s string) float64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return float64(h.Sum64()%1_000_000) / 1_000_000
}
