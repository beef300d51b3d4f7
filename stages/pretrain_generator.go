package stages

// The pretrain stage's generator: models/family/tiny on encode's latents and tokens, and its
// held-out ε-MSE evaluation.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/pipeline"
)

// generatorConfig returns the generator's architecture: tiny.DefaultConfig overridden by
// generator_config. It returns an error naming the parameter when the JSON or the result is
// invalid.
func (p *pretrainParams) generatorConfig() (tiny.Config, error) {
	tok, err := tiny.Tokenizer()
	if err != nil {
		return tiny.Config{}, err
	}
	cfg := tiny.DefaultConfig(tok.VocabSize())
	if err := overlayJSON(&cfg, p.GeneratorConfig, "generator_config"); err != nil {
		return tiny.Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return tiny.Config{}, fmt.Errorf("generator_config: %w", err)
	}
	return cfg, nil
}

// generatorOptions returns tiny.DefaultPretrainOptions with this stage's steps, batch,
// learning rate, warm-up, SNR floor, subject weight and seed (without the checkpoint folder),
// validated.
func (p *pretrainParams) generatorOptions(seed uint64) (tiny.PretrainOptions, error) {
	o := tiny.DefaultPretrainOptions()
	o.Steps, o.BatchSize, o.LearningRate, o.WarmupSteps = p.GeneratorSteps, p.GeneratorBatch, p.GeneratorLR, p.GeneratorWarmup
	o.SNRFloor, o.SubjectWeight, o.Seed = p.GeneratorSNRFloor, p.GeneratorSubjectWeight, seed
	o.CheckpointEvery = p.CheckpointEvery
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("generator: %w", err)
	}
	return o, nil
}

// GeneratorEval is the held-out evaluation of the tiny generator: the ε-prediction MSE on
// held-out latents at uniform timesteps, with each latent's caption and with the empty caption.
type GeneratorEval struct {
	Samples       int     `json:"samples"`
	EpsMSECaption float64 `json:"eps_mse_caption"`
	EpsMSEEmpty   float64 `json:"eps_mse_empty"`
	// CaptionGain is EpsMSEEmpty − EpsMSECaption: how much the caption helps the denoiser.
	CaptionGain float64 `json:"caption_gain"`
	// ConceptSwap[c][d] is how much the ε-MSE of held-out latents whose caption names concept
	// word c ("boy") rises, on average, when that word is replaced by d ("girl"): how much the
	// denoiser draws on what tells c from d. ConceptSamples[c] counts those latents, ConceptGain
	// averages the rise over all of them and all d ≠ c. Absent with fewer than two concept words.
	ConceptSwap    map[string]map[string]float64 `json:"concept_swap,omitempty"`
	ConceptSamples map[string]int                `json:"concept_samples,omitempty"`
	ConceptGain    float64                       `json:"concept_gain,omitempty"`
}

// heldLatent is a held-out latent with its first caption, for the generator's evaluation.
type heldLatent struct {
	latent []float32
	captionTokens
}

// captionTokens is one caption's token ids (BOS … EOS, unpadded) with its concept word and the
// token index of that word as the encode stage found it (-1 when it found none); conceptToken
// says whether the two agree.
type captionTokens struct {
	caption    []int32
	concept    string
	conceptPos int
}

// skippedLatents counts the latent rows generatorData leaves out: images without a caption,
// and images without a latent (their mask row had an error).
type skippedLatents struct{ withoutCaption, withoutLatent int }

