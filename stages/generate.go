package stages

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/pipeline"
	"github.com/cocoflow/cocoflow/pipeline/chart"
)

type generateParams struct {
	Family         string   `param:"family" default:"tiny" doc:"model family of the generator"`
	ModelDir       string   `param:"model_dir" doc:"the family's model folder (\"\" for its built-in default)"`
	Prompts        []string `param:"prompts" doc:"prompts, inline"`
	PromptFile     string   `param:"prompt_file" doc:"a text file with one prompt per line (added to prompts)"`
	PromptSet      string   `param:"prompt_set" doc:"a prompt set (datasets/prompts name or TSV path); with set_limit, its first prompts per subject are added"`
	SetLimit       int      `param:"set_limit" default:"2" min:"1" doc:"prompts taken per subject from prompt_set"`
	Codes          []int    `param:"codes" doc:"subject code seeds z (needs the mapper input); empty: no pseudo-words"`
	CodesPerPrompt int      `param:"codes_per_prompt" default:"1" min:"1" max:"4" doc:"codes per generation, inserted before the 1st, 2nd... concept word (multi-subject)"`
	NoCode         bool     `param:"no_code" default:"false" doc:"also generate every prompt without a pseudo-word (the plain generator)"`
	Seeds          []int    `param:"seeds" default:"0,1,2,3" doc:"noise seeds: each (prompt, codes) is generated once per seed"`
	Steps          int      `param:"steps" default:"20" min:"1" doc:"DDIM steps"`
	Guidance       float64  `param:"guidance" default:"4" min:"0" doc:"classifier-free guidance scale (0: unconditional, the prompt has no effect; 1: conditional only)"`
	Eta            float64  `param:"eta" default:"0" min:"0" max:"1" doc:"DDIM η (0: deterministic sampling)"`
	Concepts       []string `param:"concepts" default:"man,woman,boy,girl,person,cat,dog" doc:"concept words codes attach to"`
	Batch          int      `param:"batch" default:"16" min:"1" fingerprint:"-" doc:"images per sampler batch"`
	ShardSize      int      `param:"shard_size" default:"64" min:"1" doc:"images per shard"`
	SheetBy        string   `param:"sheet_by" default:"codes" enum:"codes,prompts" doc:"contact sheet rows: one per code group, or one per code group and prompt"`
	Method         string   `param:"method" doc:"a batch method of stages/baselines.go (storydiffusion, consistory): the prompts of one seed are generated together as one identity's story, a sheet row per seed (\"\": every image alone)"`
}

func init() {
	pipeline.Register(pipeline.Spec[generateParams]{
		Name:    "generate",
		Version: "2", // 2: guidance 0 samples unconditionally (it sampled with guidance 4)
		Doc: "Generates images for prompts x subject codes x seeds with DDIM and classifier-free " +
			"guidance, deterministically for a seed. A code z (from its integer seed) goes through the " +
			"trained mapper to a pseudo-word inserted before a concept word; several codes per prompt " +
			"instantiate several subjects. Writes image shards and a contact sheet (rows = codes, " +
			"columns = prompts x seeds).",
		Inputs:  []pipeline.Port{{Name: "mapper", Doc: "train.mapper (needed when codes are given)", Optional: true}},
		Outputs: []pipeline.Port{{Name: "images", Doc: "one row per image", Schema: GeneratedRow{}}},
		Sharded: true,
		Models:  func(p *generateParams) (map[string]string, error) { return family.Models(p.Family, p.ModelDir) },
		Check: func(p *generateParams) error {
			if len(p.Prompts) == 0 && p.PromptFile == "" && p.PromptSet == "" {
				return fmt.Errorf("no prompts: give prompts, prompt_file or prompt_set")
			}
			if err := checkGenerateMethod(p); err != nil {
				return err
			}
			if len(p.Codes)%p.CodesPerPrompt != 0 {
				return fmt.Errorf("%d codes cannot be grouped %d per prompt", len(p.Codes), p.CodesPerPrompt)
			}
			return checkFamily(p.Family, p.ModelDir)
		},
		Run: runGenerate,
	})
}

