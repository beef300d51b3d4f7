package baselines

// 1Prompt1Story (Liu et al., "One-Prompt-One-Story", ICLR 2025; public code
// github.com/byliutao/1Prompt1Story, unet/utils.py and its SDXL pipeline) on the tiny generator.
// All frames of one identity come from one consolidated prompt, the identity prompt followed by
// every frame's context, "a man is reading in the library. is walking in the park. …"; for frame
// i the text states are reweighted so that frame i's context dominates:
//
//	for each other frame j:  X_j ← SVR(X_j; α_w, β_w)   (weaken)
//	then for frame i:        X_i ← SVR(X_i; α_e, β_e)   (enhance)
//	SVR(X; α, β) = U · diag(β·s·e^(−α·s)) · Vᵀ  for X = U · diag(s) · Vᵀ
//
// where X_j stacks the states of frame j's tokens and of the EOS and padding positions (the
// code's "<|endoftext|>" rows, which the SDXL tokenizer pads with). Identity-preserving
// cross-attention (IPCA) then concatenates to every cross-attention's keys and values those of
// the unmodified identity prompt, masked to its identity tokens, and every frame starts from the
// same initial noise.
//
// Symbols → code:
//
//	α_w, β_w    OnePromptOptions.AlphaWeaken, BetaWeaken    (code defaults 0.01, 0.05)
//	α_e, β_e    OnePromptOptions.AlphaEnhance, BetaEnhance  (code defaults −0.01, 1.0)
//	window      OnePromptOptions.Window: frames per consolidated prompt (code default 10); when
//	            the story has more, or they do not fit MaxLength tokens, frame i's prompt holds
//	            the circular window i, i+1, … (the code's circular_sliding_windows)
//
// SVR is computed from the Gram matrix: X·Xᵀ = U·diag(s²)·Uᵀ gives
// SVR(X) = U·diag(β·e^(−α·s))·Uᵀ·X, the same matrix without forming V (and defined at s = 0).
//
// Where this departs: the tiny text encoder is causal, so the identity tokens' states in the
// consolidated prompt are those of the identity prompt alone, which IPCA uses (the code stores
// them from a pass over the identity prompt). With WordSkip the denoiser reads 2·MaxLength
// states, a token's contextual state and its word state: both rows of a token are reweighted and
// both rows of an identity token are the IPCA keys. IPCA acts on the conditional rows; the
// unconditional rows keep plain cross-attention (their reference keys are masked out), and it
// acts in every block and step with no dropout (the code's defaults Ipca_dropout 0, start 0, all
// positions). The pooled state is the consolidated prompt's, unreweighted, as the code leaves
// the pooled embedding alone.
//
// Measured on the committed tiny generator (evaluate, 5 subjects x 6 identities x 4 images,
// bootstrap 95% intervals): on Portraits, whose frames are all one prompt, the shared noise makes
// an identity's images nearly the same (Face Sim 0.996 [0.995, 0.997], Face Div 0.794, CLIP-T
// 0.304 against no_code's 0.469: the four-times-repeated context confuses the tiny text
// encoder); on Scenes Face Sim 0.829 [0.796, 0.863], Face Div 0.822, CLIP-T 0.403 (no_code
// 0.140, 0.782, 0.614). BenchmarkOnePromptStory: with each frame's own noise Face Sim falls to
// 0.286 (plain 0.150), so most of the consistency is the shared noise.

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
)

// OnePromptOptions configure 1Prompt1Story; DefaultOnePromptOptions has its code's defaults.
type OnePromptOptions struct {
	AlphaWeaken, BetaWeaken   float64 // SVR of the other frames' tokens
	AlphaEnhance, BetaEnhance float64 // SVR of the current frame's tokens
	Window                    int     // frames per consolidated prompt (>= 1)
	IPCA                      bool    // identity-preserving cross-attention
	SameNoise                 bool    // every frame starts from the first frame's noise
}

// DefaultOnePromptOptions returns the defaults of 1Prompt1Story's UNetController.
func DefaultOnePromptOptions() OnePromptOptions {
	return OnePromptOptions{AlphaWeaken: 0.01, BetaWeaken: 0.05, AlphaEnhance: -0.01, BetaEnhance: 1,
		Window: 10, IPCA: true, SameNoise: true}
}