// generatorData joins latents with their usable captions: the training set (images outside the
// held-out split, with their latent-resolution subject masks when masks is set) and the
// held-out latents. Errors name the dataset, row and image.
func generatorData(in *pretrainInputs, p *pretrainParams, latents *pipeline.Dataset, tokens *pipeline.Dataset, cfg tiny.Config, masks bool) (tiny.Data, []heldLatent, skippedLatents, error) {
	tok, err := tiny.Tokenizer()
	if err != nil {
		return tiny.Data{}, nil, skippedLatents{}, err
	}
	captions, err := generatorCaptions(in, tokens, tok, cfg)
	if err != nil {
		return tiny.Data{}, nil, skippedLatents{}, err
	}
	var data tiny.Data
	var held []heldLatent
	var skipped skippedLatents
	err = eachRow(latents, func(where string, r LatentRow) error {
		where = fmt.Sprintf("%s (image %s)", where, r.ID)
		if _, ok := in.split[r.ID]; !ok {
			return fmt.Errorf("%s: no such image in %s (inputs from different preps?)", where, in.images.Dir)
		}
		if r.Error != "" { // no subject mask, hence no latent
			skipped.withoutLatent++
			return nil
		}
		if !equalInts(r.Shape, cfg.LatentShape) || len(r.Latent) != cfg.LatentSize() {
			return fmt.Errorf("%s: latent of shape %v with %d values, the generator wants shape %v (%d values): encode with the tiny family",
				where, r.Shape, len(r.Latent), cfg.LatentShape, cfg.LatentSize())
		}
		caps := captions[r.ID]
		switch {
		case len(caps) == 0:
			skipped.withoutCaption++
		case in.held(p, r.ID):
			held = append(held, heldLatent{latent: r.Latent, captionTokens: caps[0]})
		default:
			if masks {
				h, w := cfg.LatentShape[0], cfg.LatentShape[1]
				if len(r.MaskShape) != 2 || int(r.MaskShape[0]) != h || int(r.MaskShape[1]) != w || len(r.Mask) != h*w {
					return fmt.Errorf("%s: mask of shape %v with %d values, generator_subject_weight wants one value per latent cell (%d x %d)",
						where, r.MaskShape, len(r.Mask), h, w)
				}
				data.Masks = append(data.Masks, r.Mask)
			}
			ids := make([][]int32, len(caps))
			for k, c := range caps {
				ids[k] = c.caption
			}
			data.Latents = append(data.Latents, r.Latent)
			data.Captions = append(data.Captions, ids)
		}
		return nil
	})
	if err != nil {
		return tiny.Data{}, nil, skippedLatents{}, err
	}
	if len(data.Latents) == 0 {
		return tiny.Data{}, nil, skippedLatents{}, fmt.Errorf("%s: no captioned latent outside split %q to train on", latents.Dir, p.EvalSplit)
	}
	return data, held, skipped, nil
}

// generatorCaptions returns the usable token ids of each image's captions, in caption order;
// token rows with an error are left out.
func generatorCaptions(in *pretrainInputs, tokens *pipeline.Dataset, tok *text.WordTokenizer, cfg tiny.Config) (map[string][]captionTokens, error) {
	out := map[string][]captionTokens{}
	err := eachRow(tokens, func(where string, r TokenRow) error {
		if r.Error != "" {
			return nil
		}
		where = fmt.Sprintf("%s (image %s, caption %d)", where, r.ID, r.K)
		if _, ok := in.split[r.ID]; !ok {
			return fmt.Errorf("%s: no such image in %s (inputs from different preps?)", where, in.images.Dir)
		}
		ids := r.IDs
		if len(ids) < 2 || ids[0] != tok.BOS() || ids[len(ids)-1] != tok.EOS() || len(ids) > cfg.MaxLength {
			return fmt.Errorf("%s: token ids %v: want BOS (%d) … EOS (%d), at most %d of them", where, ids, tok.BOS(), tok.EOS(), cfg.MaxLength)
		}
		for _, id := range ids {
			if id < 0 || int(id) >= cfg.VocabSize {
				return fmt.Errorf("%s: token id %d outside the vocabulary [0, %d): tokenize with the tiny family", where, id, cfg.VocabSize)
			}
		}
		out[r.ID] = append(out[r.ID], captionTokens{caption: ids, concept: r.Concept, conceptPos: int(r.ConceptPos)})
		return nil
	})
	return out, err
}

