// Package baselines holds the training-free batch methods the paper compares CoCoIns with
// (StoryDiffusion, ConsiStory; 1Prompt1Story beside them), each built on the tiny generator's
// attention hook (tiny.Hook): the images of one identity are denoised in one batch, and a
// method changes how their self-attention (and cross-attention) reads the batch. One file per
// method says the mechanism, where its public code is and where this version departs.
//
// GroupSampler runs the DDIM loop of one group of images with a Mechanism. It samples exactly as
// family.Sampler does (the same text encoding, unconditional rows, guidance and noise streams),
// so a mechanism that changes nothing gives the plain sampler's latents bit for bit.
//
// Symbols used in this package's docs:
//
//	n        images of the group (one identity); i, j index them
//	L        latent tokens of one image (H·W of the latent), S text states
//	H, dh    attention heads and their width
//	rows     denoiser rows: copies × n, then the same again for the unconditional branch
//	step i   DDIM step 0 … steps-1 (train timestep t falls as i rises)
package baselines

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
)

// Layout is the shape of one group's denoiser batch as a hook sees it. Row r holds branch
// r / (Copies·Images) (0 conditional, 1 unconditional), copy (r / Images) % Copies and image
// r % Images.
type Layout struct {
	Images   int // n
	Copies   int // trajectories per image: 1, or 2 where a method runs a plain twin of each image
	Branches int // 2 with classifier-free guidance, else 1
	Tokens   int // L
	Heads    int // H
	HeadDim  int // dh
	Depth    int // denoiser blocks
	Text     int // S, text states per row: Prompt, or 2·Prompt with the word skip
	Prompt   int // token positions of a prompt (the text encoder's MaxLength)
}

// Rows is the number of denoiser rows.
func (l Layout) Rows() int { return l.Branches * l.Copies * l.Images }

// Row is the row of image i in copy c of branch b.
func (l Layout) Row(b, c, i int) int { return (b*l.Copies+c)*l.Images + i }

// Group is one group of images generated together: requests (prompt and noise seed per image)
// and, per request, the token positions of its subject word in the prompt's ids (for methods
// that locate the subject through cross-attention; empty when unused).
type Group struct {
	Requests []family.SampleRequest
	Subject  [][]int
}

// Mechanism is a batch method as GroupSampler runs it: the hook it builds into the denoiser
// graph, the graph inputs it feeds at every step and the outputs it reads back.
type Mechanism interface {
	// Copies is the number of trajectories per image (1, or 2 for a plain twin).
	Copies() int
	// Inputs returns the shapes of the extra graph inputs for the layout (float32 tensors).
	Inputs(l Layout) []shapes.Shape
	// Hook returns the hook of one graph build, given the extra input nodes, and a function
	// that returns the output nodes the hook made once the denoiser graph is built.
	Hook(l Layout, in []*graph.Node) (h tiny.Hook, outputs func() []*graph.Node)
	// Start begins a group's sampling; the Run holds its host state.
	Start(l Layout, g Group) (Run, error)
}

// TextEditor is implemented by a Mechanism that changes a group's text conditioning before
// the denoising starts (1Prompt1Story's reweighting of the text states, or states of a second
// prompt appended for its cross-attention). It gets the encoded states [rows, S, D] and pooled
// states [rows, P] of the group's rows and returns those to use; the number of states S may
// change (Layout.Text is then the new S).
type TextEditor interface {
	EditText(l Layout, g Group, states, pooled *tensors.Tensor) (*tensors.Tensor, *tensors.Tensor, error)
}

// Run is the host side of one group's sampling.
type Run interface {
	// Step returns the extra inputs at step i (train timestep t), or plain = true to run the
	// step through the plain denoiser (no hook, no inputs, no outputs).
	Step(i, t int) (in []*tensors.Tensor, plain bool, err error)
	// Observe receives the hook's outputs of a hooked step i.
	Observe(i int, out []*tensors.Tensor) error
}

// GroupSampler samples groups of images with the tiny generator and a Mechanism.
type GroupSampler struct {
	g     *tiny.Generator
	mech  Mechanism
	opt   family.SampleOptions
	sched *diffusion.Schedule
	dim   int

	textExec, plainExec, hookExec *context.Exec
}

