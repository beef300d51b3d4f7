package family

import (
	"fmt"
	"sort"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/models/text/prompt"
)

// Insertion is a pseudo-word placed into a prompt (paper eq. 4): Words[k] is its vector for text
// encoder k, inserted right before the token at Position of the original (unpadded) sequence,
// usually the concept word.
type Insertion struct {
	Position int
	Words    [][]float32
}

// SampleRequest is one image to generate.
type SampleRequest struct {
	IDs        []int32     // the prompt's token ids, BOS … EOS, unpadded
	Insertions []Insertion // pseudo-words to insert (none, one per subject)
	Seed       uint64      // noise stream: x_T = diffusion.GaussianNoise(SampleOptions.Seed, Seed, n)
}

// SampleOptions configure sampling. Every field means what it says, zero included: the
// defaults belong to the caller (the generate and evaluate stages declare theirs).
type SampleOptions struct {
	Steps int // DDIM steps (>= 1)
	// Guidance is the classifier-free guidance scale s of diffusion.Guide: ε = ε_u + s (ε_c − ε_u).
	// 0 samples unconditionally (the prompt and its pseudo-words have no effect), 1 conditionally
	// (the unconditional branch is not run), above 1 guided.
	Guidance  float64
	Eta       float64 // DDIM η (0: deterministic)
	Spacing   string  // timestep spacing of diffusion.Sampler: Leading (also ""), Trailing or Linspace
	BatchSize int     // images per denoiser call (>= 1); the last batch is padded
	Seed      uint64  // run-level seed of the noise, combined with each request's Seed
}

// wordSlots is the least number of pseudo-word slots compiled into the text graph, so that
// single- and two-subject batches share one compiled graph; a request with more insertions
// gets a graph with as many.
const wordSlots = 2

// Sample generates one latent per request with g (see Sampler). It compiles the graphs, so
// callers that sample repeatedly should keep a Sampler instead.
func Sample(g Generator, reqs []SampleRequest, opt SampleOptions) ([][]float32, error) {
	s, err := NewSampler(g, opt)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Sample(reqs)
}

// Sampler generates latents with a generator: prompts (with optional pseudo-words) are encoded
// by one compiled graph (Embed, insertion as a one-hot matrix product, Encode), a second graph
// runs the denoiser on conditional and unconditional rows together (2·BatchSize), and the DDIM
// loop runs on the host with models/diffusion. Each compiled graph has one input shape: the
// last batch is padded by repeating its last request. A request's latent depends only on the
// request, the options and the weights — not on the other requests of its batch. A Sampler is
// not safe for concurrent use.
type Sampler struct {
	g      Generator
	info   Info
	tok    text.Tokenizer
	opt    SampleOptions
	sched  *diffusion.Schedule
	maxLen int
	dim    int // values per latent

	textExec, denoiseExec *context.Exec
	host                  HostRunner // the generator's own inference path (HostSampler), or nil
	hasPooled             bool       // the text graph outputs a pooled state
	extraKeys             []string   // names of the Cond.Extra outputs of the text graph, in order
}