func pretrainGeneratorModel(ctx context.Context, job *pipeline.Job, p *pretrainParams, in *pretrainInputs) (PretrainedModelRow, []PretrainLogRow, error) {
	cfg, err := p.generatorConfig()
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	opt, err := p.generatorOptions(job.Seed)
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	settings := map[string]any{"config": cfg, "steps": opt.Steps, "batch": opt.BatchSize, "lr": opt.LearningRate, "warmup": opt.WarmupSteps,
		"snr_floor": opt.SNRFloor}
	if opt.WeighsSubject() { // absent when uniform, so that earlier runs keep their fingerprints
		settings["subject_weight"] = opt.SubjectWeight
	}
	if p.GeneratorInit != "" {
		var sum [sha256.Size]byte
		if opt.InitFrom, sum, err = tiny.LoadSum(p.GeneratorInit); err != nil {
			return PretrainedModelRow{}, nil, fmt.Errorf("generator_init: %w", err)
		}
		for _, s := range p.GeneratorInitScopes {
			opt.InitScopes = append(opt.InitScopes, "/"+s)
		}
		settings["init"] = map[string]any{"checkpoint_sha256": hex.EncodeToString(sum[:]), "scopes": p.GeneratorInitScopes}
	}
	data, held, skipped, err := generatorData(in, p, job.Input("latents"), job.Input("tokens"), cfg, opt.WeighsSubject())
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	job.Record("generator_data", map[string]int{"train": len(data.Latents), "held_out": len(held),
		"without_caption": skipped.withoutCaption, "without_latent": skipped.withoutLatent})
	return pretrainModel(job, p, modelSpec[*tiny.Generator]{
		name: pretrainGenerator, metric: "eps_mse", steps: opt.Steps, settings: settings, ports: []string{"images", "latents", "tokens"},
		load: tiny.Load, config: func(g *tiny.Generator) any { return g.Config() },
		train: func(dir string, report stepReport) (*tiny.Generator, func(string) error, error) {
			job.Log.Info("pretraining the generator", "latents", len(data.Latents), "steps", opt.Steps, "batch", opt.BatchSize)
			opt.CheckpointDir = dir
			g, err := tiny.Pretrain(ctx, cfg, data, opt, func(step int, out []float64, el time.Duration) { report(step, out[0], out[2], el) })
			if err != nil {
				return nil, nil, err
			}
			return g, g.Save, nil
		},
		evaluate: func(g *tiny.Generator) (any, error) {
			n := min(p.GeneratorEvalSamples, len(held))
			if n == 0 {
				return nil, nil
			}
			ev, err := evaluateGenerator(g, evenlySpaced(held, n), job.Seed)
			if err != nil {
				return nil, err
			}
			job.Log.Info("generator held-out ε-MSE", "caption", ev.EpsMSECaption, "empty", ev.EpsMSEEmpty, "concept_gain", ev.ConceptGain, "samples", ev.Samples)
			return ev, nil
		},
	})
}

// evenlySpaced returns n items of xs (n <= len(xs)) evenly spaced over it.
func evenlySpaced[T any](xs []T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = xs[i*len(xs)/n]
	}
	return out
}

// genEvalBatch is the batch size of the generator's evaluation graph.
const genEvalBatch = 32

// evaluateGenerator measures g's ε-prediction MSE on held-out latents: each latent gets a
// timestep drawn uniformly and a noise from (seed, its index), and is denoised with its caption,
// with the empty caption (BOS EOS), and with its caption's concept word replaced by each other
// concept word of the held-out captions (conceptSwaps). The same x_t, t and ε go with every
// caption, so the differences between them are paired.
func evaluateGenerator(g *tiny.Generator, held []heldLatent, seed uint64) (GeneratorEval, error) {
	cfg := g.Config()
	sched, err := diffusion.NewSchedule(cfg.Schedule, cfg.TrainSteps)
	if err != nil {
		return GeneratorEval{}, err
	}
	tok, err := tiny.Tokenizer()
	if err != nil {
		return GeneratorEval{}, err
	}
	backend, err := engine.Backend()
	if err != nil {
		return GeneratorEval{}, err
	}
	exec, err := mlctx.NewExec(backend, g.Context().Reuse(), func(ctx *mlctx.Context, xt, t, ids, eos, eps *Node) *Node {
		pred := g.Denoise(ctx, xt, t, g.Encode(ctx, g.Embed(ctx, ids), eos))
		return ReduceMean(Square(Sub(pred, eps)), 1, 2, 3) // [B]
	})
	if err != nil {
		return GeneratorEval{}, fmt.Errorf("build the evaluation graph: %w", err)
	}
	defer exec.Finalize()
	named, concepts, conceptIDs := heldConcepts(held, tok)
	// captions(i) lists latent i's captions: its own, the empty one, then one per concept word.
	empty := []int32{tok.BOS(), tok.EOS()}
	captions := func(i int) [][]int32 {
		h := held[i]
		out := [][]int32{h.caption, empty}
		for _, id := range conceptIDs {
			c := h.caption
			if named[i] {
				c = slices.Clone(h.caption)
				c[h.conceptPos] = id
			}
			out = append(out, c)
		}
		return out
	}
	L, n, shape := cfg.MaxLength, cfg.LatentSize(), cfg.LatentShape
	mse := make([][]float64, 2+len(concepts)) // [caption variant][latent]
	for k := range mse {
		mse[k] = make([]float64, len(held))
	}
	for start := 0; start < len(held); start += genEvalBatch {
		xt, eps := make([]float32, genEvalBatch*n), make([]float32, genEvalBatch*n)
		ts := make([]int32, genEvalBatch)
		ids := make([][]int32, len(mse))
		eos := make([][]int32, len(mse))
		for b := range genEvalBatch {
			i := min(start+b, len(held)-1) // the last batch is padded with the last latent
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			t := r.IntN(sched.T())
			ts[b] = int32(t)
			abar := sched.AlphaBar(t)
			sa, sb := math.Sqrt(abar), math.Sqrt(1-abar)
			for j, x0 := range held[i].latent {
				z := r.NormFloat64()
				eps[b*n+j] = float32(z)
				xt[b*n+j] = float32(sa*float64(x0) + sb*z)
			}
			for k, c := range captions(i) {
				fitted, e, _ := text.Fit(c, L, tok.EOS(), tok.Pad())
				ids[k] = append(ids[k], fitted...)
				eos[k] = append(eos[k], int32(e))
			}
		}
		for k := range mse {
			out, err := exec.Exec(tensors.FromFlatDataAndDimensions(xt, genEvalBatch, shape[0], shape[1], shape[2]), ts,
				tensors.FromFlatDataAndDimensions(ids[k], genEvalBatch, L), eos[k],
				tensors.FromFlatDataAndDimensions(eps, genEvalBatch, shape[0], shape[1], shape[2]))
			if err != nil {
				return GeneratorEval{}, err
			}
			v, err := tensors.CopyFlatData[float32](out[0])
			out[0].FinalizeAll()
			if err != nil {
				return GeneratorEval{}, err
			}
			for b := range min(genEvalBatch, len(held)-start) {
				mse[k][start+b] = float64(v[b])
			}
		}
	}
	ev := GeneratorEval{Samples: len(held), EpsMSECaption: mean(mse[0]), EpsMSEEmpty: mean(mse[1])}
	ev.CaptionGain = ev.EpsMSEEmpty - ev.EpsMSECaption
	ev.conceptSwaps(held, named, concepts, mse)
	return ev, nil
}

