package sdxl

import (
	"fmt"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
)

// The generator's variables in its GoMLX context: the token embedding tables under
// /sdxl/<encoder>/token_embedding, the imported graphs' weights under /sdxl_<component>/.
const (
	scopeRoot = "/sdxl"
	tableVar  = "token_embedding"
)

// Context returns the GoMLX context holding the generator's frozen weights. The first call
// imports the rewritten text encoders and the UNet (for training through them; sampling does not
// need it); when that fails, the graph methods report the error.
func (g *Generator) Context() *context.Context {
	g.gomlxOnce.Do(func() {
		g.ctx = context.New()
		g.gomlxErr = g.importGraphs()
	})
	return g.ctx
}

// importErr returns the error of the GoMLX import, making it first if needed.
func (g *Generator) importErr() error {
	g.Context()
	if g.gomlxErr != nil {
		return fmt.Errorf("sdxl: importing the ONNX graphs into GoMLX (needed to train through them): %w", g.gomlxErr)
	}
	return nil
}

// importGraphs creates the token tables and the imported graphs' weights in g.ctx, all frozen.
func (g *Generator) importGraphs() error {
	for _, e := range g.enc {
		t := tensors.FromFlatDataAndDimensions(e.table, e.vocab, e.dim)
		g.ctx.InAbsPath(scopeRoot+"/"+e.name).Checked(false).VariableWithValue(tableVar, t).SetTrainable(false)
	}
	for i, e := range g.enc {
		m, err := onnxgraph.Decode(e.graph, filepath.Dir(e.path))
		if err != nil {
			return fmt.Errorf("%s (rewritten): %w", e.path, err)
		}
		m.Path = e.path
		if g.imported[i], err = engine.ImportGraph(m); err != nil {
			return fmt.Errorf("%s (rewritten): %w", e.path, err)
		}
	}
	path := g.l.path(dirUNet, ModelFile)
	m, err := onnxgraph.Read(path)
	if err != nil {
		return err
	}
	if err := batchedTimestep(m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if g.imported[2], err = engine.ImportGraph(m); err != nil {
		return err
	}
	for i, imp := range g.imported {
		imp.Scope = "sdxl_" + []string{g.enc[0].name, g.enc[1].name, dirUNet}[i]
	}
	return g.materialize()
}

// materialize builds (without compiling) one graph through every imported network so that
// their weights are created in the context and frozen while the staged files still exist.
func (g *Generator) materialize() error {
	b, err := engine.Backend()
	if err != nil {
		return err
	}
	gr := NewGraph(b, "sdxl_import")
	defer gr.Finalize()
	return catch(func() {
		L := g.tok.MaxLength()
		ids := Parameter(gr, "ids", shapes.Make(dtypes.Int32, 1, L))
		eos := Parameter(gr, "eos", shapes.Make(dtypes.Int32, 1))
		lat := g.ae.latentShape()
		xt := Parameter(gr, "xt", shapes.Make(dtypes.Float32, 1, lat[0], lat[1], lat[2]))
		t := Parameter(gr, "t", shapes.Make(dtypes.Int32, 1))
		ctx := g.ctx.Checked(false) // creates the imported weights
		cond := g.encode(ctx, g.embed(ctx, ids), eos)
		g.denoise(ctx, xt, t, cond)
	})
}

// Embed looks up the token embeddings of ids [B, L] (int32) in both tables, before position
// embeddings: [B, L, 768] and [B, L, 1280] for SDXL. Encoder 2's rows are first re-padded with
// its own pad token after EOS. It panics (GoMLX's way; Exec returns it as an error) when the
// import failed.
func (g *Generator) Embed(ctx *context.Context, ids *Node) []*Node {
	if err := g.importErr(); err != nil {
		panic(err)
	}
	return g.embed(ctx, ids)
}

func (g *Generator) embed(ctx *context.Context, ids *Node) []*Node {
	out := make([]*Node, len(g.enc))
	for k, e := range g.enc {
		x := ids
		if k == 1 {
			x = repad(ids, g.tok.EOS(), e.pad)
		}
		table := ctx.InAbsPath(scopeRoot + "/" + e.name).GetVariable(tableVar)
		if table == nil {
			panic(fmt.Errorf("sdxl: the context has no %s/%s/%s: build with the generator's Context()", scopeRoot, e.name, tableVar))
		}
		out[k] = Gather(table.ValueGraph(ids.Graph()), InsertAxes(x, -1))
	}
	return out
}

// repad sets every position of ids [B, L] after the row's first EOS to pad.
func repad(ids *Node, eos, pad int32) *Node {
	isEOS := ConvertDType(Equal(ids, Scalar(ids.Graph(), dtypes.Int32, eos)), dtypes.Int32)
	before := Sub(CumSum(isEOS, 1), isEOS) // EOS tokens strictly before each position
	return Where(GreaterThan(before, ZerosLike(before)), BroadcastToDims(Scalar(ids.Graph(), dtypes.Int32, pad), ids.Shape().Dimensions...), ids)
}

// Encode runs both rewritten text encoders on the token embeddings embeds (pseudo-words
// inserted) with EOS at eos [B] (int32): States are the penultimate hidden states of both,
// concatenated to [B, L, D1+D2]; Pooled is encoder 2's text_embeds [B, P]; Extra["time_ids"]
// is SDXL's micro-conditioning [B, 6]. Rows of the empty prompt get zero conditioning when the
// export forces zeros for it (see the host runner). It panics when the import failed.
func (g *Generator) Encode(ctx *context.Context, embeds []*Node, eos *Node) family.Cond {
	if err := g.importErr(); err != nil {
		panic(err)
	}
	return g.encode(ctx, embeds, eos)
}

func (g *Generator) encode(ctx *context.Context, embeds []*Node, eos *Node) family.Cond {
	if len(embeds) != 2 {
		panic(fmt.Errorf("sdxl: Encode got %d embedding nodes, want 2 (text_encoder, text_encoder_2)", len(embeds)))
	}
	ctx = ctx.InAbsPath(context.RootScope)
	eos64 := ConvertDType(eos, dtypes.Int64)
	var states [2]*Node
	var pooled *Node
	for k, e := range g.enc {
		feed := map[string]*Node{inputEmbeds: embeds[k], inputEOS: eos64}
		imp := g.imported[k]
		args := make([]*Node, len(imp.InputNames))
		for i, name := range imp.InputNames {
			args[i] = feed[name]
		}
		outs := imp.Call(ctx, args...)
		for i, name := range imp.OutputNames {
			switch name {
			case e.states:
				states[k] = outs[i]
			case e.pooled:
				pooled = outs[i]
			}
		}
	}
	c := family.Cond{States: Concatenate(states[:], -1), Pooled: pooled}
	B := c.States.Shape().Dimensions[0]
	if g.l.forceZeros() {
		keep := ConvertDType(NotEqual(eos, OnesLike(eos)), dtypes.Float32) // 0 for the empty prompt
		c.States = Mul(c.States, Reshape(keep, B, 1, 1))
		c.Pooled = Mul(c.Pooled, Reshape(keep, B, 1))
	}
	c.Extra = map[string]*Node{unetTimeIDs: Const(c.States.Graph(), tensors.FromFlatDataAndDimensions(g.timeIDs(B), B, timeIDsLen))}
	return c
}

// Denoise runs the imported UNet: the noise prediction for x_t [B, 4, h, w] at timesteps t [B]
// (int32) under cond. It panics when the import failed.
func (g *Generator) Denoise(ctx *context.Context, xt, t *Node, cond family.Cond) *Node {
	if err := g.importErr(); err != nil {
		panic(err)
	}
	return g.denoise(ctx, xt, t, cond)
}

func (g *Generator) denoise(ctx *context.Context, xt, t *Node, cond family.Cond) *Node {
	dt := dtypes.Float32
	switch g.unetTime.DType {
	case "int64":
		dt = dtypes.Int64
	case "int32":
		dt = dtypes.Int32
	}
	feed := map[string]*Node{
		unetSample: xt, unetTimestep: ConvertDType(t, dt), unetStates: cond.States,
		unetPooled: cond.Pooled, unetTimeIDs: cond.Extra[unetTimeIDs],
	}
	imp := g.imported[2]
	args := make([]*Node, len(imp.InputNames))
	for i, name := range imp.InputNames {
		if args[i] = feed[name]; args[i] == nil {
			panic(fmt.Errorf("sdxl: %s: input %s has no value (cond lacks it?)", imp.Path, name))
		}
	}
	return imp.Call(ctx.InAbsPath(context.RootScope), args...)[0]
}

// catch runs fn and turns a panic (GoMLX's way of failing while building graphs) into an error.
func catch(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = e
			} else {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	fn()
	return nil
}
