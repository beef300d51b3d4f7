package stages

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/datasets/prompts"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/pipeline"
)

type evaluateParams struct {
	Table      string   `param:"table" default:"table1" doc:"label of the table these rows feed (table1 Portraits, table2 Scenes, table3-5 ablations)"`
	Methods    []string `param:"methods" default:"dataset,no_code,cocoins" doc:"rows to evaluate: dataset (real images grouped by true identity), no_code (the plain generator), cocoins (subject codes through the mapper), or a baseline of stages/baselines.go (storydiffusion, consistory, 1prompt1story, 1prompt1story_own_noise, dreambooth (needs the real input); cocoins_later and storydiffusion_later for the later-run comparison)"`
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

	FaceJudge            map[string]string `param:"face_judge" doc:"identity judge, ArcFace's role, as {kind: K, path: MODEL, OPTION: VALUE...}: kind tinyface (the default; path \"\": the committed one) or a paper judge, e.g. {kind: insightface, path: .../buffalo_l, detector: scrfd}"`
	CLIPJudge            map[string]string `param:"clip_judge" doc:"image-text judge for CLIP-T (raw cosine) and class_acc, as face_judge: kind tinyclip (the default) or e.g. {kind: clip-onnx, path: .../clip-vit-l-14}"`
	DreamSimJudge        map[string]string `param:"dreamsim_judge" doc:"image-similarity judge for the dreamsim measure (cosine = 1 - its distance), as face_judge: kind tinyclip-subject (the default: the tiny CLIP on the subject region) or e.g. {kind: dreamsim-onnx, path: .../dreamsim}"`
	FaceModel            string            `param:"face_model" doc:"folder of the tinyface judge when face_judge gives no path (\"\": the committed one)"`
	CLIPModel            string            `param:"clip_model" doc:"folder of the tiny CLIP, for clip_judge and dreamsim_judge of the tiny kinds when they give no path (\"\": the committed one)"`
	External             map[string]string `param:"external" doc:"images of other systems, scored as rows of the table (after methods, by name): NAME: PATH, where PATH is a Parquet dataset (schema ExternalImageRow: id, method, prompt, subject, identity, image) or a folder PATH/NAME/IDENTITY/NNN.png with PATH/prompts.tsv (columns method, identity, image, subject, prompt); NAME selects that method's images and names the row"`
	Metrics              []string          `param:"metrics" default:"face_sim,face_div,clip_t" doc:"measures reported: face_sim, face_div (with a no_face count), clip_t, dreamsim (the paper adds dreamsim for Scenes)"`
	ClassTable           string            `param:"class_table" doc:"when set, also report prompt fidelity as CLIP's class retrieval accuracy among the evaluated subjects (metric class_acc) under this table label"`
	Bootstrap            int               `param:"bootstrap" default:"1000" min:"0" doc:"bootstrap resamples of identities for 95% intervals (0: none)"`
	DreamBoothIdentities int               `param:"dreambooth_identities" default:"2" min:"1" doc:"identities per subject of the dreambooth row (one fine-tune each; at most identities_per_subject)"`
	DreamBoothSteps      int               `param:"dreambooth_steps" default:"150" min:"1" doc:"fine-tuning steps per dreambooth identity (models/baselines.DefaultDreamBoothOptions has the rest)"`
	CostTable            string            `param:"cost_table" doc:"when set, also report each generated method's cost under this table label: sec_per_image (measured in this run), batch (images generated together), needs_refs, needs_tuning"`

	Batch     int `param:"batch" default:"24" min:"1" fingerprint:"-" doc:"images per sampler batch"`
	ShardSize int `param:"shard_size" default:"48" min:"1" doc:"images per shard of the images output"`
}

