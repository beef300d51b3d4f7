package sdxl

import (
	"fmt"
	"slices"
	"strings"
)

// Graph surgery on the standard exports, at load time.
//
// CoCoIns inserts a pseudo-word among a prompt's token embeddings before position embeddings are
// added (eq. 4), so each text encoder must be a function of token embeddings and of the index
// the pooled output is read at (EOS moves by one per inserted word). The optimum export of
// CLIPTextModel / CLIPTextModelWithProjection takes input_ids instead: its token embedding is a
// Gather of the embedding table by the ids, and its pooling reads the last hidden state at
// ArgMax(ids) (transformers pools at argmax(input_ids) for SDXL's encoders, whose legacy
// eos_token_id is 2, and at argmax(ids == eos) otherwise). embeddingsInputs cuts the graph
// there: the Gather's output becomes the input inputs_embeds, the ArgMax's output the input
// eos_index, and every remaining use of input_ids (its Shape, for the batch size and sequence
// length) reads the same dimensions from inputs_embeds.

// Names of the inputs the surgery gives a text encoder.
const (
	inputEmbeds = "inputs_embeds" // [batch, sequence, width] token embeddings, as transformers names them
	inputEOS    = "eos_index"     // [batch] int64: the position pooled at
)

// passThrough are the ops through which ids flow unchanged (in value or in layout) on the way to
// the token Gather or to the pooling ArgMax.
var passThrough = map[string]bool{"Reshape": true, "Cast": true, "Squeeze": true, "Unsqueeze": true, "Identity": true, "Flatten": true, "Equal": true}

// embeddingsInputs rewrites a text encoder that takes input_ids into one that takes
// inputs_embeds and eos_index, keeps only the outputs in keep (in that order) and drops what
// they do not need. It returns the token-embedding table the Gather read, which is left out
// of the rewritten graph. Errors say what was expected and not found.
func embeddingsInputs(m *onnxModel, keep []string) (*onnxTensor, error) {
	g := &m.graph
	ids := g.input("input_ids")
	if ids == nil {
		return nil, fmt.Errorf("no input input_ids (inputs: %s): not a transformers CLIP text encoder export", g.inputNames())
	}
	if ids.elem != elemInt64 && ids.elem != elemInt32 {
		return nil, fmt.Errorf("input_ids is %s, want int64 or int32", elemName(ids.elem))
	}
	if len(ids.dims) != 2 {
		return nil, fmt.Errorf("input_ids has rank %d, want [batch, sequence]", len(ids.dims))
	}
	for _, n := range g.nodes {
		for _, a := range n.attrs {
			if a.subgraph {
				return nil, fmt.Errorf("node %q (%s) holds a subgraph; the surgery handles flat graphs only", n.name, n.op)
			}
		}
	}
	for _, name := range keep {
		if g.output(name) == nil {
			return nil, fmt.Errorf("no output %s (outputs: %s): export the text encoder with output_hidden_states (optimum does for SDXL)", name, g.outputNames())
		}
	}

	inits := g.initializers()
	producer := g.producers()
	fromIDs := func(name string) bool { // whether name is input_ids seen through pass-through ops
		for seen := 0; seen < 64; seen++ {
			if name == "input_ids" {
				return true
			}
			n := producer[name]
			if n == nil || !passThrough[n.op] || len(n.inputs) == 0 {
				return false
			}
			if n.op == "Equal" { // argmax(ids == eos): follow the side that is not a constant
				for _, in := range n.inputs {
					if p := producer[in]; inits[in] == nil && (p == nil || p.op != "Constant") {
						name = in
					}
				}
				continue
			}
			name = n.inputs[0]
		}
		return false
	}

	var gather *onnxNode
	var argmax []*onnxNode
	for _, n := range g.nodes {
		switch {
		case n.op == "Gather" && len(n.inputs) == 2 && inits[n.inputs[0]] != nil && len(inits[n.inputs[0]].dims) == 2 && fromIDs(n.inputs[1]):
			if a, ok := n.attr("axis"); ok && a.i != 0 {
				continue
			}
			if gather != nil {
				return nil, fmt.Errorf("two Gathers read input_ids from an embedding table (%q and %q): cannot tell the token embedding", gather.name, n.name)
			}
			gather = n
		case n.op == "ArgMax" && len(n.inputs) == 1 && fromIDs(n.inputs[0]):
			argmax = append(argmax, n)
		}
	}
	if gather == nil {
		return nil, fmt.Errorf("no Gather of input_ids from a [vocab, width] initializer: cannot find the token embedding")
	}
	table := inits[gather.inputs[0]]
	if table.elem != elemFloat {
		return nil, fmt.Errorf("token embedding %s is %s: cocoflow runs SDXL in float32; export with --dtype fp32 (optimum-cli's default)", table.name, elemName(table.elem))
	}

	// Cut: the Gather's output and the ArgMax outputs become inputs.
	rename := map[string]string{gather.outputs[0]: inputEmbeds}
	for _, n := range argmax {
		rename[n.outputs[0]] = inputEOS
	}
	dropped := map[*onnxNode]bool{gather: true}
	for _, n := range argmax {
		dropped[n] = true
	}
	nodes := make([]*onnxNode, 0, len(g.nodes)+4)
	fresh := 0
	for _, n := range g.nodes {
		if dropped[n] {
			continue
		}
		for i, in := range n.inputs {
			if r, ok := rename[in]; ok {
				n.inputs[i] = r
			}
		}
		if n.op == "Shape" && len(n.inputs) == 1 && n.inputs[0] == "input_ids" {
			nodes = append(nodes, shapeOfEmbeds(n, &fresh)...)
			continue
		}
		nodes = append(nodes, n)
	}
	g.nodes = nodes
	outs := make([]*onnxValue, len(keep))
	for i, name := range keep {
		outs[i] = g.output(name)
	}
	g.outputs = outs
	g.prune()
	for _, n := range g.nodes {
		if slices.Contains(n.inputs, "input_ids") {
			return nil, fmt.Errorf("node %q (%s) still reads input_ids after the cut: unexpected graph, the surgery only knows Shape and the paths to the token Gather and the pooling ArgMax", n.name, n.op)
		}
	}
	needsEOS := false
	for _, n := range g.nodes {
		if slices.Contains(n.inputs, inputEOS) {
			needsEOS = true
		}
	}
	if !needsEOS && slices.ContainsFunc(keep, func(s string) bool { return s == "pooler_output" || s == "text_embeds" }) {
		return nil, fmt.Errorf("no ArgMax of input_ids feeds the pooled output: cannot find the EOS pooling")
	}

	batch := ids.dims[0]
	seq := ids.dims[1]
	width := onnxDim{value: table.dims[1]}
	newInputs := []*onnxValue{{name: inputEmbeds, elem: elemFloat, dims: []onnxDim{batch, seq, width}}}
	if needsEOS {
		newInputs = append(newInputs, &onnxValue{name: inputEOS, elem: elemInt64, dims: []onnxDim{batch}})
	}
	for _, in := range g.inputs {
		if in.name != "input_ids" {
			newInputs = append(newInputs, in)
		}
	}
	g.inputs = newInputs
	g.prune()
	return table, nil
}

