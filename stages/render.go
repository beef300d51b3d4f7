package stages

// The generator that the generate and evaluate stages share: a family's frozen generator, the
// trained mapper when the stage has one, and one Sampler for the whole stage.

import (
	"fmt"
	"image"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/datasets/prompts"
	"github.com/cocoflow/cocoflow/models/cocoins"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/pipeline"
)

// genItem is one image to generate.
type genItem struct {
	Prompt string
	Codes  []int64 // empty: no pseudo-word
	Seed   uint64
}

// generator renders genItems with a family's generator and, when given, a trained mapper. Its
// one Sampler serves every shard of the stage, so the sampling graphs compile once.
type generator struct {
	g        family.Generator
	tok      text.Tokenizer
	mapper   *cocoins.Mapper
	concepts []string
	sampler  *family.Sampler
	// mu serialises render: the stages run shards concurrently, but the mapper and the sampler
	// build their graphs on the generator's one GoMLX context, which is not safe for concurrent
	// use (a shard-parallel run crashed with a concurrent map read and write), and a Sampler is
	// not either. The backend parallelises each execution itself, so little is lost.
	mu sync.Mutex
}

// newGenerator loads the generator and, when the job has a mapper input, the trained mapper,
// and prepares sampling with opt (the stage's steps, guidance, η and batch, as given). Call
// close when done.
func newGenerator(job *pipeline.Job, fam, modelDir string, concepts []string, opt family.SampleOptions) (*generator, error) {
	spec, err := family.Lookup(fam)
	if err != nil {
		return nil, err
	}
	g, err := spec.Generator(modelDir)
	if err != nil {
		return nil, err
	}
	gen := &generator{g: g, tok: g.Tokenizer(), concepts: concepts}
	if ds := job.Input("mapper"); ds != nil {
		// The mapper gets a context of its own: g.Context() would load the generator's
		// graph weights (GBs for SDXL), which sampling through a host runner never uses.
		gen.mapper, err = loadMapper(ds, mlctx.New())
		if err != nil {
			return nil, err
		}
	}
	if gen.sampler, err = family.NewSampler(g, opt); err != nil {
		return nil, err
	}
	return gen, nil
}

// close releases the sampler's compiled graphs.
func (gen *generator) close() {
	gen.mu.Lock()
	defer gen.mu.Unlock()
	gen.sampler.Close()
}

// loadMapper reads a train stage's mapper dataset into ctx.
func loadMapper(ds *pipeline.Dataset, ctx *mlctx.Context) (*cocoins.Mapper, error) {
	rows, err := pipeline.ReadAll[MapperRow](ds)
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("%s: want one mapper row, found %d", ds.Dir, len(rows))
	}
	return cocoins.LoadMapper(ctx, []byte(rows[0].Config), rows[0].Weights, ds.Dir)
}

// conceptPositions returns the token positions of the first n concept words of the prompt
// encoded as enc, in order of appearance, and those words.
func (gen *generator) conceptPositions(prompt string, enc text.Encoding, n int) ([]int, []string, error) {
	var pos []int
	var words []string
	for t, w := range enc.WordOf {
		if w < 0 || (t > 0 && enc.WordOf[t-1] == w) {
			continue // BOS/EOS, or not the first token of its word
		}
		if slices.Contains(gen.concepts, enc.Words[w]) {
			pos = append(pos, t)
			words = append(words, enc.Words[w])
			if len(pos) == n {
				return pos, words, nil
			}
		}
	}
	return nil, nil, fmt.Errorf("prompt %q has %d of the %d concept words its codes need (concepts: %s)", prompt, len(pos), n, strings.Join(gen.concepts, ", "))
}

// render generates the images of items, in order, and returns with them the concept words each
// item's codes were inserted before (nil for an item without codes). The codes of all items go
// through the mapper in one call.
func (gen *generator) render(items []genItem) ([]image.Image, [][]string, error) {
	gen.mu.Lock()
	defer gen.mu.Unlock()
	return gen.renderLocked(items)
}

// renderLocked is render for a caller that holds gen.mu.
func (gen *generator) renderLocked(items []genItem) ([]image.Image, [][]string, error) {
	reqs := make([]family.SampleRequest, len(items))
	concepts := make([][]string, len(items))
	positions := make([][]int, len(items))
	var z [][]float32
	for i, it := range items {
		enc := gen.tok.Encode(it.Prompt)
		if len(enc.IDs) > gen.tok.MaxLength() {
			return nil, nil, fmt.Errorf("prompt %q has %d tokens, the text encoder takes %d", it.Prompt, len(enc.IDs), gen.tok.MaxLength())
		}
		reqs[i] = family.SampleRequest{IDs: enc.IDs, Seed: it.Seed}
		if len(it.Codes) == 0 {
			continue
		}
		pos, words, err := gen.conceptPositions(it.Prompt, enc, len(it.Codes))
		if err != nil {
			return nil, nil, err
		}
		positions[i], concepts[i] = pos, words
		for _, c := range it.Codes {
			z = append(z, cocoins.Code(uint64(c), gen.mapper.Config.CodeDim))
		}
	}
	pseudo, err := gen.mapper.Map(z) // nil when no item has codes
	if err != nil {
		return nil, nil, err
	}
	for i, pos := range positions {
		for k := range pos {
			reqs[i].Insertions = append(reqs[i].Insertions, family.Insertion{Position: pos[k], Words: pseudo[0]})
			pseudo = pseudo[1:]
		}
	}
	latents, err := gen.sampler.Sample(reqs)
	if err != nil {
		return nil, nil, err
	}
	shape := gen.g.Info().LatentShape
	imgs := make([]image.Image, len(latents))
	for i, l := range latents {
		img, err := gen.g.Autoencoder().Decode(l, shape)
		if err != nil {
			return nil, nil, err
		}
		imgs[i] = img
	}
	return imgs, concepts, nil
}

// loadPromptSet reads a named prompt set of datasets/prompts, or a TSV file in its format when
// name is a path.
func loadPromptSet(name string) ([]prompts.Prompt, error) {
	if strings.ContainsAny(name, "/.") {
		return prompts.ReadFile(name)
	}
	return prompts.Load(name)
}

// readShards reads back the n shards a stage has just written to out.
func readShards[T any](out *pipeline.Output, n int) ([]T, error) {
	var rows []T
	for i := range n {
		r, err := pipeline.ReadFile[T](filepath.Join(out.Dir, pipeline.ShardName(i)))
		if err != nil {
			return nil, err
		}
		rows = append(rows, r...)
	}
	return rows, nil
}