// NewGroupSampler prepares sampling with g and mech under opt (Steps, Guidance, Eta, Spacing
// and Seed as in family.SampleOptions; BatchSize is not used: a group is one batch). It returns
// an error when an option is out of range or the backend cannot start.
func NewGroupSampler(g *tiny.Generator, mech Mechanism, opt family.SampleOptions) (*GroupSampler, error) {
	if opt.Steps < 1 {
		return nil, fmt.Errorf("baselines: steps = %d, want >= 1", opt.Steps)
	}
	if c := mech.Copies(); c < 1 || c > 2 {
		return nil, fmt.Errorf("baselines: mechanism runs %d copies of each image, want 1 or 2", c)
	}
	info := g.Info()
	sched, err := diffusion.NewSchedule(info.Schedule, info.TrainSteps)
	if err != nil {
		return nil, fmt.Errorf("baselines: %w", err)
	}
	smp := diffusion.Sampler{Schedule: sched, Steps: opt.Steps, Spacing: opt.Spacing, Eta: opt.Eta}
	if _, err := smp.Timesteps(); err != nil {
		return nil, fmt.Errorf("baselines: %w", err)
	}
	b, err := engine.Backend()
	if err != nil {
		return nil, err
	}
	s := &GroupSampler{g: g, mech: mech, opt: opt, sched: sched, dim: 1}
	for _, d := range info.LatentShape {
		s.dim *= d
	}
	ctx := g.Context().Reuse()
	s.textExec, err = context.NewExec(b, ctx, func(ctx *context.Context, ids, eos *graph.Node) []*graph.Node {
		c := g.Encode(ctx, g.Embed(ctx, ids), eos)
		return []*graph.Node{c.States, c.Pooled}
	})
	if err == nil {
		s.plainExec, err = context.NewExec(b, ctx, func(ctx *context.Context, xt, t, states, pooled *graph.Node) *graph.Node {
			return g.Denoise(ctx, xt, t, family.Cond{States: states, Pooled: pooled})
		})
	}
	if err == nil {
		s.hookExec, err = context.NewExec(b, ctx, s.hookGraph)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("baselines: %w", err)
	}
	return s, nil
}

// Close releases the compiled graphs.
func (s *GroupSampler) Close() {
	for _, e := range []*context.Exec{s.textExec, s.plainExec, s.hookExec} {
		if e != nil {
			e.Finalize()
		}
	}
	s.textExec, s.plainExec, s.hookExec = nil, nil, nil
}

func (s *GroupSampler) guided() bool { return s.opt.Guidance != 1 }

// layout is the layout of a group of n images.
func (s *GroupSampler) layout(n int) Layout {
	cfg := s.g.Config()
	l := Layout{Images: n, Copies: s.mech.Copies(), Branches: 1, Tokens: cfg.LatentShape[0] * cfg.LatentShape[1],
		Heads: cfg.Heads, HeadDim: cfg.Width / cfg.Heads, Depth: cfg.Depth, Text: cfg.MaxLength, Prompt: cfg.MaxLength}
	if cfg.WordSkip {
		l.Text *= 2
	}
	if s.guided() {
		l.Branches = 2
	}
	return l
}

// hookGraph: inputs x_t [rows, …], t [rows], states, pooled, then the mechanism's inputs;
// outputs ε̂ and the mechanism's outputs.
func (s *GroupSampler) hookGraph(ctx *context.Context, in []*graph.Node) []*graph.Node {
	l := s.layout(in[0].Shape().Dimensions[0] / (s.mech.Copies() * s.branches()))
	l.Text = in[2].Shape().Dimensions[1]
	hook, outputs := s.mech.Hook(l, in[4:])
	eps := s.g.DenoiseHooked(ctx, in[0], in[1], family.Cond{States: in[2], Pooled: in[3]}, hook)
	return append([]*graph.Node{eps}, outputs()...)
}

func (s *GroupSampler) branches() int {
	if s.guided() {
		return 2
	}
	return 1
}