// NewSampler prepares sampling with g. It returns an error if an option is out of range, the
// generator's schedule is unknown, its encoders differ in maximum length, or the backend cannot
// start. Graphs are compiled on first use.
func NewSampler(g Generator, opt SampleOptions) (*Sampler, error) {
	switch {
	case opt.Steps < 1:
		return nil, fmt.Errorf("family: sample: steps = %d, want >= 1", opt.Steps)
	case opt.BatchSize < 1:
		return nil, fmt.Errorf("family: sample: batch size = %d, want >= 1", opt.BatchSize)
	case opt.Eta < 0:
		return nil, fmt.Errorf("family: sample: eta = %g, want >= 0", opt.Eta)
	}
	info := g.Info()
	if len(info.Encoders) == 0 {
		return nil, fmt.Errorf("family: sample: generator %q has no text encoder", info.Name)
	}
	maxLen := info.Encoders[0].MaxLength
	for _, e := range info.Encoders[1:] {
		if e.MaxLength != maxLen {
			return nil, fmt.Errorf("family: sample: encoders %q and %q differ in max length (%d, %d); one EOS index cannot serve both",
				info.Encoders[0].Name, e.Name, maxLen, e.MaxLength)
		}
	}
	sched, err := diffusion.NewSchedule(info.Schedule, info.TrainSteps)
	if err != nil {
		return nil, fmt.Errorf("family: sample: generator %q: %w", info.Name, err)
	}
	if _, err := (diffusion.Sampler{Schedule: sched, Steps: opt.Steps, Spacing: opt.Spacing, Eta: opt.Eta}).Timesteps(); err != nil {
		return nil, fmt.Errorf("family: sample: %w", err)
	}
	if info.Prediction != "epsilon" && info.Prediction != "v" {
		return nil, fmt.Errorf("family: sample: generator %q predicts %q, want \"epsilon\" or \"v\"", info.Name, info.Prediction)
	}
	dim := 1
	for _, d := range info.LatentShape {
		dim *= d
	}
	b, err := engine.Backend()
	if err != nil {
		return nil, err
	}
	s := &Sampler{g: g, info: info, tok: g.Tokenizer(), opt: opt, sched: sched, maxLen: maxLen, dim: dim}
	if hs, ok := g.(HostSampler); ok {
		if s.host, err = hs.NewHostRunner(2 * opt.BatchSize); err != nil {
			return nil, fmt.Errorf("family: sample: generator %q: %w", info.Name, err)
		}
		return s, nil
	}
	ctx := g.Context().Reuse()
	if s.textExec, err = context.NewExec(b, ctx, s.textGraph); err != nil {
		return nil, fmt.Errorf("family: sample: text graph: %w", err)
	}
	if s.denoiseExec, err = context.NewExec(b, ctx, s.denoiseGraph); err != nil {
		s.textExec.Finalize()
		return nil, fmt.Errorf("family: sample: denoiser graph: %w", err)
	}
	return s, nil
}

// Close releases the compiled graphs or the generator's host runner.
func (s *Sampler) Close() {
	if s.host != nil {
		_ = s.host.Close()
		s.host = nil
	}
	if s.textExec != nil {
		s.textExec.Finalize()
	}
	if s.denoiseExec != nil {
		s.denoiseExec.Finalize()
	}
	s.textExec, s.denoiseExec = nil, nil
}

// textGraph: inputs ids [N, L] int32, eos [N] int32, then per encoder k the one-hot insertion
// matrix M_k [N, L, L+W] and the words [N, W, D_k]; outputs the Cond nodes in a fixed order:
// states, pooled (if any), extras sorted by name.
func (s *Sampler) textGraph(ctx *context.Context, in []*graph.Node) []*graph.Node {
	ids, eos := in[0], in[1]
	embeds := s.g.Embed(ctx, ids)
	if len(in) != 2+2*len(embeds) {
		panic(fmt.Errorf("family: sample: Embed returned %d encoders, the sampler fed %d", len(embeds), (len(in)-2)/2))
	}
	for k := range embeds {
		m, words := in[2+2*k], in[3+2*k]
		all := graph.Concatenate([]*graph.Node{embeds[k], words}, 1)                 // [N, L+W, D]: concat(e, w)
		embeds[k] = graph.DotGeneral(m, []int{2}, []int{0}, all, []int{1}, []int{0}) // [N, L, D] = M · concat(e, w)
	}
	cond := s.g.Encode(ctx, embeds, eos)
	out := []*graph.Node{cond.States}
	s.hasPooled = cond.Pooled != nil
	if s.hasPooled {
		out = append(out, cond.Pooled)
	}
	s.extraKeys = sortedKeys(cond.Extra)
	for _, k := range s.extraKeys {
		out = append(out, cond.Extra[k])
	}
	return out
}

// denoiseGraph: inputs x_t [N, LatentShape…], t [N] int32, then the outputs of textGraph (which
// is always built first, so hasPooled and extraKeys are known).
func (s *Sampler) denoiseGraph(ctx *context.Context, in []*graph.Node) *graph.Node {
	cond := Cond{States: in[2]}
	rest := in[3:]
	if s.hasPooled {
		cond.Pooled, rest = rest[0], rest[1:]
	}
	if len(s.extraKeys) > 0 {
		cond.Extra = make(map[string]*graph.Node, len(s.extraKeys))
		for i, k := range s.extraKeys {
			cond.Extra[k] = rest[i]
		}
	}
	return s.g.Denoise(ctx, in[0], in[1], cond)
}