// shapeOfEmbeds replaces n = Shape(input_ids) [start, end] by Shape(inputs_embeds) followed by a
// Slice to the same dimensions of the [batch, sequence] prefix. fresh numbers the new names.
func shapeOfEmbeds(n *onnxNode, fresh *int) []*onnxNode {
	start, end := int64(0), int64(2)
	if a, ok := n.attr("start"); ok {
		start = a.i
	}
	if a, ok := n.attr("end"); ok {
		end = a.i
	}
	norm := func(v int64) int64 { // Shape's start and end count from the end of input_ids' rank 2
		if v < 0 {
			v += 2
		}
		return min(max(v, 0), 2)
	}
	start, end = norm(start), norm(end)
	*fresh++
	p := fmt.Sprintf("cocoflow_embeds_shape_%d", *fresh)
	constant := func(name string, v int64) *onnxNode {
		return &onnxNode{op: "Constant", name: name, outputs: []string{name}, attrs: []onnxAttr{tensorAttr("value", int64Tensor(name, []int64{1}, []int64{v}))}}
	}
	return []*onnxNode{
		{op: "Shape", name: p, inputs: []string{inputEmbeds}, outputs: []string{p + "_full"}},
		constant(p+"_start", start),
		constant(p+"_end", end),
		constant(p+"_axes", 0),
		{op: "Slice", name: p + "_slice", inputs: []string{p + "_full", p + "_start", p + "_end", p + "_axes"}, outputs: n.outputs},
	}
}

