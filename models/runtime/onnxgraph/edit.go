package onnxgraph

import "fmt"

// Producer returns the node that writes the value name, or nil when name is a graph input, an
// initializer or unknown.
func (g *Graph) Producer(name string) *Node {
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o == name {
				return n
			}
		}
	}
	return nil
}

// Consumers returns the nodes that read the value name, in graph order.
func (g *Graph) Consumers(name string) []*Node {
	var out []*Node
	for _, n := range g.Nodes {
		for _, in := range n.Inputs {
			if in == name {
				out = append(out, n)
				break
			}
		}
	}
	return out
}

// Initializer returns the initializer called name, or nil.
func (g *Graph) Initializer(name string) *Tensor {
	for _, t := range g.Initializers {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// CutAt turns the intermediate value name into a new graph input called input (name itself when
// input is ""), of element type dt and the given dimensions, appended after the existing inputs.
// A dynamic dimension should carry the Param name its size shares with other inputs (e.g.
// "batch_size"): importers check that equally named dimensions agree, and an unnamed one is
// given a name of its own. Every node reading name reads the input instead; the nodes and
// initializers that only served to compute name are removed (Prune). This is how a text encoder
// exported with input_ids becomes a function of token embeddings: cut at the output of the
// token-embedding Gather. It returns an error when name is not written by a node, or input is
// already a value of the graph.
func (g *Graph) CutAt(name, input string, dt DataType, dims ...Dim) error {
	if g.Producer(name) == nil {
		return fmt.Errorf("onnxgraph: CutAt: %q is not written by any node of graph %q", name, g.Name)
	}
	if input == "" {
		input = name
	}
	if input != name {
		if g.Producer(input) != nil || g.Initializer(input) != nil || g.hasInput(input) {
			return fmt.Errorf("onnxgraph: CutAt: %q is already a value of graph %q", input, g.Name)
		}
		for _, n := range g.Nodes {
			for i, in := range n.Inputs {
				if in == name {
					n.Inputs[i] = input
				}
			}
		}
		for _, o := range g.Outputs {
			if o.Name == name {
				o.Name = input
			}
		}
	}
	// The producer keeps writing name, which nothing reads now (or which the input shadows).
	for _, n := range g.Nodes {
		for i, o := range n.Outputs {
			if o == input {
				n.Outputs[i] = ""
			}
		}
	}
	named := make([]Dim, len(dims))
	for i, d := range dims {
		named[i] = d
		if d.Value <= 0 && d.Param == "" {
			named[i].Param = fmt.Sprintf("%s_dim%d", input, i)
		}
	}
	g.Inputs = append(g.Inputs, &ValueInfo{Name: input, Type: NewTensorType(dt, named...)})
	g.Prune()
	return nil
}

func (g *Graph) hasInput(name string) bool {
	for _, v := range g.Inputs {
		if v.Name == name {
			return true
		}
	}
	return false
}

// Prune removes the nodes no graph output depends on and the initializers no remaining node
// reads. Graph inputs are kept, used or not, so that the graph's signature does not change.
func (g *Graph) Prune() {
	producer := map[string]*Node{}
	for _, n := range g.Nodes {
		for _, o := range n.Outputs {
			if o != "" {
				producer[o] = n
			}
		}
	}
	live := map[*Node]bool{}
	var visit func(name string)
	visit = func(name string) {
		n := producer[name]
		if n == nil || live[n] {
			return
		}
		live[n] = true
		for _, in := range n.Inputs {
			visit(in)
		}
	}
	for _, o := range g.Outputs {
		visit(o.Name)
	}
	read := map[string]bool{}
	var nodes []*Node
	subgraphs := false // subgraphs (If) are kept verbatim: what they read from outside is unknown
	for _, n := range g.Nodes {
		if live[n] {
			nodes = append(nodes, n)
			for _, in := range n.Inputs {
				read[in] = true
			}
			for _, a := range n.Attrs {
				subgraphs = subgraphs || a.Type == AttrGraph || a.Type == attrGraphs
			}
		}
	}
	for _, o := range g.Outputs {
		read[o.Name] = true
	}
	g.Nodes = nodes
	if subgraphs {
		return
	}
	var inits []*Tensor
	for _, t := range g.Initializers {
		if read[t.Name] {
			inits = append(inits, t)
		}
	}
	g.Initializers = inits
}