func sortedKeys(m map[string]*graph.Node) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// guided reports whether the unconditional branch runs.
func (s *Sampler) guided() bool { return s.opt.Guidance != 1 }

// Sample returns one latent (len = product of Info.LatentShape) per request, in order. It
// returns an error naming the request whose token ids or insertions are invalid (an id outside
// the vocabulary, no EOS, a word of the wrong width, a position past EOS or one that truncation
// would drop), or the step at which the model failed.
func (s *Sampler) Sample(reqs []SampleRequest) ([][]float32, error) {
	if s.textExec == nil && s.host == nil {
		return nil, fmt.Errorf("family: sample: sampler is closed")
	}
	words := wordSlots
	plans := make([]prompt.Plan, len(reqs))
	fitted := make([][]int32, len(reqs))
	for i, r := range reqs {
		p, ids, err := s.plan(r)
		if err != nil {
			return nil, fmt.Errorf("family: sample: request %d: %w", i, err)
		}
		plans[i], fitted[i] = p, ids
		words = max(words, len(r.Insertions))
	}
	out := make([][]float32, len(reqs))
	bs := s.opt.BatchSize
	for start := 0; start < len(reqs); start += bs {
		end := min(start+bs, len(reqs))
		idx := make([]int, bs) // rows of the batch; padding repeats the last request
		for b := range idx {
			idx[b] = min(start+b, end-1)
		}
		lat, err := s.sampleBatch(reqs, plans, fitted, idx, words)
		if err != nil {
			return nil, fmt.Errorf("family: sample: requests %d-%d: %w", start, end-1, err)
		}
		for b := range end - start {
			out[start+b] = lat[b*s.dim : (b+1)*s.dim : (b+1)*s.dim]
		}
	}
	return out, nil
}

// plan checks a request and returns its insertion plan and its ids fitted to the encoders'
// length.
func (s *Sampler) plan(r SampleRequest) (prompt.Plan, []int32, error) {
	vocab := s.tok.VocabSize()
	for i, id := range r.IDs {
		if id < 0 || int(id) >= vocab {
			return prompt.Plan{}, nil, fmt.Errorf("token %d is id %d, outside the vocabulary [0, %d)", i, id, vocab)
		}
	}
	ids, eos, _ := text.Fit(r.IDs, s.maxLen, s.tok.EOS(), s.tok.Pad())
	if eos < 0 {
		return prompt.Plan{}, nil, fmt.Errorf("token ids %v do not end with EOS (%d)", r.IDs, s.tok.EOS())
	}
	positions := make([]int, len(r.Insertions))
	for j, ins := range r.Insertions {
		if len(ins.Words) != len(s.info.Encoders) {
			return prompt.Plan{}, nil, fmt.Errorf("insertion %d has %d word vectors, want one per text encoder (%d)", j, len(ins.Words), len(s.info.Encoders))
		}
		for k, w := range ins.Words {
			if len(w) != s.info.Encoders[k].Dim {
				return prompt.Plan{}, nil, fmt.Errorf("insertion %d: word for encoder %q has %d values, want %d", j, s.info.Encoders[k].Name, len(w), s.info.Encoders[k].Dim)
			}
		}
		positions[j] = ins.Position
	}
	p, err := prompt.NewPlan(s.maxLen, eos, positions, s.maxLen)
	if err != nil {
		return prompt.Plan{}, nil, err
	}
	return p, ids, nil
}