func init() {
	pipeline.Register(pipeline.Spec[evaluateParams]{
		Name:    "evaluate",
		Version: "3", // 3: judges by kind, a no_face row, metric rows name their judge; 2: guidance 0 samples unconditionally
		Doc: "The paper's evaluation protocol (§4.2): identities = subject codes, each generated " +
			"samples_per_identity times (other seeds; other prompts of its subject for free-form sets); " +
			"the same protocol on real images grouped by true identity (dataset row) and on the plain " +
			"generator (no_code row, grouped by prompt and identity slot), and other systems' images " +
			"(external, grouped by their identities). Scores Face Sim, Face Div (images without a face " +
			"counted in a no_face row and left out), CLIP-T and a DreamSim-style subject similarity with " +
			"the judges face_judge, clip_judge and dreamsim_judge name, with bootstrap 95% intervals over identities. " +
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
			if err := checkFamily(p.Family, p.ModelDir); err != nil {
				return err
			}
			for _, m := range p.Methods {
				if lookupEvalMethod(m) == nil {
					return fmt.Errorf("methods: unknown method %q (%s)", m, strings.Join(evalMethodNames(), ", "))
				}
			}
			if len(p.Methods) == 0 && len(p.External) == 0 {
				return fmt.Errorf("methods: none given (and no external images)")
			}
			for name := range p.External {
				if slices.Contains(p.Methods, name) || name == p.Name && slices.Contains(p.Methods, "cocoins") {
					return fmt.Errorf("external: %q is also a row of methods: name the external row otherwise", name)
				}
			}
			if len(p.Metrics) == 0 && p.ClassTable == "" {
				return fmt.Errorf("metrics: none given (and no class_table)")
			}
			for _, m := range p.Metrics {
				if !slices.Contains([]string{"face_sim", "face_div", "clip_t", "dreamsim"}, m) {
					return fmt.Errorf("metrics: unknown measure %q (face_sim, face_div, clip_t, dreamsim)", m)
				}
			}
			j, err := p.judges()
			if err != nil {
				return err
			}
			if err := j.check(); err != nil {
				return err
			}
			if err := checkBaselines(p); err != nil {
				return err
			}
			_, err = loadPromptSet(p.PromptSet)
			return err
		},
		Run: runEvaluate,
	})
}

// evalItem is one image of the protocol, before it exists.
type evalItem struct {
	EvalImageRow
	real   []byte // dataset and external images: the encoded image to re-encode as PNG
	source string // where real comes from, for messages
	ref    []byte // a method that tunes on references (dreambooth): the reference image; it still generates
}

// evalMethod is one row kind of methods: how it lays out its images, and whether it needs the
// generator.
type evalMethod struct {
	name      string
	generates bool
	items     func(job *pipeline.Job, p *evaluateParams, bySubject map[string][]string, subjects []string) ([]evalItem, error)
}

// evalMethods are the rows evaluate makes itself (external images come through external).
var evalMethods = []evalMethod{
	{name: "dataset", items: func(job *pipeline.Job, p *evaluateParams, bySubject map[string][]string, subjects []string) ([]evalItem, error) {
		real := job.Input("real")
		if real == nil {
			return nil, fmt.Errorf("the dataset row needs real images: connect the real input to an ingest output")
		}
		items, absent, err := datasetItems(real, p, bySubject, subjects)
		if len(absent) > 0 {
			job.Log.Warn("the real dataset has no images of these subjects: its row covers the others", "absent", absent)
			job.Record("dataset_subjects_absent", absent)
		}
		return items, err
	}},
	{name: "no_code", generates: true, items: func(job *pipeline.Job, p *evaluateParams, bySubject map[string][]string, subjects []string) ([]evalItem, error) {
		return generatedItems("no_code", p, bySubject, subjects), nil
	}},
	{name: "cocoins", generates: true, items: func(job *pipeline.Job, p *evaluateParams, bySubject map[string][]string, subjects []string) ([]evalItem, error) {
		if job.Input("mapper") == nil {
			return nil, fmt.Errorf("the cocoins row needs a trained mapper: connect the mapper input to a train stage's mapper output")
		}
		return generatedItems("cocoins", p, bySubject, subjects), nil
	}},
}

