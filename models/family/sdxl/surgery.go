package sdxl

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
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
	inputIDs    = "input_ids"
)

// passThrough are the ops through which ids flow unchanged (in value or in layout) on the way to
// the token Gather or to the pooling ArgMax.
var passThrough = map[string]bool{"Reshape": true, "Cast": true, "Squeeze": true, "Unsqueeze": true, "Identity": true, "Flatten": true, "Equal": true}

// embeddingsInputs rewrites a text encoder that takes input_ids into one that takes
// inputs_embeds and eos_index (when a kept output is pooled), keeps only the outputs in keep (in
// that order) and drops what they do not need. It returns the token-embedding table the Gather
// read, which the rewritten graph no longer holds. Errors say what was expected and not found.
func embeddingsInputs(m *onnxgraph.Model, keep []string) (*onnxgraph.Tensor, error) {
	g := m.Graph
	ids := findValue(g.Inputs, inputIDs)
	if ids == nil {
		return nil, fmt.Errorf("no input input_ids (inputs: %s): not a transformers CLIP text encoder export", valueNames(g.Inputs))
	}
	if dt := ids.ElemType(); dt != onnxgraph.Int64 && dt != onnxgraph.Int32 {
		return nil, fmt.Errorf("input_ids is %s, want int64 or int32", dt)
	}
	dims, ok := ids.Shape()
	if !ok || len(dims) != 2 {
		return nil, fmt.Errorf("input_ids has shape %v, want [batch, sequence]", dims)
	}
	outs := make([]*onnxgraph.ValueInfo, len(keep))
	for i, name := range keep {
		if outs[i] = findValue(g.Outputs, name); outs[i] == nil {
			return nil, fmt.Errorf("no output %s (outputs: %s): export the text encoder with output_hidden_states (optimum does for SDXL)", name, valueNames(g.Outputs))
		}
	}

	fromIDs := func(name string) bool { // whether name is input_ids seen through pass-through ops
		for range 64 {
			if name == inputIDs {
				return true
			}
			n := g.Producer(name)
			if n == nil || !passThrough[n.OpType] || len(n.Inputs) == 0 {
				return false
			}
			next := n.Inputs[0]
			if n.OpType == "Equal" { // argmax(ids == eos): follow the side that is not a constant
				for _, in := range n.Inputs {
					if p := g.Producer(in); g.Initializer(in) == nil && (p == nil || p.OpType != "Constant") {
						next = in
					}
				}
			}
			name = next
		}
		return false
	}
	var gather *onnxgraph.Node
	var argmax []*onnxgraph.Node
	for _, n := range g.Nodes {
		switch {
		case n.OpType == "Gather" && len(n.Inputs) == 2 && fromIDs(n.Inputs[1]):
			t := g.Initializer(n.Inputs[0])
			if t == nil || len(t.Dims) != 2 || attrInt(n, "axis", 0) != 0 {
				continue
			}
			if gather != nil {
				return nil, fmt.Errorf("two Gathers read input_ids from an embedding table (%q and %q): cannot tell the token embedding", gather.Name, n.Name)
			}
			gather = n
		case n.OpType == "ArgMax" && len(n.Inputs) == 1 && fromIDs(n.Inputs[0]):
			argmax = append(argmax, n)
		}
	}
	if gather == nil {
		return nil, fmt.Errorf("no Gather of input_ids from a [vocab, width] initializer: cannot find the token embedding")
	}
	table := g.Initializer(gather.Inputs[0])
	if table.DataType != onnxgraph.Float {
		return nil, fmt.Errorf("token embedding %s is %s: cocoflow runs SDXL in float32; export with --dtype fp32 (optimum-cli's default)", table.Name, table.DataType)
	}
	if len(argmax) > 1 {
		for _, n := range argmax[1:] { // one input for every ArgMax of the ids
			for _, c := range g.Consumers(n.Outputs[0]) {
				for i, in := range c.Inputs {
					if in == n.Outputs[0] {
						c.Inputs[i] = argmax[0].Outputs[0]
					}
				}
			}
		}
	}

	// Shape(input_ids) reads the [batch, sequence] prefix of Shape(inputs_embeds).
	batch, seq := dims[0], dims[1]
	if batch.Value <= 0 && batch.Param == "" {
		batch.Param = "batch_size"
	}
	if seq.Value <= 0 && seq.Param == "" {
		seq.Param = "sequence_length"
	}
	nodes := make([]*onnxgraph.Node, 0, len(g.Nodes)+8)
	fresh := 0
	for _, n := range g.Nodes {
		if n.OpType == "Shape" && len(n.Inputs) == 1 && n.Inputs[0] == inputIDs {
			nodes = append(nodes, shapeOfEmbeds(n, &fresh)...)
			continue
		}
		nodes = append(nodes, n)
	}
	g.Nodes = nodes
	g.Outputs = outs
	if err := g.CutAt(gather.Outputs[0], inputEmbeds, onnxgraph.Float, batch, seq, onnxgraph.Dim{Value: table.Dims[1]}); err != nil {
		return nil, err
	}
	pooled := false
	if len(argmax) > 0 && len(g.Consumers(argmax[0].Outputs[0])) > 0 {
		if err := g.CutAt(argmax[0].Outputs[0], inputEOS, onnxgraph.Int64, batch); err != nil {
			return nil, err
		}
		pooled = true
	}
	if !pooled && slices.ContainsFunc(keep, func(s string) bool { return s == "pooler_output" || s == "text_embeds" }) {
		return nil, fmt.Errorf("no ArgMax of input_ids feeds the pooled output: cannot find the EOS pooling")
	}
	if c := g.Consumers(inputIDs); len(c) > 0 {
		return nil, fmt.Errorf("node %q (%s) still reads input_ids after the cut: unexpected graph, the surgery only knows Shape and the paths to the token Gather and the pooling ArgMax", c[0].Name, c[0].OpType)
	}
	g.Inputs = slices.DeleteFunc(g.Inputs, func(v *onnxgraph.ValueInfo) bool { return v.Name == inputIDs })
	g.Prune()
	return table, nil
}

