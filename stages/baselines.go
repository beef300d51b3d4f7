package stages

// The paper's baselines as methods of the evaluate stage: how the images of one identity are
// made, and what that costs. A method is one entry of baselineMethods; its mechanism lives in
// models/baselines (one file per method).

import (
	"context"
	"fmt"
	"image"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/datasets/prompts"
	"github.com/cocoflow/cocoflow/models/baselines"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/metrics"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/pipeline"
)

// baselineMethod is one row kind of evaluate besides dataset, no_code and cocoins.
type baselineMethod struct {
	Doc string
	// Cost facts, the paper's Table 1 footnotes: the images of an identity are generated
	// together (so one identity's images need one batch of samples_per_identity), the method
	// needs real reference images of the identity, and it tunes weights per identity.
	Shared, References, Tuning bool
	// Later marks the methods of the later-run comparison: each identity has
	// 2 × samples_per_identity images, the first half from one run, the second from later,
	// separate generations with other seeds, and the stage also reports face_sim_runs, the
	// mean identity cosine between the two halves.
	Later bool
	// render makes the images of one identity (its items, in order, all of one group).
	render func(env *baselineEnv, items []evalItem) ([]image.Image, error)
	// items lays out the protocol's items of the method (nil: generatedItems, as no_code).
	items func(method string, p *evaluateParams, bySubject map[string][]string, subjects []string) []evalItem
}

// baselineMethods are the methods of this file, by row name.
var baselineMethods = map[string]baselineMethod{
	"storydiffusion": {
		Doc: "StoryDiffusion's consistent self-attention: an identity's images in one batch; in the later half " +
			"of the blocks each image also attends to a random half of the other images' tokens (first step plain)",
		Shared: true, render: renderStoryDiffusion,
	},
	"consistory": {
		Doc: "ConsiStory: subject masks from the subject word's cross-attention (Otsu), shared attention to the " +
			"two anchors' masked subject tokens (dropout 0.5), vanilla query blending, feature injection",
		Shared: true, render: renderConsiStory,
	},
	"cocoins_later": {
		Doc: "CoCoIns in two runs: the cocoins row's images, then each identity's code again in separate " +
			"generations with other seeds, one image at a time",
		Later: true, render: renderCocoinsLater, items: laterItems,
	},
	"storydiffusion_later": {
		Doc: "StoryDiffusion write then read: the identity's batch is generated in write mode (its tokens " +
			"stored), then separate generations with other seeds read the stored tokens, one image at a time",
		Shared: true, Later: true, render: renderStoryLater, items: laterItems,
	},
	"1prompt1story": {
		Doc: "1Prompt1Story: the identity's prompts consolidated into one (identity prompt + every frame's context), " +
			"singular-value reweighting of the text states per frame, identity-preserving cross-attention, the same " +
			"initial noise for every frame (models/baselines/onepromptonestory.go)",
		Shared: true, render: func(e *baselineEnv, items []evalItem) ([]image.Image, error) { return renderOnePrompt(e, items, true) },
	},
	"1prompt1story_own_noise": {
		Doc: "1Prompt1Story with each image's own initial noise (the protocol's seeds) instead of the story's one: " +
			"how much of its consistency the shared noise gives",
		Shared: true, render: func(e *baselineEnv, items []evalItem) ([]image.Image, error) { return renderOnePrompt(e, items, false) },
	},
	"dreambooth": {
		Doc: "DreamBooth: per identity, the denoiser fine-tuned on the identity's real images (the dataset row's " +
			"identity of the same slot) under \"a patched <class>\" with the class-prior loss, then sampled with the " +
			"token (models/baselines/dreambooth.go); dreambooth_identities per subject",
		References: true, Tuning: true, render: renderDreamBooth, items: dreamBoothItems,
	},
}