func runGenerate(ctx context.Context, job *pipeline.Job, p *generateParams) error {
	prompts := slices.Clone(p.Prompts)
	if p.PromptFile != "" {
		data, err := os.ReadFile(p.PromptFile)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(data), "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				prompts = append(prompts, l)
			}
		}
	}
	if p.PromptSet != "" {
		set, err := loadPromptSet(p.PromptSet)
		if err != nil {
			return err
		}
		taken := map[string]int{}
		for _, pr := range set {
			if taken[pr.Subject] < p.SetLimit && !slices.Contains(prompts, pr.Text) {
				taken[pr.Subject]++
				prompts = append(prompts, pr.Text)
			}
		}
	}
	if p.Method != "" {
		return generateWithMethod(ctx, job, p, prompts)
	}
	var groups [][]int64
	if p.NoCode || len(p.Codes) == 0 {
		groups = append(groups, nil)
	}
	for i := 0; i < len(p.Codes); i += p.CodesPerPrompt {
		var g []int64
		for _, c := range p.Codes[i : i+p.CodesPerPrompt] {
			g = append(g, int64(c))
		}
		groups = append(groups, g)
	}
	var items []genItem
	for _, codes := range groups {
		for _, pr := range prompts {
			for _, s := range p.Seeds {
				items = append(items, genItem{Prompt: pr, Codes: codes, Seed: uint64(s)})
			}
		}
	}
	gen, err := newGenerator(job, p.Family, p.ModelDir, p.Concepts, family.SampleOptions{Steps: p.Steps, Guidance: p.Guidance, Eta: p.Eta, BatchSize: p.Batch})
	if err != nil {
		return err
	}
	defer gen.close()
	if len(p.Codes) > 0 && gen.mapper == nil {
		return fmt.Errorf("codes need a trained mapper: connect the mapper input to a train stage's mapper output")
	}
	out := job.Output("images")
	shards := (len(items) + p.ShardSize - 1) / p.ShardSize
	err = pipeline.MapShards(ctx, job, out, shards, func(ctx context.Context, shard int) ([]GeneratedRow, error) {
		lo, hi := shard*p.ShardSize, min((shard+1)*p.ShardSize, len(items))
		imgs, concepts, err := gen.render(items[lo:hi])
		if err != nil {
			return nil, err
		}
		rows := make([]GeneratedRow, hi-lo)
		for k, it := range items[lo:hi] {
			png, err := imageio.PNG(imgs[k])
			if err != nil {
				return nil, err
			}
			b := imgs[k].Bounds()
			rows[k] = GeneratedRow{
				ID: fmt.Sprintf("g-%06d", lo+k), Prompt: it.Prompt, Codes: it.Codes, Concepts: concepts[k],
				Seed: int64(it.Seed), Steps: int32(p.Steps), Guidance: float32(p.Guidance),
				Width: int32(b.Dx()), Height: int32(b.Dy()), Image: png,
			}
		}
		return rows, nil
	})
	if err != nil {
		return err
	}
	if p.SheetBy == "prompts" {
		return writeGenerateSheet(job, out, shards, len(p.Seeds), true)
	}
	return writeGenerateSheet(job, out, shards, len(prompts)*len(p.Seeds), false)
}

// writeGenerateSheet lays the generated images out as a contact sheet: one row per code group
// (columns = prompts x seeds), or with byPrompt one row per code group and prompt (columns =
// seeds).
func writeGenerateSheet(job *pipeline.Job, out *pipeline.Output, shards, perRow int, byPrompt bool) error {
	if _, err := os.Stat(filepath.Join(out.Dir, pipeline.ShardName(0))); err != nil {
		return nil // a slice without shard 0 leaves the sheet to another worker
	}
	rows, err := readShards[GeneratedRow](out, shards)
	if err != nil {
		return err
	}
	title := "generate: rows = subject codes, columns = prompts x seeds"
	if byPrompt {
		title = "generate: rows = prompts (and codes), columns = seeds"
	}
	sheet := chart.Sheet{Title: title, Scale: 3, WrapAt: 14}
	for i := 0; i < len(rows); i += perRow {
		var cells []chart.Cell
		for _, r := range rows[i:min(i+perRow, len(rows))] {
			img, err := imageio.Decode(r.Image)
			if err != nil {
				return fmt.Errorf("%s: %w", r.ID, err)
			}
			caption := fmt.Sprintf("%s s%d", r.Prompt, r.Seed)
			if byPrompt {
				caption = fmt.Sprintf("seed %d", r.Seed)
			}
			cells = append(cells, chart.Cell{Image: img, Caption: caption})
		}
		label := "no code"
		if len(rows[i].Codes) > 0 {
			label = fmt.Sprintf("code %v", rows[i].Codes)
		}
		if byPrompt {
			label = rows[i].Prompt + " (" + label + ")"
		}
		sheet.RowLabels = append(sheet.RowLabels, label)
		sheet.Rows = append(sheet.Rows, cells)
	}
	data, err := imageio.PNG(sheet.Draw())
	if err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(filepath.Join(job.Dir, "contact_sheet.png"), data)
}