// shapeOfEmbeds replaces n = Shape(input_ids) [start, end] by Shape(inputs_embeds) followed by a
// Slice to the same dimensions of the [batch, sequence] prefix. fresh numbers the new names.
func shapeOfEmbeds(n *onnxgraph.Node, fresh *int) []*onnxgraph.Node {
	norm := func(v int64) int64 { // Shape's start and end count from the end of input_ids' rank 2
		if v < 0 {
			v += 2
		}
		return min(max(v, 0), 2)
	}
	start, end := norm(attrInt(n, "start", 0)), norm(attrInt(n, "end", 2))
	*fresh++
	p := fmt.Sprintf("cocoflow_embeds_shape_%d", *fresh)
	constant := func(name string, v int64) *onnxgraph.Node {
		t := onnxgraph.NewInt64Tensor(name, []int64{1}, v)
		return &onnxgraph.Node{OpType: "Constant", Name: name, Outputs: []string{name}, Attrs: []*onnxgraph.Attr{{Name: "value", Type: onnxgraph.AttrTensor, T: t}}}
	}
	return []*onnxgraph.Node{
		{OpType: "Shape", Name: p, Inputs: []string{inputEmbeds}, Outputs: []string{p + "_full"}},
		constant(p+"_start", start),
		constant(p+"_end", end),
		constant(p+"_axes", 0),
		{OpType: "Slice", Name: p + "_slice", Inputs: []string{p + "_full", p + "_start", p + "_end", p + "_axes"}, Outputs: n.Outputs},
	}
}

// batchedTimestep rewrites a UNet whose timestep input is a scalar (optimum >= 1.24 exports
// it so: diffusers broadcasts it with timesteps[None].expand(batch)) into one that takes one
// timestep per row, [batch], as training needs (each triplet has its own t). The Unsqueeze that
// made the scalar a [1] vector is cut out: its readers read the [batch] input directly, and the
// Expand that follows is then the identity. A UNet that already takes [batch] timesteps is left
// as it is.
func batchedTimestep(m *onnxgraph.Model) error {
	g := m.Graph
	t := findValue(g.Inputs, unetTimestep)
	if t == nil {
		return fmt.Errorf("no input timestep (inputs: %s)", valueNames(g.Inputs))
	}
	dims, ok := t.Shape()
	if !ok || len(dims) == 1 {
		return nil
	}
	if len(dims) != 0 {
		return fmt.Errorf("timestep has rank %d, want a scalar or [batch]", len(dims))
	}
	uses := g.Consumers(unetTimestep)
	if len(uses) != 1 || uses[0].OpType != "Unsqueeze" {
		var ops []string
		for _, n := range uses {
			ops = append(ops, fmt.Sprintf("%s %q", n.OpType, n.Name))
		}
		return fmt.Errorf("the scalar timestep feeds %s, want one Unsqueeze (diffusers' timesteps[None]): cannot give each row its own timestep; export the UNet with optimum < 1.24 (timestep [batch])", strings.Join(ops, ", "))
	}
	un := uses[0]
	for _, n := range g.Consumers(un.Outputs[0]) {
		for i, in := range n.Inputs {
			if in == un.Outputs[0] {
				n.Inputs[i] = unetTimestep
			}
		}
	}
	batch := onnxgraph.Dim{Param: "batch_size"}
	if s := findValue(g.Inputs, unetSample); s != nil {
		if d, ok := s.Shape(); ok && len(d) > 0 {
			batch = d[0]
		}
	}
	t.Type = onnxgraph.NewTensorType(t.ElemType(), batch)
	g.Prune()
	return nil
}

// attrInt returns n's integer attribute name, or def.
func attrInt(n *onnxgraph.Node, name string, def int64) int64 {
	for _, a := range n.Attrs {
		if a.Name == name && a.Type == onnxgraph.AttrInt {
			return a.I
		}
	}
	return def
}

func findValue(vs []*onnxgraph.ValueInfo, name string) *onnxgraph.ValueInfo {
	for _, v := range vs {
		if v.Name == name {
			return v
		}
	}
	return nil
}

func valueNames(vs []*onnxgraph.ValueInfo) string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}