// Settings of the methods, their published defaults scaled to the tiny DiT (3 blocks) and the
// evaluation's step count; models/baselines says what each one does. The later half of the
// blocks is Depth/2 … Depth-1.
const (
	storyRate       = 0.5 // StoryDiffusion sa32 = sa64 = 0.5
	storyPlainSteps = 1   // its cur_step < 1 runs plain
	consiAnchors    = 2   // ConsiStory n_anchors
	consiDropout    = 0.5 // its mask_dropout
	consiMaskSteps  = 3   // subject maps averaged over the last 3 steps
	consiBlend      = 0.5 // weight of the vanilla queries in the first fifth of the steps
	consiAlpha      = 0.8 // feature injection: the match's share of an injected feature
)

// The baselines join evaluate's method table, after its own rows, in name order. They
// generate (through the family's generator, hooked) and build their items themselves.
func init() {
	for _, name := range slices.Sorted(maps.Keys(baselineMethods)) {
		evalMethods = append(evalMethods, evalMethod{name: name, generates: true,
			items: func(job *pipeline.Job, p *evaluateParams, bySubject map[string][]string, subjects []string) ([]evalItem, error) {
				return baselineItems(name, p, bySubject, subjects, job)
			}})
	}
}

// checkBaselines checks the baseline methods among p's: a shard must hold whole identities of
// a method that generates them together.
func checkBaselines(p *evaluateParams) error {
	for _, m := range p.Methods {
		b, ok := baselineMethods[m]
		if !ok {
			continue
		}
		per := p.Samples
		if b.Later {
			per *= 2
		}
		if (b.Shared || b.Later || b.Tuning) && p.ShardSize%per != 0 { // a tuned identity is tuned once
			return fmt.Errorf("methods: %s generates an identity's %d images together; shard_size %d must be a multiple of it", m, per, p.ShardSize)
		}
	}
	return nil
}

// laterItems: identity k of subject s has its cocoins-row items (samples 0 … S-1: prompts and
// seeds as generatedItems, codes for cocoins_later), then S more with the same prompts and other
// seeds (samples S … 2S-1).
func laterItems(method string, p *evaluateParams, bySubject map[string][]string, subjects []string) []evalItem {
	src := "no_code"
	if method == "cocoins_later" {
		src = "cocoins"
	}
	q := *p
	q.Name = method
	first := generatedItems(src, &q, bySubject, subjects)
	var out []evalItem
	for i := 0; i < len(first); i += p.Samples {
		id := first[i : i+p.Samples]
		for _, it := range id {
			it.Method = method
			out = append(out, it)
		}
		for j, it := range id {
			it.Method, it.Sample, it.Seed = method, int32(p.Samples+j), it.Seed+500
			out = append(out, it)
		}
	}
	return out
}

// baselineEnv is what the methods' renderers share in one evaluate stage: the generator, the
// sampling options, the run seed and the group samplers made so far (one per mechanism, so
// their graphs compile once).
type baselineEnv struct {
	job      *pipeline.Job // the stage's job: its inputs (real images for methods that need references)
	gen      *generator
	opt      family.SampleOptions
	seed     uint64
	samplers map[string]*baselines.GroupSampler
	bank     *baselines.StoryBank // storydiffusion_later's identity tokens

	onePrompt  map[bool]*baselines.OnePromptSampler // 1prompt1story's samplers by SameNoise
	dreamSteps int                                  // dreambooth's fine-tuning steps
	classPrior map[string][][]float32               // dreambooth's class-prior latents by class word
	runs       map[int]*generator                   // cocoins_later's generators by sampler batch size
}

// tiny returns the stage's generator as the tiny family's, which has the attention hook.
func (e *baselineEnv) tiny() (*tiny.Generator, error) {
	g, ok := e.gen.g.(*tiny.Generator)
	if !ok {
		return nil, fmt.Errorf("the baseline methods need the tiny family's attention hook; family %q has none", e.gen.g.Info().Name)
	}
	return g, nil
}

// sampler returns the group sampler of mech under key, made on first use.
func (e *baselineEnv) sampler(key string, mech baselines.Mechanism) (*baselines.GroupSampler, error) {
	if s, ok := e.samplers[key]; ok {
		return s, nil
	}
	g, err := e.tiny()
	if err != nil {
		return nil, err
	}
	s, err := baselines.NewGroupSampler(g, mech, e.opt)
	if err != nil {
		return nil, err
	}
	e.samplers[key] = s
	return s, nil
}