// batchedTimestep rewrites a UNet whose timestep input is a scalar (optimum >= 1.24 exports
// it so: diffusers broadcasts it with timesteps[None].expand(batch)) into one that takes one
// timestep per row, [batch], as training needs (each triplet has its own t). The Unsqueeze that
// made the scalar a [1] vector is cut out: its output reads the [batch] input directly, and
// the Expand that follows is then the identity. A UNet that already takes [batch] timesteps is
// left as it is.
func batchedTimestep(m *onnxModel) error {
	g := &m.graph
	t := g.input("timestep")
	if t == nil {
		return fmt.Errorf("no input timestep (inputs: %s)", g.inputNames())
	}
	if t.dims == nil || len(t.dims) == 1 {
		return nil
	}
	if len(t.dims) != 0 {
		return fmt.Errorf("timestep has rank %d, want a scalar or [batch]", len(t.dims))
	}
	var uses []*onnxNode
	for _, n := range g.nodes {
		if slices.Contains(n.inputs, "timestep") {
			uses = append(uses, n)
		}
	}
	if len(uses) != 1 || uses[0].op != "Unsqueeze" {
		var ops []string
		for _, n := range uses {
			ops = append(ops, fmt.Sprintf("%s %q", n.op, n.name))
		}
		return fmt.Errorf("the scalar timestep feeds %s, want one Unsqueeze (diffusers' timesteps[None]): cannot give each row its own timestep; export the UNet with optimum < 1.24 (timestep [batch])", strings.Join(ops, ", "))
	}
	un := uses[0]
	out := un.outputs[0]
	nodes := g.nodes[:0]
	for _, n := range g.nodes {
		if n == un {
			continue
		}
		for i, in := range n.inputs {
			if in == out {
				n.inputs[i] = "timestep"
			}
		}
		nodes = append(nodes, n)
	}
	g.nodes = nodes
	batch := onnxDim{param: "batch_size"}
	if s := g.input("sample"); s != nil && len(s.dims) > 0 {
		batch = s.dims[0]
	}
	g.inputs[slices.Index(g.inputs, t)] = &onnxValue{name: "timestep", elem: t.elem, dims: []onnxDim{batch}}
	g.prune()
	return nil
}

// prune drops the nodes no graph output depends on, then the initializers and value infos no
// node reads any more.
func (g *onnxGraph) prune() {
	producer := g.producers()
	live := map[*onnxNode]bool{}
	stack := make([]string, 0, len(g.outputs))
	for _, o := range g.outputs {
		stack = append(stack, o.name)
	}
	seen := map[string]bool{}
	for len(stack) > 0 {
		name := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[name] {
			continue
		}
		seen[name] = true
		if n := producer[name]; n != nil && !live[n] {
			live[n] = true
			stack = append(stack, n.inputs...)
		}
	}
	nodes := g.nodes[:0]
	for _, n := range g.nodes {
		if live[n] {
			nodes = append(nodes, n)
		}
	}
	g.nodes = nodes
	inits := g.inits[:0]
	for _, t := range g.inits {
		if seen[t.name] {
			inits = append(inits, t)
		}
	}
	g.inits = inits
	vi := g.valueInfo[:0]
	for _, v := range g.valueInfo {
		if p := producer[v.name]; p != nil && live[p] {
			vi = append(vi, v)
		}
	}
	g.valueInfo = vi
}

// producers maps every node output to its node.
func (g *onnxGraph) producers() map[string]*onnxNode {
	p := make(map[string]*onnxNode, len(g.nodes))
	for _, n := range g.nodes {
		for _, o := range n.outputs {
			p[o] = n
		}
	}
	return p
}

// initializers maps initializer names to them.
func (g *onnxGraph) initializers() map[string]*onnxTensor {
	m := make(map[string]*onnxTensor, len(g.inits))
	for _, t := range g.inits {
		m[t.name] = t
	}
	return m
}

func (g *onnxGraph) input(name string) *onnxValue  { return findValue(g.inputs, name) }
func (g *onnxGraph) output(name string) *onnxValue { return findValue(g.outputs, name) }
func (g *onnxGraph) inputNames() string            { return valueNames(g.inputs) }
func (g *onnxGraph) outputNames() string           { return valueNames(g.outputs) }

func findValue(vs []*onnxValue, name string) *onnxValue {
	for _, v := range vs {
		if v.name == name {
			return v
		}
	}
	return nil
}

func valueNames(vs []*onnxValue) string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.name
	}
	return strings.Join(names, ", ")
}
