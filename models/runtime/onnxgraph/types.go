package onnxgraph

// inferTypes returns the element type of every value it can tell: graph inputs, initializers and
// recorded value_info, then each node's outputs in graph order by the op's typing rule (most ops
// keep their first input's type).
func inferTypes(g *Graph) map[string]DataType {
	types := map[string]DataType{}
	for _, list := range [][]*ValueInfo{g.Inputs, g.ValueInfo, g.Outputs} {
		for _, v := range list {
			if dt := v.ElemType(); dt != Undefined {
				types[v.Name] = dt
			}
		}
	}
	for _, t := range g.Initializers {
		types[t.Name] = t.DataType
	}
	for _, n := range g.Nodes {
		for i, out := range n.Outputs {
			if out == "" || types[out] != Undefined {
				continue
			}
			if dt := outputType(n, i, types); dt != Undefined {
				types[out] = dt
			}
		}
	}
	return types
}

// outputType is the element type of output i of n, given its inputs' types.
func outputType(n *Node, i int, types map[string]DataType) DataType {
	first := Undefined
	for _, in := range n.Inputs {
		if in != "" {
			first = types[in]
			break
		}
	}
	switch n.OpType {
	case "Constant":
		if t := constantValue(n); t != nil {
			return t.DataType
		}
	case "Shape", "Size", "NonZero", "ArgMax", "ArgMin":
		return Int64
	case "Cast":
		return DataType(attrInt(n, "to", 0))
	case "CastLike":
		return types[input(n, 1)]
	case "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf":
		return Bool
	case "ConstantOfShape":
		if a := attr(n, "value"); a != nil && a.T != nil {
			return a.T.DataType
		}
		return Float
	case "Where":
		return types[input(n, 1)]
	case "Dropout":
		if i == 1 {
			return Bool
		}
	case "TopK":
		if i == 1 {
			return Int64
		}
	}
	return first
}