// SVR reweights the singular values of the matrix formed by the rows sel of x (rows of dim
// values, row-major) in place: s → β·s·e^(−α·s), the singular vectors kept. Other rows are left
// as they are. With α = 0 and β = 1 it is the identity.
func SVR(x []float32, dim int, sel []int, alpha, beta float64) {
	m := len(sel)
	if m == 0 {
		return
	}
	gram := make([]float64, m*m) // X·Xᵀ
	for a := range m {
		ra := x[sel[a]*dim : (sel[a]+1)*dim]
		for b := a; b < m; b++ {
			rb := x[sel[b]*dim : (sel[b]+1)*dim]
			s := 0.0
			for k := range dim {
				s += float64(ra[k]) * float64(rb[k])
			}
			gram[a*m+b], gram[b*m+a] = s, s
		}
	}
	lambda, u := symEigen(gram, m)
	w := make([]float64, m) // β·e^(−α·s)
	for k := range m {
		w[k] = beta * math.Exp(-alpha*math.Sqrt(math.Max(lambda[k], 0)))
	}
	mix := make([]float64, m*m) // U·diag(w)·Uᵀ
	for a := range m {
		for b := range m {
			s := 0.0
			for k := range m {
				s += u[a*m+k] * w[k] * u[b*m+k]
			}
			mix[a*m+b] = s
		}
	}
	out := make([]float64, m*dim)
	for a := range m {
		for b := range m {
			c := mix[a*m+b]
			rb := x[sel[b]*dim : (sel[b]+1)*dim]
			for k := range dim {
				out[a*dim+k] += c * float64(rb[k])
			}
		}
	}
	for a := range m {
		for k := range dim {
			x[sel[a]*dim+k] = float32(out[a*dim+k])
		}
	}
}

// symEigen returns the eigenvalues and eigenvectors (columns of u, n x n row-major) of the
// symmetric n x n matrix a by cyclic Jacobi rotations; a is overwritten.
func symEigen(a []float64, n int) (lambda, u []float64) {
	u = make([]float64, n*n)
	for i := range n {
		u[i*n+i] = 1
	}
	for sweep := 0; sweep < 100; sweep++ {
		off, norm := 0.0, 0.0
		for i := range n {
			for j := range n {
				if i != j {
					off += a[i*n+j] * a[i*n+j]
				}
				norm += a[i*n+j] * a[i*n+j]
			}
		}
		if off <= 1e-30*norm || off == 0 {
			break
		}
		for p := 0; p < n-1; p++ {
			for q := p + 1; q < n; q++ {
				apq := a[p*n+q]
				if apq == 0 {
					continue
				}
				theta := (a[q*n+q] - a[p*n+p]) / (2 * apq)
				t := math.Copysign(1, theta) / (math.Abs(theta) + math.Sqrt(theta*theta+1))
				c := 1 / math.Sqrt(t*t+1)
				s := t * c
				for k := range n { // a ← a·J
					akp, akq := a[k*n+p], a[k*n+q]
					a[k*n+p], a[k*n+q] = c*akp-s*akq, s*akp+c*akq
				}
				for k := range n { // a ← Jᵀ·a
					apk, aqk := a[p*n+k], a[q*n+k]
					a[p*n+k], a[q*n+k] = c*apk-s*aqk, s*apk+c*aqk
				}
				for k := range n { // u ← u·J
					ukp, ukq := u[k*n+p], u[k*n+q]
					u[k*n+p], u[k*n+q] = c*ukp-s*ukq, s*ukp+c*ukq
				}
			}
		}
	}
	lambda = make([]float64, n)
	for i := range n {
		lambda[i] = a[i*n+i]
	}
	return lambda, u
}

// FramePrompt is the consolidated prompt of one frame: its token ids (BOS … EOS, unpadded) and
// the token positions of the identity words, of the frame's own context (Express) and of each
// other frame's context in it (Suppress).
type FramePrompt struct {
	IDs      []int32
	Identity []int
	Express  []int
	Suppress [][]int
}