// close releases the group samplers.
func (e *baselineEnv) close() {
	for _, s := range e.samplers {
		s.Close()
	}
	e.samplers = map[string]*baselines.GroupSampler{}
	for _, s := range e.onePrompt {
		s.Close()
	}
	e.onePrompt = nil
	for _, g := range e.runs {
		g.sampler.Close()
	}
	e.runs = nil
}

// later is the first block of "the later half" of the generator's blocks.
func (e *baselineEnv) later() (int, error) {
	g, err := e.tiny()
	if err != nil {
		return 0, err
	}
	return g.Config().Depth / 2, nil
}

// group returns the plain requests of items, and with subjects the token positions of each
// prompt's concept word.
func (e *baselineEnv) group(items []evalItem, subjects bool) (baselines.Group, error) {
	var grp baselines.Group
	for _, it := range items {
		enc := e.gen.tok.Encode(it.Prompt)
		if len(enc.IDs) > e.gen.tok.MaxLength() {
			return grp, fmt.Errorf("prompt %q has %d tokens, the text encoder takes %d", it.Prompt, len(enc.IDs), e.gen.tok.MaxLength())
		}
		grp.Requests = append(grp.Requests, family.SampleRequest{IDs: enc.IDs, Seed: uint64(it.Seed)})
		if subjects {
			pos, _, err := e.gen.conceptPositions(it.Prompt, enc, len((prompts.Prompt{Subject: it.Subject}).Concepts()))
			if err != nil {
				return grp, err
			}
			grp.Subject = append(grp.Subject, pos)
		}
	}
	return grp, nil
}

// decode turns latents into images.
func (e *baselineEnv) decode(latents [][]float32) ([]image.Image, error) {
	shape := e.gen.g.Info().LatentShape
	out := make([]image.Image, len(latents))
	for i, l := range latents {
		img, err := e.gen.g.Autoencoder().Decode(l, shape)
		if err != nil {
			return nil, err
		}
		out[i] = img
	}
	return out, nil
}

// sample renders items as one group through the sampler of mech.
func (e *baselineEnv) sample(key string, mech baselines.Mechanism, items []evalItem, subjects bool) ([]image.Image, error) {
	s, err := e.sampler(key, mech)
	if err != nil {
		return nil, err
	}
	grp, err := e.group(items, subjects)
	if err != nil {
		return nil, err
	}
	lat, err := s.Sample(grp)
	if err != nil {
		return nil, err
	}
	return e.decode(lat)
}

func (e *baselineEnv) story() (baselines.StoryDiffusion, error) {
	from, err := e.later()
	return baselines.StoryDiffusion{Rate: storyRate, FromLayer: from, PlainSteps: storyPlainSteps, Seed: e.seed}, err
}

func renderStoryDiffusion(e *baselineEnv, items []evalItem) ([]image.Image, error) {
	sd, err := e.story()
	if err != nil {
		return nil, err
	}
	return e.sample("storydiffusion", sd, items, false)
}

func renderConsiStory(e *baselineEnv, items []evalItem) ([]image.Image, error) {
	from, err := e.later()
	if err != nil {
		return nil, err
	}
	n := e.opt.Steps
	m := baselines.ConsiStory{Anchors: consiAnchors, MaskDropout: consiDropout, FromLayer: from, MaskSteps: consiMaskSteps,
		BlendSteps: max(1, n/5), QueryBlend: consiBlend, InjectFrom: n / 5, InjectTo: n - n/5, InjectAlpha: consiAlpha, Seed: e.seed}
	return e.sample("consistory", m, items, true)
}

