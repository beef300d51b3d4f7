package stages

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/datasets/prompts"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/pipeline"
)

type evaluateParams struct {
	Table      string   `param:"table" default:"table1" doc:"label of the table these rows feed (table1 Portraits, table2 Scenes, table3-5 ablations)"`
	Methods    []string `param:"methods" default:"dataset,no_code,cocoins" doc:"rows to evaluate: dataset (real images grouped by true identity), no_code (the plain generator), cocoins (subject codes through the mapper), or a baseline of stages/baselines.go (storydiffusion, consistory; cocoins_later and storydiffusion_later for the later-run comparison)"`
	Name       string   `param:"name" default:"cocoins" doc:"row name of the cocoins method (an ablation's name in tables 3-5)"`
	PromptSet  string   `param:"prompt_set" default:"tiny-portraits" doc:"prompt set: a datasets/prompts name or a TSV file"`
	Subjects   []string `param:"subjects" doc:"subjects evaluated (empty: every subject of the set)"`
	Identities int      `param:"identities_per_subject" default:"6" min:"2" doc:"identities (subject codes) per subject"`
	Samples    int      `param:"samples_per_identity" default:"4" min:"2" doc:"images per identity: other seeds, and other prompts of the subject when the set has several"`
	CodeBase   int      `param:"code_base" default:"100000" min:"0" doc:"code seeds are code_base + 16*(subject*identities + identity) + concept"`

	Family   string  `param:"family" default:"tiny" doc:"model family of the generator"`
	ModelDir string  `param:"model_dir" doc:"the family's model folder (\"\" for its built-in default)"`
	Steps    int     `param:"steps" default:"10" min:"1" doc:"DDIM steps"`
	Guidance float64 `param:"guidance" default:"4" min:"0" doc:"classifier-free guidance scale (0: unconditional, the prompt has no effect; 1: conditional only)"`

	FaceModel  string   `param:"face_model" doc:"identity encoder folder, ArcFace's role (\"\": the committed tiny one)"`
	CLIPModel  string   `param:"clip_model" doc:"CLIP folder (\"\": the committed tiny one)"`
	Metrics    []string `param:"metrics" default:"face_sim,face_div,clip_t" doc:"measures reported: face_sim, face_div, clip_t, dreamsim (the paper adds dreamsim for Scenes)"`
	ClassTable string   `param:"class_table" doc:"when set, also report prompt fidelity as CLIP's class retrieval accuracy among the evaluated subjects (metric class_acc) under this table label"`
	CostTable  string   `param:"cost_table" doc:"when set, also report each generated method's cost under this table label: sec_per_image (measured in this run), batch (images generated together), needs_refs, needs_tuning"`
	Bootstrap  int      `param:"bootstrap" default:"1000" min:"0" doc:"bootstrap resamples of identities for 95% intervals (0: none)"`

	Batch     int `param:"batch" default:"24" min:"1" fingerprint:"-" doc:"images per sampler batch"`
	ShardSize int `param:"shard_size" default:"48" min:"1" doc:"images per shard of the images output"`
}

func init() {
	pipeline.Register(pipeline.Spec[evaluateParams]{
		Name:    "evaluate",
		Version: "2", // 2: guidance 0 samples unconditionally (it sampled with guidance 4)
		Doc: "The paper's evaluation protocol (§4.2): identities = subject codes, each generated " +
			"samples_per_identity times (other seeds; other prompts of its subject for free-form sets); " +
			"the same protocol on real images grouped by true identity (dataset row) and on the plain " +
			"generator (no_code row, grouped by prompt and identity slot). Scores Face Sim, Face Div, " +
			"CLIP-T and a DreamSim-style subject similarity, with bootstrap 95% intervals over identities. " +
			"The paper's baselines are further methods (stages/baselines.go).",
		Inputs: []pipeline.Port{
			{Name: "mapper", Doc: "train.mapper (for the cocoins row)", Optional: true},
			{Name: "real", Doc: "ingest output (for the dataset row)", Optional: true},
		},
		Outputs: []pipeline.Port{
			{Name: "images", Doc: "every evaluated image", Schema: EvalImageRow{}},
			{Name: "scores", Doc: "per-image embeddings and CLIP-T", Schema: EvalScoreRow{}},
			{Name: "metrics", Doc: "one row per method and metric", Schema: MetricRow{}},
		},
		Models: (*evaluateParams).models,
		Check: func(p *evaluateParams) error {
			for _, m := range p.Methods {
				if _, ok := baselineMethods[m]; !ok && m != "dataset" && m != "no_code" && m != "cocoins" {
					return fmt.Errorf("methods: unknown method %q (%s)", m, knownMethods())
				}
			}
			if len(p.Methods) == 0 {
				return fmt.Errorf("methods: none given")
			}
			for _, m := range p.Metrics {
				if !slices.Contains([]string{"face_sim", "face_div", "clip_t", "dreamsim"}, m) {
					return fmt.Errorf("metrics: unknown measure %q (face_sim, face_div, clip_t, dreamsim)", m)
				}
			}
			if err := checkBaselines(p); err != nil {
				return err
			}
			_, err := loadPromptSet(p.PromptSet)
			return err
		},
		Run: runEvaluate,
	})
}