// Consolidate returns the consolidated prompt of every frame of a story: the identity prompt
// ("a man") followed by the frames' contexts ("is reading in the library."), all of them when
// they fit the tokenizer's MaxLength and window, else for frame i the circular window of frames
// i, i+1, … of the largest length that fits for every frame. It returns an error when the
// identity or a frame has no tokens, or when the identity and one frame do not fit.
func Consolidate(tok text.Tokenizer, identity string, frames []string, window int) ([]FramePrompt, error) {
	if window < 1 {
		return nil, fmt.Errorf("1prompt1story: window = %d, want >= 1", window)
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("1prompt1story: a story without frames")
	}
	words := func(s string) []int32 {
		ids := tok.Encode(s).IDs
		return ids[1 : len(ids)-1] // without BOS and EOS
	}
	id := words(identity)
	if len(id) == 0 {
		return nil, fmt.Errorf("1prompt1story: identity prompt %q has no tokens", identity)
	}
	ctx := make([][]int32, len(frames))
	for i, f := range frames {
		if ctx[i] = words(f); len(ctx[i]) == 0 {
			return nil, fmt.Errorf("1prompt1story: frame %d %q has no tokens", i, f)
		}
	}
	n := len(frames)
	fits := func(w int) bool {
		for i := range n {
			l := 2 + len(id)
			for k := range w {
				l += len(ctx[(i+k)%n])
			}
			if l > tok.MaxLength() {
				return false
			}
		}
		return true
	}
	w := min(window, n)
	for w > 0 && !fits(w) {
		w--
	}
	if w == 0 {
		return nil, fmt.Errorf("1prompt1story: identity %q and one frame do not fit %d tokens", identity, tok.MaxLength())
	}
	out := make([]FramePrompt, n)
	for i := range n {
		order := make([]int, w) // frames of the prompt, in prompt order
		for k := range w {
			order[k] = (i + k) % n
		}
		if w == n {
			for k := range n {
				order[k] = k
			}
		}
		p := FramePrompt{IDs: append([]int32{tok.BOS()}, id...)}
		for k := range id {
			p.Identity = append(p.Identity, 1+k)
		}
		for _, j := range order {
			pos := make([]int, len(ctx[j]))
			for k := range pos {
				pos[k] = len(p.IDs) + k
			}
			p.IDs = append(p.IDs, ctx[j]...)
			if j == i {
				p.Express = pos
			} else {
				p.Suppress = append(p.Suppress, pos)
			}
		}
		p.IDs = append(p.IDs, tok.EOS())
		out[i] = p
	}
	return out, nil
}

// SplitPrompt splits a prompt at its subject word into the identity part (up to and including
// the subject, "a man") and the frame's context (the rest), or returns an error when the subject
// does not occur. The words are the tokenizer's cleaned words.
func SplitPrompt(prompt, subject string) (identity, frame string, err error) {
	words := text.SplitWords(prompt)
	for i, w := range words {
		if strings.EqualFold(w, subject) {
			return strings.Join(words[:i+1], " "), strings.Join(words[i+1:], " "), nil
		}
	}
	return "", "", fmt.Errorf("1prompt1story: subject %q not in prompt %q", subject, prompt)
}

// StoryOf splits the prompts of one identity's frames at the subject word: the identity prompt is
// the first prompt's identity part (1Prompt1Story has one identity prompt per story) and the
// frames are every prompt's context. It returns an error naming a prompt without the subject.
func StoryOf(prompts []string, subject string) (identity string, frames []string, err error) {
	for i, p := range prompts {
		id, frame, err := SplitPrompt(p, subject)
		if err != nil {
			return "", nil, err
		}
		if i == 0 {
			identity = id
		}
		frames = append(frames, frame)
	}
	if len(frames) == 0 {
		return "", nil, fmt.Errorf("1prompt1story: a story without prompts")
	}
	return identity, frames, nil
}

// OnePromptSampler generates stories with the tiny generator and 1Prompt1Story: one batch per
// story, every frame's states reweighted and, with IPCA, extended by the identity prompt's.
type OnePromptSampler struct {
	g   *tiny.Generator
	opt OnePromptOptions
	so  family.SampleOptions
	sch *diffusion.Schedule
	dim int

	textExec, denoiseExec *context.Exec
}