// sampleBatch runs the DDIM loop for the requests at rows idx (len = BatchSize) with `words`
// pseudo-word slots, and returns their latents back to back.
func (s *Sampler) sampleBatch(reqs []SampleRequest, plans []prompt.Plan, fitted [][]int32, idx []int, words int) ([]float32, error) {
	B, L := len(idx), s.maxLen
	N := B
	if s.guided() {
		N = 2 * B // conditional rows, then unconditional ones
	}
	ids := make([]int32, N*L)
	eos := make([]int32, N)
	rowPlans := make([]prompt.Plan, N)
	empty, emptyEOS, _ := text.Fit([]int32{s.tok.BOS(), s.tok.EOS()}, L, s.tok.EOS(), s.tok.Pad())
	emptyPlan, err := prompt.NewPlan(L, emptyEOS, nil, L)
	if err != nil {
		return nil, err
	}
	for r := range N {
		if r < B {
			copy(ids[r*L:], fitted[idx[r]])
			rowPlans[r] = plans[idx[r]]
		} else {
			copy(ids[r*L:], empty)
			rowPlans[r] = emptyPlan
		}
		eos[r] = int32(rowPlans[r].EOS)
	}
	vectors := make([][]float32, len(s.info.Encoders)) // per encoder: [N, words, Dim] pseudo-words
	for k, enc := range s.info.Encoders {
		vectors[k] = make([]float32, N*words*enc.Dim)
		for r := range B {
			for j, ins := range reqs[idx[r]].Insertions {
				copy(vectors[k][(r*words+j)*enc.Dim:], ins.Words[k])
			}
		}
	}
	batch := TextBatch{Rows: N, Length: L, IDs: ids, Plans: rowPlans, EOS: eos, Words: words, Vectors: vectors}
	var denoise denoiser
	var release func()
	if s.host != nil {
		denoise, release, err = s.hostText(batch)
	} else {
		denoise, release, err = s.graphText(batch)
	}
	if err != nil {
		return nil, fmt.Errorf("text encoding: %w", err)
	}
	defer release()

	xin := make([]float32, N*s.dim)
	eps := func(xt []float32, t int) ([]float32, error) {
		copy(xin, xt)
		if s.guided() {
			copy(xin[B*s.dim:], xt)
		}
		pred, err := denoise(xin, t)
		if err != nil {
			return nil, err
		}
		if len(pred) != N*s.dim {
			return nil, fmt.Errorf("denoiser returned %d values, want %d (%d x %v)", len(pred), N*s.dim, N, s.info.LatentShape)
		}
		if s.info.Prediction == "v" {
			pred = diffusion.VToEps(xin, pred, s.sched.AlphaBar(t))
		}
		if !s.guided() {
			return pred, nil
		}
		return diffusion.Guide(pred[B*s.dim:], pred[:B*s.dim], s.opt.Guidance), nil
	}
	streams := make([]uint64, B)
	for r := range B {
		streams[r] = reqs[idx[r]].Seed
	}
	smp := diffusion.Sampler{Schedule: s.sched, Steps: s.opt.Steps, Spacing: s.opt.Spacing, Eta: s.opt.Eta, Seed: s.opt.Seed}
	return smp.Sample(streams, s.dim, eps)
}

// denoiser predicts for the rows of one batch, [N, LatentShape...], at train timestep t; the
// text conditioning is bound in.
type denoiser func(xt []float32, t int) ([]float32, error)

// graphText encodes the batch's text with the compiled text graph and returns the compiled
// denoiser under that conditioning, and a function releasing the conditioning's tensors.
func (s *Sampler) graphText(b TextBatch) (denoiser, func(), error) {
	N, L, W := b.Rows, b.Length, b.Words
	m := prompt.OneHot(b.Plans, L, W)
	if m == nil {
		return nil, nil, fmt.Errorf("insertion plans do not fit %d tokens and %d words", L, W)
	}
	inputs := []any{tensors.FromFlatDataAndDimensions(b.IDs, N, L), tensors.FromFlatDataAndDimensions(b.EOS, N)}
	for k, enc := range s.info.Encoders {
		inputs = append(inputs, tensors.FromFlatDataAndDimensions(m, N, L, L+W), tensors.FromFlatDataAndDimensions(b.Vectors[k], N, W, enc.Dim))
	}
	cond, err := s.textExec.Exec(inputs...)
	if err != nil {
		return nil, nil, err
	}
	release := func() {
		for _, t := range cond {
			t.FinalizeAll()
		}
	}
	latentDims := append([]int{N}, s.info.LatentShape...)
	tIDs := make([]int32, N)
	return func(xt []float32, t int) ([]float32, error) {
		for r := range tIDs {
			tIDs[r] = int32(t)
		}
		args := []any{tensors.FromFlatDataAndDimensions(xt, latentDims...), tensors.FromFlatDataAndDimensions(tIDs, N)}
		for _, c := range cond {
			args = append(args, c)
		}
		outs, err := s.denoiseExec.Exec(args...)
		if err != nil {
			return nil, err
		}
		pred, err := tensors.CopyFlatData[float32](outs[0])
		for _, o := range outs {
			o.FinalizeAll()
		}
		return pred, err
	}, release, nil
}