// evalItem is one image of the protocol, before it exists.
type evalItem struct {
	EvalImageRow
	real []byte // dataset images: the encoded image to re-encode as PNG
}

func runEvaluate(ctx context.Context, job *pipeline.Job, p *evaluateParams) error {
	set, err := loadPromptSet(p.PromptSet)
	if err != nil {
		return err
	}
	bySubject, subjects := promptsBySubject(set, p.Subjects)
	if len(subjects) == 0 {
		return fmt.Errorf("prompt set %s has none of the subjects %v", p.PromptSet, p.Subjects)
	}

	var items []evalItem
	for _, method := range p.Methods {
		switch method {
		case "dataset":
			real := job.Input("real")
			if real == nil {
				return fmt.Errorf("the dataset row needs real images: connect the real input to an ingest output")
			}
			its, err := datasetItems(real, p, bySubject, subjects)
			if err != nil {
				return err
			}
			items = append(items, its...)
		case "no_code", "cocoins":
			if method == "cocoins" && job.Input("mapper") == nil {
				return fmt.Errorf("the cocoins row needs a trained mapper: connect the mapper input to a train stage's mapper output")
			}
			items = append(items, generatedItems(method, p, bySubject, subjects)...)
		default:
			its, err := baselineItems(method, p, bySubject, subjects, job)
			if err != nil {
				return err
			}
			items = append(items, its...)
		}
	}
	for i := range items {
		items[i].ID = fmt.Sprintf("e-%06d", i)
		items[i].Table = p.Table
	}
	job.Log.Info("evaluation protocol", "prompt_set", p.PromptSet, "subjects", len(subjects), "images", len(items))

	// Images, shard by shard: a killed run keeps the shards it finished.
	var gen *generator
	var genErr error
	var once sync.Once // render itself runs one batch at a time
	methods := newMethodRenderer(job)
	defer methods.close()
	opt := family.SampleOptions{Steps: p.Steps, Guidance: p.Guidance, BatchSize: p.Batch}
	out := job.Output("images")
	shards := (len(items) + p.ShardSize - 1) / p.ShardSize
	err = pipeline.MapShards(ctx, job, out, shards, func(ctx context.Context, shard int) ([]EvalImageRow, error) {
		part := items[shard*p.ShardSize : min((shard+1)*p.ShardSize, len(items))]
		rows := make([]EvalImageRow, len(part))
		var todo []evalItem
		var at []int
		for k, it := range part {
			rows[k] = it.EvalImageRow
			if it.Method == "dataset" {
				img, err := imageio.Decode(it.real)
				if err != nil {
					return nil, fmt.Errorf("real image %s: %w", it.Group, err)
				}
				if rows[k].Image, err = imageio.PNG(img); err != nil {
					return nil, err
				}
				continue
			}
			todo = append(todo, it)
			at = append(at, k)
		}
		if len(todo) == 0 {
			return rows, nil
		}
		once.Do(func() {
			gen, genErr = newGenerator(job, p.Family, p.ModelDir, conceptWords(subjects), opt)
		})
		if genErr != nil {
			return nil, genErr
		}
		imgs, err := methods.render(gen, opt, todo)
		if err != nil {
			return nil, err
		}
		for n, k := range at {
			if rows[k].Image, err = imageio.PNG(imgs[n]); err != nil {
				return nil, err
			}
		}
		return rows, nil
	})
	if gen != nil {
		gen.close()
	}
	if err != nil {
		return err
	}
	rows, err := readShards[EvalImageRow](out, shards)
	if err != nil {
		return err
	}

	sc, err := newScorer(p)
	if err != nil {
		return err
	}
	var classes []string
	if p.ClassTable != "" {
		classes = subjects
	}
	scores, err := sc.score(rows, classes)
	if err != nil {
		return err
	}
	if err := pipeline.WriteRows(job, job.Output("scores"), scores, 500); err != nil {
		return err
	}
	table, err := aggregate(rows, scores, p, job.Seed)
	if err != nil {
		return err
	}
	table = append(append(table, laterRows(rows, scores, p, job.Seed)...), methods.costRows(p)...)
	for _, m := range table {
		job.Log.Info("metric", "table", m.Table, "method", m.Method, "metric", m.Metric, "value", fmt.Sprintf("%.3f", m.Value),
			"ci95", fmt.Sprintf("[%.3f, %.3f]", m.Lo, m.Hi))
		job.Record(m.Method+"."+m.Metric, m.Value)
	}
	return pipeline.WriteRows(job, job.Output("metrics"), table, 0)
}

// promptsBySubject groups a set's prompts by subject, keeping the set's order, restricted to
// want when it is not empty.
func promptsBySubject(set []prompts.Prompt, want []string) (map[string][]string, []string) {
	by := map[string][]string{}
	var order []string
	for _, pr := range set {
		if len(want) > 0 && !slices.Contains(want, pr.Subject) {
			continue
		}
		if _, ok := by[pr.Subject]; !ok {
			order = append(order, pr.Subject)
		}
		by[pr.Subject] = append(by[pr.Subject], pr.Text)
	}
	return by, order
}