// NewOnePromptSampler prepares sampling with g (Steps, Guidance, Eta, Spacing and Seed of so;
// a story is one batch). It returns an error when an option is out of range or the backend
// cannot start.
func NewOnePromptSampler(g *tiny.Generator, opt OnePromptOptions, so family.SampleOptions) (*OnePromptSampler, error) {
	if opt.Window < 1 {
		return nil, fmt.Errorf("1prompt1story: window = %d, want >= 1", opt.Window)
	}
	if so.Steps < 1 {
		return nil, fmt.Errorf("1prompt1story: steps = %d, want >= 1", so.Steps)
	}
	info := g.Info()
	sch, err := diffusion.NewSchedule(info.Schedule, info.TrainSteps)
	if err != nil {
		return nil, fmt.Errorf("1prompt1story: %w", err)
	}
	if _, err := (diffusion.Sampler{Schedule: sch, Steps: so.Steps, Spacing: so.Spacing, Eta: so.Eta}).Timesteps(); err != nil {
		return nil, fmt.Errorf("1prompt1story: %w", err)
	}
	b, err := engine.Backend()
	if err != nil {
		return nil, err
	}
	s := &OnePromptSampler{g: g, opt: opt, so: so, sch: sch, dim: 1}
	for _, d := range info.LatentShape {
		s.dim *= d
	}
	ctx := g.Context().Reuse()
	s.textExec, err = context.NewExec(b, ctx, func(ctx *context.Context, ids, eos *graph.Node) []*graph.Node {
		c := g.Encode(ctx, g.Embed(ctx, ids), eos)
		return []*graph.Node{c.States, c.Pooled}
	})
	if err == nil {
		s.denoiseExec, err = context.NewExec(b, ctx, func(ctx *context.Context, xt, t, states, pooled, bias *graph.Node) *graph.Node {
			return g.DenoiseHooked(ctx, xt, t, family.Cond{States: states, Pooled: pooled}, ipcaHook{bias: bias})
		})
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("1prompt1story: %w", err)
	}
	return s, nil
}

// Close releases the compiled graphs.
func (s *OnePromptSampler) Close() {
	for _, e := range []*context.Exec{s.textExec, s.denoiseExec} {
		if e != nil {
			e.Finalize()
		}
	}
	s.textExec, s.denoiseExec = nil, nil
}

// ipcaHook is plain self-attention and cross-attention over the states and the identity
// prompt's states behind them, with bias [rows, 1, 1, 2S] masking the reference keys that are
// not identity tokens (all of them in unconditional rows and with IPCA off).
type ipcaHook struct{ bias *graph.Node }

func (ipcaHook) SelfAttention(_ int, q, k, v *graph.Node) *graph.Node {
	return tiny.Attend(q, k, v, nil)
}

func (h ipcaHook) CrossAttention(_ int, q, k, v *graph.Node) *graph.Node {
	return tiny.Attend(q, k, v, h.bias)
}