// renderCocoinsLater renders the first run as the cocoins row does (the same latents: a
// request's latent does not depend on its batch), then every image of the later run alone,
// through a sampler of batch 1 of its own.
func renderCocoinsLater(e *baselineEnv, items []evalItem) ([]image.Image, error) {
	half := len(items) / 2
	var out []image.Image
	for k, batch := range [][]evalItem{items[:half], items[half:]} {
		size := len(batch)
		if k == 1 {
			size = 1
		}
		run, err := e.runSampler(size)
		if err != nil {
			return nil, err
		}
		for lo := 0; lo < len(batch); lo += size {
			var todo []genItem
			for _, b := range batch[lo : lo+size] {
				todo = append(todo, genItem{Prompt: b.Prompt, Codes: b.Codes, Seed: uint64(b.Seed)})
			}
			imgs, _, err := run.renderLocked(todo)
			if err != nil {
				return nil, err
			}
			out = append(out, imgs...)
		}
	}
	return out, nil
}

// runSampler returns the stage's generator with a sampler of the given batch size of its own
// (made on first use, released by close).
func (e *baselineEnv) runSampler(batch int) (*generator, error) {
	if g, ok := e.runs[batch]; ok {
		return g, nil
	}
	opt := e.opt
	opt.BatchSize = batch
	s, err := family.NewSampler(e.gen.g, opt)
	if err != nil {
		return nil, err
	}
	g := &generator{g: e.gen.g, tok: e.gen.tok, mapper: e.gen.mapper, concepts: e.gen.concepts, sampler: s}
	if e.runs == nil {
		e.runs = map[int]*generator{}
	}
	e.runs[batch] = g
	return g, nil
}

// renderStoryLater writes the identity's bank with its first-run batch, then reads it for each
// image of the later run alone.
func renderStoryLater(e *baselineEnv, items []evalItem) ([]image.Image, error) {
	sd, err := e.story()
	if err != nil {
		return nil, err
	}
	if e.bank == nil {
		e.bank = &baselines.StoryBank{}
	}
	half := len(items) / 2
	out, err := e.sample("storydiffusion_write", &baselines.StoryWriter{StoryDiffusion: sd, Bank: e.bank}, items[:half], false)
	if err != nil {
		return nil, err
	}
	for _, it := range items[half:] {
		imgs, err := e.sample("storydiffusion_read", baselines.StoryReader{PlainSteps: storyPlainSteps, Bank: e.bank}, []evalItem{it}, false)
		if err != nil {
			return nil, err
		}
		out = append(out, imgs...)
	}
	return out, nil
}

// methodRenderer renders the generated items of evaluate's shards, method by method, and keeps
// each method's wall time per image for the cost table.
type methodRenderer struct {
	env  baselineEnv
	mu   sync.Mutex
	time map[string]time.Duration
	imgs map[string]int
}

func newMethodRenderer(job *pipeline.Job) *methodRenderer {
	return &methodRenderer{env: baselineEnv{job: job, seed: job.Seed, samplers: map[string]*baselines.GroupSampler{}},
		time: map[string]time.Duration{}, imgs: map[string]int{}}
}

// render returns the images of items (generated rows of one shard), in order: no_code and
// cocoins items through the stage's sampler, baseline items identity by identity.
func (r *methodRenderer) render(gen *generator, opt family.SampleOptions, items []evalItem) ([]image.Image, error) {
	gen.mu.Lock()
	defer gen.mu.Unlock()
	r.env.gen, r.env.opt = gen, opt
	out := make([]image.Image, len(items))
	for lo := 0; lo < len(items); {
		m := items[lo].Method
		b, isBaseline := baselineMethods[m]
		hi := lo + 1
		for hi < len(items) && items[hi].Method == m && (!isBaseline || items[hi].Group == items[lo].Group) {
			hi++
		}
		start := time.Now()
		var imgs []image.Image
		var err error
		if isBaseline {
			imgs, err = b.render(&r.env, items[lo:hi])
		} else {
			todo := make([]genItem, 0, hi-lo)
			for _, it := range items[lo:hi] {
				todo = append(todo, genItem{Prompt: it.Prompt, Codes: it.Codes, Seed: uint64(it.Seed)})
			}
			imgs, _, err = gen.renderLocked(todo)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", m, items[lo].Group, err)
		}
		if len(imgs) != hi-lo {
			return nil, fmt.Errorf("%s %s: %d images for %d items", m, items[lo].Group, len(imgs), hi-lo)
		}
		copy(out[lo:], imgs)
		r.mu.Lock()
		r.time[m] += time.Since(start)
		r.imgs[m] += hi - lo
		r.mu.Unlock()
		lo = hi
	}
	return out, nil
}