// conceptWords are the concept words of subjects ("man+woman" gives man and woman).
func conceptWords(subjects []string) []string {
	var words []string
	for _, s := range subjects {
		for _, c := range (prompts.Prompt{Subject: s}).Concepts() {
			if !slices.Contains(words, c) {
				words = append(words, c)
			}
		}
	}
	return words
}

// generatedItems lays out the generation protocol: identity k of subject s is generated
// Samples times; sample j uses prompt (k·Samples + j) mod |prompts of s| and noise seed
// (s, k, j). The no_code and cocoins rows use the same prompts and seeds, so they differ only
// by the pseudo-words. For no_code a "group" is an identity slot: the same prompts and seeds
// without a code, which is what a user without CoCoIns would get.
func generatedItems(method string, p *evaluateParams, bySubject map[string][]string, subjects []string) []evalItem {
	name := method
	if method == "cocoins" {
		name = p.Name
	}
	var items []evalItem
	for si, s := range subjects {
		ps := bySubject[s]
		concepts := (prompts.Prompt{Subject: s}).Concepts()
		for k := range p.Identities {
			var codes []int64
			if method == "cocoins" {
				for c := range concepts {
					codes = append(codes, int64(p.CodeBase+16*(si*p.Identities+k)+c))
				}
			}
			for j := range p.Samples {
				items = append(items, evalItem{EvalImageRow: EvalImageRow{
					Method: name, Subject: s, Group: fmt.Sprintf("%s/%02d", s, k), Sample: int32(j),
					Prompt: ps[(k*p.Samples+j)%len(ps)], Codes: codes,
					Seed: int64(si*1_000_000 + k*1000 + j),
				}})
			}
		}
	}
	return items
}

// datasetItems picks, for every subject, the first Identities true identities of that class
// (held-out splits first, then by identity number) with at least Samples images, and their first Samples images; each is
// paired with a prompt of its subject for CLIP-T.
func datasetItems(real *pipeline.Dataset, p *evaluateParams, bySubject map[string][]string, subjects []string) ([]evalItem, error) {
	all, err := pipeline.ReadAll[ImageRow](real)
	if err != nil {
		return nil, err
	}
	byID := map[int64][]ImageRow{}
	for _, r := range all {
		if r.Identity >= 0 {
			byID[r.Identity] = append(byID[r.Identity], r)
		}
	}
	ids := make([]int64, 0, len(byID))
	for id := range byID {
		ids = append(ids, id)
	}
	// Held-out identities first: the metric models may have been trained on the train split.
	heldOut := func(id int64) bool { return byID[id][0].Split != "train" }
	slices.SortFunc(ids, func(a, b int64) int {
		if ha, hb := heldOut(a), heldOut(b); ha != hb {
			if ha {
				return -1
			}
			return 1
		}
		return int(a - b)
	})
	var items []evalItem
	for _, s := range subjects {
		if len((prompts.Prompt{Subject: s}).Concepts()) != 1 {
			return nil, fmt.Errorf("the dataset row needs single-subject prompts; %q has several", s)
		}
		ps := bySubject[s]
		k := 0
		for _, id := range ids {
			imgs := byID[id]
			if imgs[0].Class != s || len(imgs) < p.Samples {
				continue
			}
			sort.Slice(imgs, func(a, b int) bool { return imgs[a].ID < imgs[b].ID })
			for j := range p.Samples {
				items = append(items, evalItem{EvalImageRow: EvalImageRow{
					Method: "dataset", Subject: s, Group: fmt.Sprintf("%s/id%d", s, id), Sample: int32(j),
					Prompt: ps[(k*p.Samples+j)%len(ps)], Seed: -1,
				}, real: imgs[j].Image})
			}
			if k++; k == p.Identities {
				break
			}
		}
		if k < p.Identities {
			return nil, fmt.Errorf("%s: only %d identities of class %q have %d images, want %d", real.Dir, k, s, p.Samples, p.Identities)
		}
	}
	return items, nil
}

// models are the digests of the weights the stage loads: the generator unless only the
// dataset row is evaluated, and the two metric models always.
func (p *evaluateParams) models() (map[string]string, error) {
	m := map[string]string{}
	if slices.ContainsFunc(p.Methods, func(s string) bool { return s != "dataset" }) {
		g, err := family.Models(p.Family, p.ModelDir)
		if err != nil {
			return nil, err
		}
		maps.Copy(m, g)
	}
	var err error
	if m["face"], err = tinyface.WeightsDigest(p.FaceModel); err != nil {
		return nil, fmt.Errorf("identity encoder: %w", err)
	}
	if m["clip"], err = tinyclip.WeightsDigest(p.CLIPModel); err != nil {
		return nil, fmt.Errorf("CLIP: %w", err)
	}
	return m, nil
}