// Sample returns the latents of the group's images, in order. It returns an error naming the
// request whose prompt is invalid, or the step at which the model or the mechanism failed.
func (s *GroupSampler) Sample(grp Group) ([][]float32, error) {
	if s.textExec == nil {
		return nil, fmt.Errorf("baselines: sampler is closed")
	}
	n := len(grp.Requests)
	if n == 0 {
		return nil, fmt.Errorf("baselines: empty group")
	}
	l := s.layout(n)
	tok := s.g.Tokenizer()
	L := tok.MaxLength()
	rows := l.Rows()
	ids, eos := make([]int32, rows*L), make([]int32, rows)
	empty, emptyEOS, _ := text.Fit([]int32{tok.BOS(), tok.EOS()}, L, tok.EOS(), tok.Pad())
	for i, r := range grp.Requests {
		if len(r.Insertions) > 0 {
			return nil, fmt.Errorf("baselines: request %d has pseudo-words; batch methods take plain prompts", i)
		}
		for k, id := range r.IDs {
			if id < 0 || int(id) >= tok.VocabSize() {
				return nil, fmt.Errorf("baselines: request %d: token %d is id %d, outside the vocabulary [0, %d)", i, k, id, tok.VocabSize())
			}
		}
		fitted, e, _ := text.Fit(r.IDs, L, tok.EOS(), tok.Pad())
		if e < 0 {
			return nil, fmt.Errorf("baselines: request %d: token ids %v do not end with EOS (%d)", i, r.IDs, tok.EOS())
		}
		for c := range l.Copies {
			row := l.Row(0, c, i)
			copy(ids[row*L:], fitted)
			eos[row] = int32(e)
			if l.Branches == 2 {
				row = l.Row(1, c, i)
				copy(ids[row*L:], empty)
				eos[row] = int32(emptyEOS)
			}
		}
	}
	cond, err := s.textExec.Exec(tensors.FromFlatDataAndDimensions(ids, rows, L), tensors.FromFlatDataAndDimensions(eos, rows))
	if err != nil {
		return nil, fmt.Errorf("baselines: text encoding: %w", err)
	}
	owned := cond // released at the end, with what an editor returns
	defer func() {
		for _, c := range owned {
			c.FinalizeAll()
		}
	}()
	if ed, ok := s.mech.(TextEditor); ok {
		states, pooled, err := ed.EditText(l, grp, cond[0], cond[1])
		if err != nil {
			return nil, err
		}
		for _, t := range []*tensors.Tensor{states, pooled} {
			if t != cond[0] && t != cond[1] {
				owned = append(owned, t)
			}
		}
		cond = []*tensors.Tensor{states, pooled}
		l.Text = states.Shape().Dimensions[1]
	}
	run, err := s.mech.Start(l, grp)
	if err != nil {
		return nil, err
	}

	traj := l.Copies * n // latents the DDIM loop carries
	latentDims := append([]int{rows}, s.g.Info().LatentShape...)
	xin := make([]float32, rows*s.dim)
	tIDs := make([]int32, rows)
	step := 0
	eps := func(xt []float32, t int) ([]float32, error) {
		copy(xin, xt)
		if l.Branches == 2 {
			copy(xin[traj*s.dim:], xt)
		}
		for r := range tIDs {
			tIDs[r] = int32(t)
		}
		extra, plain, err := run.Step(step, t)
		if err != nil {
			return nil, err
		}
		args := []any{tensors.FromFlatDataAndDimensions(xin, latentDims...), tensors.FromFlatDataAndDimensions(tIDs, rows), cond[0], cond[1]}
		exec := s.plainExec
		if !plain {
			exec = s.hookExec
			for _, e := range extra {
				args = append(args, e)
			}
		}
		outs, err := exec.Exec(args...)
		if err != nil {
			return nil, err
		}
		defer func() {
			for _, o := range outs {
				o.FinalizeAll()
			}
		}()
		if !plain {
			if err := run.Observe(step, outs[1:]); err != nil {
				return nil, err
			}
		}
		step++
		pred, err := tensors.CopyFlatData[float32](outs[0])
		if err != nil {
			return nil, err
		}
		if l.Branches == 1 {
			return pred, nil
		}
		return diffusion.Guide(pred[traj*s.dim:], pred[:traj*s.dim], s.opt.Guidance), nil
	}
	streams := make([]uint64, traj)
	for c := range l.Copies {
		for i, r := range grp.Requests {
			streams[c*n+i] = r.Seed // a twin starts from its image's noise
		}
	}
	smp := diffusion.Sampler{Schedule: s.sched, Steps: s.opt.Steps, Spacing: s.opt.Spacing, Eta: s.opt.Eta, Seed: s.opt.Seed}
	lat, err := smp.Sample(streams, s.dim, eps)
	if err != nil {
		return nil, fmt.Errorf("baselines: %w", err)
	}
	out := make([][]float32, n)
	for i := range out {
		out[i] = lat[i*s.dim : (i+1)*s.dim : (i+1)*s.dim]
	}
	return out, nil
}

// Timesteps returns the train timesteps of the sampler's steps, in order.
func (s *GroupSampler) Timesteps() ([]int, error) {
	return diffusion.Sampler{Schedule: s.sched, Steps: s.opt.Steps, Spacing: s.opt.Spacing, Eta: s.opt.Eta}.Timesteps()
}

// Plain is the Mechanism that changes nothing: every step runs the plain denoiser. Its group
// sampler gives family.Sampler's latents.
type Plain struct{}

// Copies is 1.
func (Plain) Copies() int { return 1 }

// Inputs is none.
func (Plain) Inputs(Layout) []shapes.Shape { return nil }

// Hook is tiny.PlainAttention.
func (Plain) Hook(Layout, []*graph.Node) (tiny.Hook, func() []*graph.Node) {
	return tiny.PlainAttention{}, func() []*graph.Node { return nil }
}

// Start returns a run whose every step is plain.
func (Plain) Start(Layout, Group) (Run, error) { return plainRun{}, nil }

type plainRun struct{}

func (plainRun) Step(int, int) ([]*tensors.Tensor, bool, error) { return nil, true, nil }
func (plainRun) Observe(int, []*tensors.Tensor) error           { return nil }

// groupKeys gathers, for every row, the tokens of all images of its branch and copy: x
// [rows, L, H, dh] becomes [rows, n·L, H, dh], image j's tokens at j·L … (j+1)·L-1.
func groupKeys(x *graph.Node, l Layout) *graph.Node {
	d := x.Shape().Dimensions
	G, n := l.Branches*l.Copies, l.Images
	all := graph.Reshape(x, G, 1, n*d[1], d[2], d[3])
	all = graph.BroadcastToDims(all, G, n, n*d[1], d[2], d[3])
	return graph.Reshape(all, G*n, n*d[1], d[2], d[3])
}

// maskBias turns keep flags (1 keep, 0 drop) into an additive score bias (0 or -1e9).
func maskBias(keep []bool) []float32 {
	b := make([]float32, len(keep))
	for i, k := range keep {
		if !k {
			b[i] = -1e9
		}
	}
	return b
}
