package sdxl

import (
	"fmt"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// openSessions starts the ONNX Runtime sessions of both rewritten text encoders and of the
// UNet (as exported: ONNX Runtime reads its external data itself), once.
func (g *Generator) openSessions() error {
	g.sessOnce.Do(func() {
		for k, e := range g.enc {
			g.te[k], g.sessErr = openSession(e.path, e.graph, g.opt, []want{{inputEmbeds, "float32", 3, 2, int64(e.dim)}})
			if g.sessErr != nil {
				return
			}
		}
		g.unet, g.sessErr = openSession(g.l.path(dirUNet, ModelFile), nil, g.opt, nil)
	})
	return g.sessErr
}

// NewHostRunner returns the ONNX Runtime path of family.Sampler: the text encoders and the UNet
// run as ONNX Runtime sessions on the configured providers. rows is not needed (the exports
// have a dynamic batch). It returns an error when a session cannot start.
func (g *Generator) NewHostRunner(rows int) (family.HostRunner, error) {
	if err := g.openSessions(); err != nil {
		return nil, err
	}
	return runner{g}, nil
}

// runner is the HostRunner of a Generator; the sessions are the generator's (ONNX Runtime's Run
// is safe for concurrent use), so Close leaves them open.
type runner struct{ g *Generator }

// cond is a batch's conditioning: the per-token states of both encoders side by side
// [N, L, D1+D2], the pooled text_embeds [N, P] and the time ids [N, 6].
type cond struct {
	n, length   int
	states      []float32
	pooled      []float32
	pooledWidth int
	timeIDs     []float32
}

// EncodeText looks up the rows' token embeddings (encoder 2 with its own padding), places the
// pseudo-words by the rows' plans, and runs both text encoders at the rows' EOS indices (eq. 4).
// With force_zeros_for_empty_prompt, rows of the empty prompt get zero conditioning, as
// diffusers' SDXL pipeline gives its unconditional branch.
func (r runner) EncodeText(b family.TextBatch) (family.HostCond, error) {
	g := r.g
	N, L := b.Rows, b.Length
	eos := make([]int64, N)
	for i, e := range b.EOS {
		eos[i] = int64(e)
	}
	c := &cond{n: N, length: L, timeIDs: g.timeIDs(N)}
	var states [2][]float32
	for k, e := range g.enc {
		embeds := make([]float32, 0, N*L*e.dim)
		for row := range N {
			ids := b.IDs[row*L : (row+1)*L]
			if k == 1 {
				ids = padFor(ids, g.tok.EOS(), e.pad)
			}
			tok := make([]float32, L*e.dim)
			for i, id := range ids {
				if id < 0 || int(id) >= e.vocab {
					return nil, fmt.Errorf("row %d: token %d is id %d, outside the vocabulary [0, %d)", row, i, id, e.vocab)
				}
				copy(tok[i*e.dim:], e.table[int(id)*e.dim:(int(id)+1)*e.dim])
			}
			x, err := b.Row(row, k, tok, e.dim)
			if err != nil {
				return nil, err
			}
			embeds = append(embeds, x...)
		}
		in := map[string]ort.Tensor{inputEmbeds: ort.NewTensor([]int64{int64(N), int64(L), int64(e.dim)}, embeds)}
		for _, name := range e.inputs {
			if name == inputEOS {
				in[inputEOS] = ort.NewTensor([]int64{int64(N)}, eos)
			}
		}
		out, err := g.te[k].Run(in)
		if err != nil {
			return nil, err
		}
		if states[k], err = ort.Data[float32](out[e.states]); err != nil {
			return nil, fmt.Errorf("%s: output %s: %w", e.path, e.states, err)
		}
		if len(states[k]) != N*L*e.dim {
			return nil, fmt.Errorf("%s: output %s has shape %v, want [%d, %d, %d]", e.path, e.states, out[e.states].Shape, N, L, e.dim)
		}
		if e.pooled != "" {
			p := out[e.pooled]
			if c.pooled, err = ort.Data[float32](p); err != nil || len(p.Shape) != 2 || p.Shape[0] != int64(N) {
				return nil, fmt.Errorf("%s: output %s has shape %v, want [%d, width] (%v)", e.path, e.pooled, p.Shape, N, err)
			}
			c.pooledWidth = int(p.Shape[1])
		}
	}
	d1, d2 := g.enc[0].dim, g.enc[1].dim
	c.states = make([]float32, N*L*(d1+d2))
	for i := range N * L { // concatenate along the width, as diffusers' torch.concat(prompt_embeds_list, dim=-1)
		copy(c.states[i*(d1+d2):], states[0][i*d1:(i+1)*d1])
		copy(c.states[i*(d1+d2)+d1:], states[1][i*d2:(i+1)*d2])
	}
	if g.l.forceZeros() {
		for row := range N {
			if isEmptyPrompt(b.EOS[row]) {
				clear(c.states[row*L*(d1+d2) : (row+1)*L*(d1+d2)])
				clear(c.pooled[row*c.pooledWidth : (row+1)*c.pooledWidth])
			}
		}
	}
	return c, nil
}

// isEmptyPrompt reports whether a row with EOS at eos (after insertions) is the empty prompt:
// BOS, EOS and nothing between, so no pseudo-word either.
func isEmptyPrompt(eos int32) bool { return eos == 1 }

// Denoise runs the UNet on xt [N, C, h, w] at timestep t under the batch's conditioning.
func (r runner) Denoise(xt []float32, t int, hc family.HostCond) ([]float32, error) {
	g := r.g
	c, ok := hc.(*cond)
	if !ok {
		return nil, fmt.Errorf("sdxl: denoise: conditioning of type %T, want the runner's own", hc)
	}
	shape := g.ae.latentShape()
	n := c.n
	if len(xt) != n*shape[0]*shape[1]*shape[2] {
		return nil, fmt.Errorf("sdxl: denoise: %d latent values for %d rows of %v", len(xt), n, shape)
	}
	in := map[string]ort.Tensor{
		unetSample:   ort.NewTensor([]int64{int64(n), int64(shape[0]), int64(shape[1]), int64(shape[2])}, xt),
		unetTimestep: g.timestepTensor(t, n),
		unetStates:   ort.NewTensor([]int64{int64(n), int64(c.length), int64(g.enc[0].dim + g.enc[1].dim)}, c.states),
		unetPooled:   ort.NewTensor([]int64{int64(n), int64(c.pooledWidth)}, c.pooled),
		unetTimeIDs:  ort.NewTensor([]int64{int64(n), timeIDsLen}, c.timeIDs),
	}
	out, err := g.unet.Run(in)
	if err != nil {
		return nil, err
	}
	return ort.Data[float32](out[unetOut])
}

// timestepTensor is the timestep as the UNet export takes it: a scalar or one per row, float32,
// int64 or int32.
func (g *Generator) timestepTensor(t, n int) ort.Tensor {
	var shape []int64
	rows := 1
	if len(g.unetTime.Shape) == 1 {
		shape, rows = []int64{int64(n)}, n
	} else {
		shape = []int64{}
	}
	switch g.unetTime.DType {
	case "int64":
		v := make([]int64, rows)
		for i := range v {
			v[i] = int64(t)
		}
		return ort.NewTensor(shape, v)
	case "int32":
		v := make([]int32, rows)
		for i := range v {
			v[i] = int32(t)
		}
		return ort.NewTensor(shape, v)
	}
	v := make([]float32, rows)
	for i := range v {
		v[i] = float32(t)
	}
	return ort.NewTensor(shape, v)
}

// Close does nothing: the sessions belong to the generator (see Generator.Close).
func (r runner) Close() error { return nil }