// close releases the baseline samplers.
func (r *methodRenderer) close() { r.env.close() }

// costRows are the cost table's rows (p.CostTable): per generated method, seconds per image
// measured in this run (NaN when every shard was reused), the images one batch must hold, and
// whether it needs reference images and tuning per identity (1 or 0).
func (r *methodRenderer) costRows(p *evaluateParams) []MetricRow {
	if p.CostTable == "" {
		return nil
	}
	var out []MetricRow
	for _, m := range p.Methods {
		if m == "dataset" {
			continue
		}
		b := baselineMethods[m]
		sec := math.NaN()
		if n := r.imgs[m]; n > 0 {
			sec = r.time[m].Seconds() / float64(n)
		}
		batch := 1.0
		if b.Shared {
			batch = float64(p.Samples)
		}
		for _, c := range []struct {
			name  string
			value float64
		}{{"sec_per_image", sec}, {"batch", batch}, {"needs_refs", boolValue(b.References)}, {"needs_tuning", boolValue(b.Tuning)}} {
			out = append(out, MetricRow{Table: p.CostTable, Method: m, Metric: c.name, Value: c.value, Lo: math.NaN(), Hi: math.NaN(), Images: int32(r.imgs[m])})
		}
	}
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// laterRows are face_sim_runs for the later-run methods among rows: per identity the mean
// identity cosine between its first-run images (samples < S) and its later ones, averaged over
// identities, with a bootstrap interval over identities.
func laterRows(rows []EvalImageRow, scores []EvalScoreRow, p *evaluateParams, seed uint64) []MetricRow {
	var out []MetricRow
	for mi, m := range p.Methods {
		if !baselineMethods[m].Later {
			continue
		}
		var groups []metrics.Group // per identity: first-run embeddings, then the later ones
		var order []string
		by := map[string]metrics.Group{}
		for i, r := range rows {
			if r.Method != m {
				continue
			}
			if _, ok := by[r.Group]; !ok {
				order = append(order, r.Group)
			}
			by[r.Group] = append(by[r.Group], scores[i].Face)
		}
		for _, g := range order {
			groups = append(groups, by[g])
		}
		stat := func(gs []metrics.Group) float64 {
			var sum float64
			for _, g := range gs {
				c, err := metrics.MeanCosine(g[:len(g)/2], g[len(g)/2:])
				if err != nil {
					return math.NaN()
				}
				sum += c
			}
			return sum / float64(len(gs))
		}
		iv := metrics.Interval{Lo: math.NaN(), Hi: math.NaN()}
		if p.Bootstrap > 0 {
			iv = metrics.Bootstrap(groups, stat, p.Bootstrap, 0.95, seed+uint64(7000+mi))
		}
		out = append(out, MetricRow{Table: p.Table, Method: m, Metric: "face_sim_runs", Value: stat(groups), Lo: iv.Lo, Hi: iv.Hi,
			Identities: int32(len(groups)), Images: int32(2 * p.Samples * len(groups))})
	}
	return out
}

// baselineItems lays out the protocol items of a baseline method.
func baselineItems(method string, p *evaluateParams, bySubject map[string][]string, subjects []string, job *pipeline.Job) ([]evalItem, error) {
	b := baselineMethods[method]
	if method == "cocoins_later" && job.Input("mapper") == nil {
		return nil, fmt.Errorf("the cocoins_later row needs a trained mapper: connect the mapper input to a train stage's mapper output")
	}
	if b.References {
		return referenceItems(b, method, p, bySubject, subjects, job.Input("real"))
	}
	if b.items != nil {
		return b.items(method, p, bySubject, subjects), nil
	}
	return generatedItems(method, p, bySubject, subjects), nil
}

// renderOnePrompt generates an identity's images as one 1Prompt1Story story: its prompts split
// at the subject word into the identity prompt (the first prompt's) and the frames; sameNoise
// is the method's shared initial noise (off: each image's own seed).
func renderOnePrompt(e *baselineEnv, items []evalItem, sameNoise bool) ([]image.Image, error) {
	smp := e.onePrompt[sameNoise]
	if smp == nil {
		g, err := e.tiny()
		if err != nil {
			return nil, err
		}
		opt := baselines.DefaultOnePromptOptions()
		opt.SameNoise = sameNoise
		if smp, err = baselines.NewOnePromptSampler(g, opt, e.opt); err != nil {
			return nil, err
		}
		if e.onePrompt == nil {
			e.onePrompt = map[bool]*baselines.OnePromptSampler{}
		}
		e.onePrompt[sameNoise] = smp
	}
	var texts []string
	var seeds []uint64
	for _, it := range items {
		texts = append(texts, it.Prompt)
		seeds = append(seeds, uint64(it.Seed))
	}
	subject := items[0].Subject
	if subject == "" { // generate's items: the prompt's first concept word
		for _, w := range text.SplitWords(items[0].Prompt) {
			if slices.Contains(e.gen.concepts, w) {
				subject = w
				break
			}
		}
	}
	identity, frames, err := baselines.StoryOf(texts, subject)
	if err != nil {
		return nil, err
	}
	lat, err := smp.Story(identity, frames, seeds)
	if err != nil {
		return nil, err
	}
	return e.decode(lat)
}

// dreamBoothItems lays out the no_code protocol for the first DreamBoothIdentities identities of
// every subject: one fine-tune per identity is the method's cost.
func dreamBoothItems(method string, p *evaluateParams, bySubject map[string][]string, subjects []string) []evalItem {
	q := *p
	q.Identities = min(p.Identities, p.DreamBoothIdentities)
	return generatedItems(method, &q, bySubject, subjects)
}

// referenceItems lays out a reference method's items and gives each one the reference image of
// its sample from the dataset row's identity of the same subject and slot (sample j of
// identity k of subject s carries image j of the k-th real identity of class s).
// real is the ingest output of the real input (nil: not connected).
func referenceItems(b baselineMethod, method string, p *evaluateParams, bySubject map[string][]string, subjects []string, real *pipeline.Dataset) ([]evalItem, error) {
	if real == nil {
		return nil, fmt.Errorf("the %s row needs reference images: connect the real input to an ingest output", method)
	}
	refs, _, err := datasetItems(real, p, bySubject, subjects)
	if err != nil {
		return nil, err
	}
	bySlot := map[string][]byte{} // subject/identity slot/sample → reference image
	slot, last := map[string]int{}, map[string]string{}
	for _, r := range refs {
		if last[r.Subject] != r.Group {
			last[r.Subject] = r.Group
			slot[r.Subject]++
		}
		bySlot[fmt.Sprintf("%s/%02d/%d", r.Subject, slot[r.Subject]-1, r.Sample)] = r.real
	}
	var items []evalItem
	if b.items != nil {
		items = b.items(method, p, bySubject, subjects)
	} else {
		items = generatedItems(method, p, bySubject, subjects)
	}
	for i := range items {
		items[i].ref = bySlot[fmt.Sprintf("%s/%d", items[i].Group, items[i].Sample)]
		if items[i].ref == nil {
			return nil, fmt.Errorf("%s %s sample %d: no reference image", method, items[i].Group, items[i].Sample)
		}
	}
	return items, nil
}

// renderDreamBooth fine-tunes the generator on the identity's reference images (the items' ref
// images) and samples the items' prompts with the token before the subject word.
func renderDreamBooth(e *baselineEnv, items []evalItem) ([]image.Image, error) {
	opt := baselines.DefaultDreamBoothOptions()
	opt.Steps, opt.Seed = e.dreamSteps, e.seed
	class := items[0].Subject
	if e.classPrior == nil {
		e.classPrior = map[string][][]float32{}
	}
	prior, ok := e.classPrior[class]
	if !ok {
		_, cp, err := baselines.DreamBoothPrompts(e.gen.tok, opt.Token, class)
		if err != nil {
			return nil, err
		}
		if prior, err = baselines.ClassPriorLatents(e.gen.g, e.gen.tok.Encode(cp).IDs, opt.ClassImages, e.opt); err != nil {
			return nil, err
		}
		e.classPrior[class] = prior
	}
	var refs []image.Image
	for _, it := range items {
		img, err := imageio.Decode(it.ref)
		if err != nil {
			return nil, fmt.Errorf("reference image of %s sample %d: %w", it.Group, it.Sample, err)
		}
		refs = append(refs, img)
	}
	tuned, err := baselines.TuneIdentity(context.Background(), e.gen.g, refs, class, prior, opt)
	if err != nil {
		return nil, err
	}
	reqs := make([]family.SampleRequest, len(items))
	for i, it := range items {
		prompt, err := baselines.WithToken(it.Prompt, class, opt.Token)
		if err != nil {
			return nil, err
		}
		reqs[i] = family.SampleRequest{IDs: e.gen.tok.Encode(prompt).IDs, Seed: uint64(it.Seed)}
	}
	lat, err := family.Sample(tuned, reqs, e.opt)
	if err != nil {
		return nil, err
	}
	return e.decode(lat)
}

// checkGenerateMethod checks generate's method: a batch method of baselineMethods, without
// subject codes (batch methods take plain prompts).
func checkGenerateMethod(p *generateParams) error {
	if p.Method == "" {
		return nil
	}
	b, ok := baselineMethods[p.Method]
	if !ok || !b.Shared || b.Later {
		var names []string
		for n, b := range baselineMethods {
			if b.Shared && !b.Later {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		return fmt.Errorf("method: %q is not a batch method (%s)", p.Method, strings.Join(names, ", "))
	}
	if len(p.Codes) > 0 || p.NoCode {
		return fmt.Errorf("method %s generates plain prompts: give no codes and no no_code", p.Method)
	}
	return nil
}

// generateWithMethod is generate with a batch method: one shard per seed, holding that seed's
// image of every prompt, generated together as one identity.
func generateWithMethod(ctx context.Context, job *pipeline.Job, p *generateParams, prompts []string) error {
	gen, err := newGenerator(job, p.Family, p.ModelDir, p.Concepts, family.SampleOptions{Steps: p.Steps, Guidance: p.Guidance, Eta: p.Eta, BatchSize: p.Batch})
	if err != nil {
		return err
	}
	defer gen.close()
	r := newMethodRenderer(job)
	defer r.close()
	opt := family.SampleOptions{Steps: p.Steps, Guidance: p.Guidance, Eta: p.Eta, BatchSize: p.Batch}
	out := job.Output("images")
	err = pipeline.MapShards(ctx, job, out, len(p.Seeds), func(ctx context.Context, shard int) ([]GeneratedRow, error) {
		seed := p.Seeds[shard]
		items := make([]evalItem, len(prompts))
		for k, pr := range prompts {
			items[k].EvalImageRow = EvalImageRow{Method: p.Method, Group: fmt.Sprintf("seed %d", seed), Sample: int32(k), Prompt: pr, Seed: int64(seed)}
		}
		imgs, err := r.render(gen, opt, items)
		if err != nil {
			return nil, err
		}
		rows := make([]GeneratedRow, len(items))
		for k, it := range items {
			png, err := imageio.PNG(imgs[k])
			if err != nil {
				return nil, err
			}
			b := imgs[k].Bounds()
			rows[k] = GeneratedRow{
				ID: fmt.Sprintf("g-%06d", shard*len(prompts)+k), Prompt: it.Prompt, Seed: int64(seed), Steps: int32(p.Steps),
				Guidance: float32(p.Guidance), Width: int32(b.Dx()), Height: int32(b.Dy()), Image: png,
			}
		}
		return rows, nil
	})
	if err != nil {
		return err
	}
	return writeGenerateSheet(job, out, len(p.Seeds), len(prompts), false)
}