// Story generates the frames of one story: identity is the identity prompt ("a man"), frames the
// frames' contexts, seeds their noise streams (with SameNoise every frame takes seeds[0]). It
// returns one latent per frame, or an error naming the bad prompt or the failing step.
func (s *OnePromptSampler) Story(identity string, frames []string, seeds []uint64) ([][]float32, error) {
	if s.textExec == nil {
		return nil, fmt.Errorf("1prompt1story: sampler is closed")
	}
	if len(seeds) != len(frames) {
		return nil, fmt.Errorf("1prompt1story: %d seeds for %d frames", len(seeds), len(frames))
	}
	tok := s.g.Tokenizer()
	prompts, err := Consolidate(tok, identity, frames, s.opt.Window)
	if err != nil {
		return nil, err
	}
	n, L := len(frames), tok.MaxLength()
	guided := s.so.Guidance != 1
	rows := n
	if guided {
		rows = 2 * n
	}
	// Text rows: the n consolidated prompts, the identity prompt, the empty prompt.
	idEnc := tok.Encode(identity).IDs
	empty := []int32{tok.BOS(), tok.EOS()}
	all := make([][]int32, 0, n+2)
	for _, p := range prompts {
		all = append(all, p.IDs)
	}
	all = append(all, idEnc, empty)
	ids, eos := make([]int32, len(all)*L), make([]int32, len(all))
	for r, p := range all {
		fitted, e, trunc := text.Fit(p, L, tok.EOS(), tok.Pad())
		if trunc || e < 0 {
			return nil, fmt.Errorf("1prompt1story: prompt ids %v do not fit %d tokens", p, L)
		}
		copy(ids[r*L:], fitted)
		eos[r] = int32(e)
	}
	enc, err := s.textExec.Exec(tensors.FromFlatDataAndDimensions(ids, len(all), L), tensors.FromFlatDataAndDimensions(eos, len(all)))
	if err != nil {
		return nil, fmt.Errorf("1prompt1story: text encoding: %w", err)
	}
	states, err := tensors.CopyFlatData[float32](enc[0])
	if err != nil {
		return nil, err
	}
	pooledAll, err := tensors.CopyFlatData[float32](enc[1])
	if err != nil {
		return nil, err
	}
	sd := enc[0].Shape().Dimensions // [n+2, S, D]
	S, D, P := sd[1], sd[2], enc[1].Shape().Dimensions[1]
	for _, t := range enc {
		t.FinalizeAll()
	}
	rowsOf := func(pos []int) []int { // the state rows of token positions (both with WordSkip)
		var out []int
		for _, p := range pos {
			for off := 0; off < S; off += L {
				out = append(out, off+p)
			}
		}
		return out
	}
	row := func(r int) []float32 { return states[r*S*D : (r+1)*S*D] }
	cond := make([]float32, rows*2*S*D)
	pooled := make([]float32, rows*P)
	bias := make([]float32, rows*2*S)
	for i, p := range prompts {
		x := append([]float32(nil), row(i)...)
		var tail []int // EOS and padding positions
		for k := len(p.IDs) - 1; k < L; k++ {
			tail = append(tail, k)
		}
		for _, sup := range p.Suppress {
			SVR(x, D, rowsOf(append(append([]int(nil), sup...), tail...)), s.opt.AlphaWeaken, s.opt.BetaWeaken)
		}
		SVR(x, D, rowsOf(append(append([]int(nil), p.Express...), tail...)), s.opt.AlphaEnhance, s.opt.BetaEnhance)
		copy(cond[i*2*S*D:], x)
		copy(cond[(i*2+1)*S*D:], row(n)) // the identity prompt's states behind
		copy(pooled[i*P:], pooledAll[i*P:(i+1)*P])
		keep := make([]bool, S)
		if s.opt.IPCA {
			for _, r := range rowsOf(p.Identity) {
				keep[r] = true
			}
		}
		copy(bias[i*2*S+S:], maskBias(keep))
	}
	if guided {
		for i := n; i < 2*n; i++ {
			copy(cond[i*2*S*D:], row(n+1))
			copy(cond[(i*2+1)*S*D:], row(n+1))
			copy(pooled[i*P:], pooledAll[(n+1)*P:(n+2)*P])
			copy(bias[i*2*S+S:], maskBias(make([]bool, S)))
		}
	}
	condT := tensors.FromFlatDataAndDimensions(cond, rows, 2*S, D)
	pooledT := tensors.FromFlatDataAndDimensions(pooled, rows, P)
	biasT := tensors.FromFlatDataAndDimensions(bias, rows, 1, 1, 2*S)
	defer func() {
		for _, t := range []*tensors.Tensor{condT, pooledT, biasT} {
			t.FinalizeAll()
		}
	}()
	latentDims := append([]int{rows}, s.g.Info().LatentShape...)
	xin := make([]float32, rows*s.dim)
	tIDs := make([]int32, rows)
	eps := func(xt []float32, t int) ([]float32, error) {
		copy(xin, xt)
		if guided {
			copy(xin[n*s.dim:], xt)
		}
		for r := range tIDs {
			tIDs[r] = int32(t)
		}
		outs, err := s.denoiseExec.Exec(tensors.FromFlatDataAndDimensions(xin, latentDims...), tensors.FromFlatDataAndDimensions(tIDs, rows), condT, pooledT, biasT)
		if err != nil {
			return nil, err
		}
		pred, err := tensors.CopyFlatData[float32](outs[0])
		for _, o := range outs {
			o.FinalizeAll()
		}
		if err != nil || !guided {
			return pred, err
		}
		return diffusion.Guide(pred[n*s.dim:], pred[:n*s.dim], s.so.Guidance), nil
	}
	streams := make([]uint64, n)
	for i := range streams {
		streams[i] = seeds[i]
		if s.opt.SameNoise {
			streams[i] = seeds[0]
		}
	}
	smp := diffusion.Sampler{Schedule: s.sch, Steps: s.so.Steps, Spacing: s.so.Spacing, Eta: s.so.Eta, Seed: s.so.Seed}
	lat, err := smp.Sample(streams, s.dim, eps)
	if err != nil {
		return nil, fmt.Errorf("1prompt1story: %w", err)
	}
	out := make([][]float32, n)
	for i := range out {
		out[i] = lat[i*s.dim : (i+1)*s.dim : (i+1)*s.dim]
	}
	return out, nil
}