func lookupEvalMethod(name string) *evalMethod {
	for i := range evalMethods {
		if evalMethods[i].name == name {
			return &evalMethods[i]
		}
	}
	return nil
}

func evalMethodNames() []string {
	names := make([]string, len(evalMethods))
	for i, m := range evalMethods {
		names[i] = m.name
	}
	return names
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
	for _, name := range p.Methods {
		its, err := lookupEvalMethod(name).items(job, p, bySubject, subjects)
		if err != nil {
			return err
		}
		items = append(items, its...)
	}
	ext, err := externalItems(p)
	if err != nil {
		return err
	}
	items = append(items, ext...)
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
	methods.env.dreamSteps = p.DreamBoothSteps
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
			if it.real != nil {
				img, err := imageio.Decode(it.real)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", it.source, err)
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
	defer sc.close()
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
		if !math.IsNaN(m.Value) { // a cost measured in no shard (all reused) is NaN, which JSON cannot hold
			job.Record(m.Method+"."+m.Metric, m.Value)
		}
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
func datasetItems(real *pipeline.Dataset, p *evaluateParams, bySubject map[string][]string, subjects []string) (items []evalItem, absent []string, err error) {
	all, err := pipeline.ReadAll[ImageRow](real)
	if err != nil {
		return nil, nil, err
	}
	byID := map[int64][]ImageRow{}
	classes := map[string]bool{}
	for _, r := range all {
		if r.Identity >= 0 {
			byID[r.Identity] = append(byID[r.Identity], r)
			classes[r.Class] = true
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
	for _, s := range subjects {
		if len((prompts.Prompt{Subject: s}).Concepts()) != 1 {
			return nil, nil, fmt.Errorf("the dataset row needs single-subject prompts; %q has several", s)
		}
		if !classes[s] {
			// CelebA has men and women only: the paper's other subjects have no real row.
			absent = append(absent, s)
			continue
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
				}, real: imgs[j].Image, source: fmt.Sprintf("real image %s (identity %d)", imgs[j].ID, id)})
			}
			if k++; k == p.Identities {
				break
			}
		}
		if k < p.Identities {
			return nil, nil, fmt.Errorf("%s: only %d identities of class %q have %d images, want %d", real.Dir, k, s, p.Samples, p.Identities)
		}
	}
	if len(items) == 0 {
		return nil, absent, fmt.Errorf("%s: the real dataset has none of the subjects %v", real.Dir, subjects)
	}
	return items, absent, nil
}

// models are the digests of the weights the stage loads: the generator when a method
// generates, the face and CLIP judges' models always and the DreamSim judge's when its measure
// is asked; and of each external method's files (external:NAME).
func (p *evaluateParams) models() (map[string]string, error) {
	m := map[string]string{}
	if slices.ContainsFunc(p.Methods, func(s string) bool { e := lookupEvalMethod(s); return e == nil || e.generates }) {
		g, err := family.Models(p.Family, p.ModelDir)
		if err != nil {
			return nil, err
		}
		maps.Copy(m, g)
	}
	j, err := p.judges()
	if err != nil {
		return nil, err
	}
	if m["face"], err = judges.Faces.Digest(j.face); err != nil {
		return nil, fmt.Errorf("face judge %s (face_judge): %w", judgeLabel(j.face), err)
	}
	if m["clip"], err = judges.ImageTexts.Digest(j.clip); err != nil {
		return nil, fmt.Errorf("CLIP judge %s (clip_judge): %w", judgeLabel(j.clip), err)
	}
	for name, path := range p.External {
		if m["external:"+name], err = externalDigest(path); err != nil {
			return nil, fmt.Errorf("external %s: %w", name, err)
		}
	}
	if _, _, sim := p.needs(); sim {
		if m["dreamsim"], err = judges.ImageSims.Digest(j.sim); err != nil {
			return nil, fmt.Errorf("DreamSim judge %s (dreamsim_judge): %w", judgeLabel(j.sim), err)
		}
	}
	return m, nil
}