// conceptToken returns the token id of h's concept word, and whether the caption holds that
// word, as one token, at h.conceptPos (only then can it be swapped for another).
func (h heldLatent) conceptToken(tok *text.WordTokenizer) (int32, bool) {
	id, ok := tok.ID(h.concept)
	return id, ok && h.conceptPos >= 0 && h.conceptPos < len(h.caption) && h.caption[h.conceptPos] == id
}

// heldConcepts returns which held-out captions name a concept word that can be swapped, and
// those words, sorted, with their token ids.
func heldConcepts(held []heldLatent, tok *text.WordTokenizer) (named []bool, words []string, ids []int32) {
	byWord := map[string]int32{}
	named = make([]bool, len(held))
	for i, h := range held {
		if id, ok := h.conceptToken(tok); ok {
			named[i], byWord[h.concept] = true, id
		}
	}
	words = slices.Sorted(maps.Keys(byWord))
	for _, w := range words {
		ids = append(ids, byWord[w])
	}
	return named, words, ids
}

// conceptSwaps fills ConceptSwap, ConceptSamples and ConceptGain from the ε-MSE of every
// latent under every caption variant (mse[0]: its caption; mse[2+k]: concept word concepts[k]).
func (ev *GeneratorEval) conceptSwaps(held []heldLatent, named []bool, concepts []string, mse [][]float64) {
	if len(concepts) < 2 {
		return
	}
	ev.ConceptSwap, ev.ConceptSamples = map[string]map[string]float64{}, map[string]int{}
	var gain float64
	var count int
	for i, h := range held {
		if !named[i] {
			continue
		}
		row := ev.ConceptSwap[h.concept]
		if row == nil {
			row = map[string]float64{}
			ev.ConceptSwap[h.concept] = row
		}
		ev.ConceptSamples[h.concept]++
		var sum float64
		for k, d := range concepts {
			if d != h.concept {
				row[d] += mse[2+k][i] - mse[0][i]
				sum += mse[2+k][i] - mse[0][i]
			}
		}
		gain += sum / float64(len(concepts)-1)
		count++
	}
	for c, row := range ev.ConceptSwap {
		for d := range row {
			row[d] /= float64(ev.ConceptSamples[c])
		}
	}
	ev.ConceptGain = gain / float64(count)
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
