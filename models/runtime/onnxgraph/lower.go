package onnxgraph

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// GoMLXOps are the ONNX op types onnx-gomlx v0.3.4 converts (its convertNode switch).
var GoMLXOps = map[string]bool{}

func init() {
	for _, op := range strings.Fields(`Add Sub Mul Div Pow And Or Xor BitwiseAnd BitwiseOr BitwiseXor
		Equal Less LessOrEqual Greater GreaterOrEqual Sqrt Exp Log Erf Relu Abs Neg Sign Ceil Floor
		Identity Not BitwiseNot Tanh Sin Cos MatMul Clip Where Min Max Constant Gather GatherElements
		Shape Concat Softmax Cast Transpose Gemm Flatten DequantizeLinear QuantizeLinear MatMulInteger
		QLinearMatMul Squeeze Unsqueeze Slice Reshape ReduceMean ConstantOfShape Expand Tile Range
		CumSum LSTM Conv AveragePool MaxPool GlobalAveragePool BatchNormalization LayerNormalization
		Pad DynamicQuantizeLinear Split Trilu ScatterND If`) {
		GoMLXOps[op] = true
	}
}

// Rewrite names one kind of rewrite Lower applied and counts the nodes it rewrote.
type Rewrite struct {
	// Name says what became what, e.g. "Sigmoid -> 0.5*tanh(x/2)+0.5".
	Name string
	// Count is the number of nodes (or, for float16, tensors and values) rewritten.
	Count int
}

// String returns "Name ×Count".
func (r Rewrite) String() string { return fmt.Sprintf("%s ×%d", r.Name, r.Count) }

// The rewrites, in the order Lower reports them. Each keeps the graph's meaning; where the
// meaning is narrower than the op's (Resize), nodes outside it are errors, never approximated.
const (
	rwFloat16      = "float16/bfloat16 weights, constants and values -> float32"
	rwConstAttr    = "Constant value_float/value_int(s) -> value tensor"
	rwSplitAttr    = "Split split attribute -> split input"
	rwConvAttrs    = "Conv: strides and dilations spelled out"
	rwDropout      = "Dropout (inference) -> Identity"
	rwInstanceNorm = "InstanceNormalization -> mean/variance over [N,C,-1]"
	rwGroupNorm    = "GroupNormalization -> mean/variance over [N,G,-1]"
	rwSigmoid      = "Sigmoid -> 0.5*tanh(x/2)+0.5"
	rwGelu         = "Gelu -> erf/tanh form"
	rwResize       = "Resize nearest, integer scales -> Reshape/Expand/Reshape"
	rwArgMax       = "ArgMax/ArgMin -> comparisons and CumSum"
	rwGatherND     = "GatherND -> Gather on flattened leading axes"
	rwEmptyConcat  = "Concat: statically empty inputs dropped (flatten's Slice(Shape, 0:0))"
	rwNegGather    = "Gather: constant negative indices normalised (chunk's Gather(Shape, -1))"
)

var rewriteOrder = []string{rwFloat16, rwConstAttr, rwSplitAttr, rwConvAttrs, rwDropout, rwInstanceNorm, rwGroupNorm,
	rwSigmoid, rwGelu, rwResize, rwArgMax, rwGatherND, rwEmptyConcat, rwNegGather}

// Lower rewrites m's main graph in place into ops onnx-gomlx v0.3.4 converts correctly, and
// returns the rewrites applied (none for a graph that needs none). The rewrites:
//
//   - float16 and bfloat16 weights, constants, Cast targets and graph values become float32
//     (weights in files are converted when read, see Tensor.ReadInto);
//   - InstanceNormalization (how PyTorch exports GroupNorm: Reshape -> InstanceNormalization ->
//     Reshape -> Mul -> Add) and GroupNormalization become an explicit mean and biased variance;
//   - Sigmoid becomes 0.5·tanh(x/2)+0.5, Gelu its erf or tanh formula;
//   - Resize with mode nearest and integer scale factors (torch's F.interpolate(scale_factor=2,
//     mode="nearest"): asymmetric/floor) becomes Reshape -> Expand -> Reshape;
//   - ArgMax and ArgMin (CLIP's EOS pooling) become pairwise comparisons and CumSums, and
//     GatherND (batch_dims 0, how newer exporters may write x[arange(B), eos]) a Gather on the
//     flattened leading axes;
//   - Concat inputs that are statically empty (flatten()'s Slice(Shape(x), 0:0), which makes the
//     pure-Go backend panic) are dropped;
//   - Gather with constant negative indices (chunk's Gather(Shape(x), -1), which onnx-gomlx uses
//     as is) gets the indices normalised by the gathered axis' length;
//   - Split's split attribute (opset < 13) becomes its input, Constant's value_* attributes a
//     value tensor, and inference-mode Dropout an Identity.
//
// It returns an error naming the node, its op and the reason when a node cannot be lowered
// (e.g. Resize with linear interpolation) or when ops remain that onnx-gomlx does not convert
// (listed with their node counts).
func Lower(m *Model) ([]Rewrite, error) {
	l := &lowering{m: m, g: m.Graph, opset: m.OpsetVersion(), counts: map[string]int{}, names: map[string]bool{}}
	if l.opset == 0 {
		l.opset = 1
	}
	if err := l.run(); err != nil {
		where := m.Path
		if where == "" {
			where = "ONNX model"
		}
		return nil, fmt.Errorf("onnxgraph.Lower: %s: %w", where, err)
	}
	var out []Rewrite
	for _, name := range rewriteOrder {
		if n := l.counts[name]; n > 0 {
			out = append(out, Rewrite{Name: name, Count: n})
		}
	}
	return out, nil
}

type lowering struct {
	m      *Model
	g      *Graph
	opset  int64
	types  map[string]DataType
	consts map[string]*Tensor // outputs of Constant nodes, and initializers
	prod   map[string]*Node   // the original graph's value names -> the nodes writing them
	counts map[string]int
	names  map[string]bool
	seq    int
}

func (l *lowering) run() error {
	if err := l.float16(); err != nil {
		return err
	}
	l.index()
	var nodes []*Node
	for _, n := range l.g.Nodes {
		out, err := l.lowerNode(n, 0)
		if err != nil {
			return err
		}
		nodes = append(nodes, out...)
	}
	l.g.Nodes = nodes
	return l.checkSupported()
}

// index records value names, constants and element types.
func (l *lowering) index() {
	l.consts = map[string]*Tensor{}
	for _, t := range l.g.Initializers {
		l.names[t.Name] = true
		l.consts[t.Name] = t
	}
	for _, v := range l.g.Inputs {
		l.names[v.Name] = true
	}
	for _, n := range l.g.Nodes {
		l.names[n.Name] = true
		for _, o := range n.Outputs {
			l.names[o] = true
		}
		if n.OpType == "Constant" && len(n.Outputs) == 1 {
			if t := constantValue(n); t != nil {
				l.consts[n.Outputs[0]] = t
			}
		}
	}
	l.types = inferTypes(l.g)
	l.prod = map[string]*Node{}
	for _, n := range l.g.Nodes {
		for _, o := range n.Outputs {
			l.prod[o] = n
		}
	}
}

// checkSupported lists the ops left that onnx-gomlx does not convert.
func (l *lowering) checkSupported() error {
	unsupported := map[string][]string{}
	for _, n := range l.g.Nodes {
		if !GoMLXOps[n.OpType] || (n.Domain != "" && n.Domain != "ai.onnx") {
			op := n.OpType
			if n.Domain != "" && n.Domain != "ai.onnx" {
				op = n.Domain + "." + op
			}
			unsupported[op] = append(unsupported[op], n.Name)
		}
	}
	if len(unsupported) == 0 {
		return nil
	}
	var parts []string
	for op, nodes := range unsupported {
		parts = append(parts, fmt.Sprintf("%s (%d nodes, first %q)", op, len(nodes), nodes[0]))
	}
	sort.Strings(parts)
	return fmt.Errorf("ops that onnx-gomlx v0.3.4 does not convert and cocoflow cannot rewrite: %s", strings.Join(parts, ", "))
}

// lowerNode returns the nodes replacing n (n itself when no rewrite applies); new nodes are
// lowered again, so rewrites may build on each other.
func (l *lowering) lowerNode(n *Node, depth int) ([]*Node, error) {
	if depth > 4 {
		return []*Node{n}, nil
	}
	var (
		out  []*Node
		name string
		err  error
	)
	switch n.OpType {
	case "Constant":
		out, name, err = l.constantAttr(n)
	case "Split":
		out, name, err = l.splitAttr(n)
	case "Conv":
		out, name, err = l.convAttrs(n)
	case "Dropout":
		out, name, err = l.dropout(n)
	case "InstanceNormalization":
		out, name, err = l.instanceNorm(n)
	case "GroupNormalization":
		out, name, err = l.groupNorm(n)
	case "Sigmoid":
		out, name, err = l.sigmoid(n)
	case "Gelu":
		out, name, err = l.gelu(n)
	case "Resize":
		out, name, err = l.resize(n)
	case "ArgMax", "ArgMin":
		out, name, err = l.argMax(n)
	case "GatherND":
		out, name, err = l.gatherND(n)
	case "Concat":
		out, name, err = l.emptyConcat(n)
	case "Gather":
		out, name, err = l.negativeGather(n)
	}
	if err != nil {
		return nil, fmt.Errorf("node %q (%s): %w", n.Name, n.OpType, err)
	}
	if out == nil {
		return []*Node{n}, nil
	}
	l.counts[name]++
	var lowered []*Node
	for _, o := range out {
		if o == n {
			lowered = append(lowered, o)
			continue
		}
		sub, err := l.lowerNode(o, depth+1)
		if err != nil {
			return nil, err
		}
		lowered = append(lowered, sub...)
	}
	return lowered, nil
}

// ---------------------------------------------------------------------------------------------
// Building blocks.

// builder collects the nodes of one rewrite; names derive from the rewritten node's.
type builder struct {
	l     *lowering
	base  string
	nodes []*Node
}

func (l *lowering) builder(n *Node) *builder {
	base := n.Name
	if base == "" && len(n.Outputs) > 0 {
		base = n.Outputs[0]
	}
	return &builder{l: l, base: base}
}

func (l *lowering) fresh(base, what string) string {
	for {
		l.seq++
		name := fmt.Sprintf("%s/cocoflow_%s_%d", base, what, l.seq)
		if !l.names[name] {
			l.names[name] = true
			return name
		}
	}
}

// op adds a node with one new output and returns the output's name; outputs overrides it.
func (b *builder) op(opType string, inputs []string, attrs ...*Attr) string {
	out := b.l.fresh(b.base, opType)
	b.opTo(opType, inputs, []string{out}, attrs...)
	return out
}

// opTo adds a node writing the given outputs.
func (b *builder) opTo(opType string, inputs, outputs []string, attrs ...*Attr) {
	b.nodes = append(b.nodes, &Node{
		Name: b.l.fresh(b.base, opType), OpType: opType, Inputs: inputs, Outputs: outputs, Attrs: attrs,
	})
}

// constant adds a Constant node holding vals as a tensor of dt and returns its output.
func (b *builder) constant(dt DataType, dims []int64, vals ...float64) string {
	out := b.l.fresh(b.base, "const")
	return b.constTensor(NewTensor(out, dt, dims, vals...))
}

// constTensor adds a Constant node holding t (named as its output) and returns the output.
func (b *builder) constTensor(t *Tensor) string {
	out := t.Name
	dt := t.DataType
	b.nodes = append(b.nodes, &Node{
		Name: b.l.fresh(b.base, "Constant"), OpType: "Constant", Outputs: []string{out},
		Attrs: []*Attr{{Name: "value", Type: AttrTensor, T: t}},
	})
	b.l.consts[out] = t
	b.l.types[out] = dt
	return out
}

func (b *builder) ints(vals ...int64) string {
	return b.constTensor(NewInt64Tensor(b.l.fresh(b.base, "const"), []int64{int64(len(vals))}, vals...))
}

func (b *builder) scalarInt(v int64) string {
	return b.constTensor(NewInt64Tensor(b.l.fresh(b.base, "const"), nil, v))
}

func intAttr(name string, v int64) *Attr     { return &Attr{Name: name, Type: AttrInt, I: v} }
func intsAttr(name string, v ...int64) *Attr { return &Attr{Name: name, Type: AttrInts, Ints: v} }

// reduceMean averages over axes, keeping them (axes an attribute before opset 18, an input after).
func (b *builder) reduceMean(x string, axes ...int64) string {
	if b.l.opset >= 18 {
		return b.op("ReduceMean", []string{x, b.ints(axes...)}, intAttr("keepdims", 1))
	}
	return b.op("ReduceMean", []string{x}, intsAttr("axes", axes...), intAttr("keepdims", 1))
}

// reduceMeanDrop averages over one axis and drops it.
func (b *builder) reduceMeanDrop(x string, axis int64) string {
	if b.l.opset >= 18 {
		return b.op("ReduceMean", []string{x, b.ints(axis)}, intAttr("keepdims", 0))
	}
	return b.op("ReduceMean", []string{x}, intsAttr("axes", axis), intAttr("keepdims", 0))
}

// unsqueeze inserts axes (an attribute before opset 13, an input after).
func (b *builder) unsqueeze(x string, axes ...int64) string {
	if b.l.opset >= 13 {
		return b.op("Unsqueeze", []string{x, b.ints(axes...)})
	}
	return b.op("Unsqueeze", []string{x}, intsAttr("axes", axes...))
}

// squeeze removes axes (an attribute before opset 13, an input after).
func (b *builder) squeeze(x string, axes ...int64) string {
	if b.l.opset >= 13 {
		return b.op("Squeeze", []string{x, b.ints(axes...)})
	}
	return b.op("Squeeze", []string{x}, intsAttr("axes", axes...))
}

func (b *builder) cast(x string, to DataType) string {
	return b.op("Cast", []string{x}, intAttr("to", int64(to)))
}

// slice1 slices a 1-D value: x[start:end].
func (b *builder) slice1(x string, start, end int64) string {
	return b.op("Slice", []string{x, b.ints(start), b.ints(end), b.ints(0)})
}

func (b *builder) cumSum(x string, axis int64, exclusive bool) string {
	ex := int64(0)
	if exclusive {
		ex = 1
	}
	return b.op("CumSum", []string{x, b.scalarInt(axis)}, intAttr("exclusive", ex))
}

// floatType returns the element type of a floating-point value, or an error.
func (l *lowering) floatType(name string) (DataType, error) {
	dt := l.types[name]
	if dt == Undefined {
		return 0, fmt.Errorf("cannot tell the element type of %q: export with value_info (shape inference) or report this graph", name)
	}
	if !dt.IsFloat() {
		return 0, fmt.Errorf("input %q is %s, want a floating-point tensor", name, dt)
	}
	return dt, nil
}

// constant returns the value of a constant (Constant node output or initializer) and true.
func (l *lowering) constant(name string) (*Tensor, bool) {
	t, ok := l.consts[name]
	return t, ok
}

func (l *lowering) constInts(name string) ([]int64, bool) {
	t, ok := l.constant(name)
	if !ok || (t.DataType != Int64 && t.DataType != Int32) || t.Elements() > 64 {
		return nil, false
	}
	v, err := t.Int64s()
	return v, err == nil
}

func (l *lowering) constFloats(name string) ([]float64, bool) {
	t, ok := l.constant(name)
	if !ok || t.Elements() > 64 {
		return nil, false
	}
	v, err := t.Float64s()
	return v, err == nil
}

func attr(n *Node, name string) *Attr {
	for _, a := range n.Attrs {
		if a.Name == name {
			return a
		}
	}
	return nil
}

func attrInt(n *Node, name string, def int64) int64 {
	if a := attr(n, name); a != nil {
		return a.I
	}
	return def
}

func attrFloat(n *Node, name string, def float32) float32 {
	if a := attr(n, name); a != nil {
		return a.F
	}
	return def
}

func attrString(n *Node, name, def string) string {
	if a := attr(n, name); a != nil {
		return string(a.S)
	}
	return def
}

func input(n *Node, i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

// ---------------------------------------------------------------------------------------------
// The rewrites.

// float16 converts float16/bfloat16 weights, constants, Cast targets and graph values to float32.
func (l *lowering) float16() error {
	count := 0
	half := func(dt DataType) bool { return dt == Float16 || dt == BFloat16 }
	for _, t := range l.g.Initializers {
		if half(t.DataType) {
			if err := t.ConvertToFloat32(); err != nil {
				return err
			}
			count++
		}
	}
	for _, n := range l.g.Nodes {
		for _, a := range n.Attrs {
			if a.Type == AttrTensor && a.T != nil && half(a.T.DataType) {
				if err := a.T.ConvertToFloat32(); err != nil {
					return fmt.Errorf("node %q (%s): attribute %s: %w", n.Name, n.OpType, a.Name, err)
				}
				count++
			}
			if n.OpType == "Cast" && a.Name == "to" && half(DataType(a.I)) {
				a.I = int64(Float)
				count++
			}
		}
	}
	for _, list := range [][]*ValueInfo{l.g.Inputs, l.g.Outputs, l.g.ValueInfo} {
		for _, v := range list {
			if half(v.ElemType()) {
				if err := v.SetElemType(Float); err != nil {
					return err
				}
				count++
			}
		}
	}
	l.counts[rwFloat16] += count
	return nil
}

// constantValue returns the tensor a Constant node produces (value or value_* attributes).
func constantValue(n *Node) *Tensor {
	for _, a := range n.Attrs {
		switch a.Name {
		case "value":
			return a.T
		case "value_float":
			return NewTensor(n.Outputs[0], Float, nil, float64(a.F))
		case "value_floats":
			v := make([]float64, len(a.Floats))
			for i, f := range a.Floats {
				v[i] = float64(f)
			}
			return NewTensor(n.Outputs[0], Float, []int64{int64(len(v))}, v...)
		case "value_int":
			return NewTensor(n.Outputs[0], Int64, nil, float64(a.I))
		case "value_ints":
			v := make([]float64, len(a.Ints))
			for i, x := range a.Ints {
				v[i] = float64(x)
			}
			return NewTensor(n.Outputs[0], Int64, []int64{int64(len(v))}, v...)
		}
	}
	return nil
}

// constantAttr turns value_float/value_int(s) Constants into value tensors (onnx-gomlx reads
// only value).
func (l *lowering) constantAttr(n *Node) ([]*Node, string, error) {
	if attr(n, "value") != nil {
		return nil, "", nil
	}
	t := constantValue(n)
	if t == nil {
		return nil, "", fmt.Errorf("a Constant with value_string(s) or sparse_value cannot be imported")
	}
	c := *n
	c.Attrs = []*Attr{{Name: "value", Type: AttrTensor, T: t}}
	return []*Node{&c}, rwConstAttr, nil
}

// splitAttr moves Split's split attribute into its second input, which onnx-gomlx reads.
func (l *lowering) splitAttr(n *Node) ([]*Node, string, error) {
	a := attr(n, "split")
	if a == nil || len(n.Inputs) > 1 {
		return nil, "", nil
	}
	b := l.builder(n)
	c := *n
	c.Inputs = []string{n.Inputs[0], b.ints(a.Ints...)}
	c.Attrs = slices.DeleteFunc(slices.Clone(n.Attrs), func(x *Attr) bool { return x.Name == "split" })
	return append(b.nodes, &c), rwSplitAttr, nil
}

// convAttrs spells out Conv's default strides and dilations: the pure-Go backend's general
// convolution (used for channel groups) indexes them and panics when they are missing.
func (l *lowering) convAttrs(n *Node) ([]*Node, string, error) {
	if attr(n, "strides") != nil && attr(n, "dilations") != nil {
		return nil, "", nil
	}
	spatial := 0
	if a := attr(n, "kernel_shape"); a != nil {
		spatial = len(a.Ints)
	} else if t, ok := l.constant(input(n, 1)); ok && len(t.Dims) > 2 {
		spatial = len(t.Dims) - 2
	}
	if spatial == 0 {
		return nil, "", nil // onnx-gomlx reports the missing kernel_shape
	}
	ones := make([]int64, spatial)
	for i := range ones {
		ones[i] = 1
	}
	c := *n
	c.Attrs = slices.Clone(n.Attrs)
	for _, name := range []string{"strides", "dilations"} {
		if attr(n, name) == nil {
			c.Attrs = append(c.Attrs, intsAttr(name, ones...))
		}
	}
	return []*Node{&c}, rwConvAttrs, nil
}

// dropout replaces inference-mode Dropout with Identity.
func (l *lowering) dropout(n *Node) ([]*Node, string, error) {
	if len(n.Outputs) > 1 && n.Outputs[1] != "" {
		return nil, "", fmt.Errorf("the Dropout mask output is used: export the model in eval mode")
	}
	if tm := input(n, 2); tm != "" {
		t, ok := l.constant(tm)
		var v []int64
		var err error
		if ok {
			v, err = t.Int64s()
		}
		if !ok || err != nil || len(v) != 1 || v[0] != 0 {
			return nil, "", fmt.Errorf("Dropout whose training_mode is not a constant false: export the model in eval mode")
		}
	}
	b := l.builder(n)
	b.opTo("Identity", []string{n.Inputs[0]}, n.Outputs[:1])
	return b.nodes, rwDropout, nil
}

// normalize writes ((x3 - mean) / sqrt(var + eps)) over the last axis of a [N, G, L] value.
func (b *builder) normalize(x3 string, dt DataType, eps float32) string {
	mean := b.reduceMean(x3, 2)
	d := b.op("Sub", []string{x3, mean})
	v := b.reduceMean(b.op("Mul", []string{d, d}), 2)
	std := b.op("Sqrt", []string{b.op("Add", []string{v, b.constant(dt, nil, float64(eps))})})
	return b.op("Div", []string{d, std})
}

// isFill reports whether name is a constant whose every element equals v.
func (l *lowering) isFill(name string, v float64) bool {
	t, ok := l.constant(name)
	if !ok || t.Elements() > 1<<16 {
		return false
	}
	vals, err := t.Float64s()
	if err != nil {
		return false
	}
	for _, x := range vals {
		if x != v {
			return false
		}
	}
	return true
}

// affine writes y*scale + bias with scale and bias of shape [K] applied along axis 1 of a
// [N, K, L] value; constant ones and zeros are skipped.
func (b *builder) affine(y, scale, bias string) string {
	if scale != "" && !b.l.isFill(scale, 1) {
		y = b.op("Mul", []string{y, b.unsqueeze(scale, 1)})
	}
	if bias != "" && !b.l.isFill(bias, 0) {
		y = b.op("Add", []string{y, b.unsqueeze(bias, 1)})
	}
	return y
}

// instanceNorm: y = scale·(x − mean)/√(var + ε) + B per sample and channel, over the spatial axes.
func (l *lowering) instanceNorm(n *Node) ([]*Node, string, error) {
	x := n.Inputs[0]
	dt, err := l.floatType(x)
	if err != nil {
		return nil, "", err
	}
	b := l.builder(n)
	x3 := b.op("Reshape", []string{x, b.ints(0, 0, -1)})
	y3 := b.affine(b.normalize(x3, dt, attrFloat(n, "epsilon", 1e-5)), input(n, 1), input(n, 2))
	b.opTo("Reshape", []string{y3, b.op("Shape", []string{x})}, n.Outputs[:1])
	return b.nodes, rwInstanceNorm, nil
}

// groupNorm: x [N, C, ...] normalised over groups of C/G channels and the spatial axes; scale and
// bias per group (opset 18) or per channel (opset 21).
func (l *lowering) groupNorm(n *Node) ([]*Node, string, error) {
	x := n.Inputs[0]
	dt, err := l.floatType(x)
	if err != nil {
		return nil, "", err
	}
	groups := attrInt(n, "num_groups", 0)
	if groups <= 0 {
		return nil, "", fmt.Errorf("GroupNormalization needs a positive num_groups")
	}
	b := l.builder(n)
	x3 := b.op("Reshape", []string{x, b.ints(0, groups, -1)})
	y3 := b.normalize(x3, dt, attrFloat(n, "epsilon", 1e-5))
	shape := b.op("Shape", []string{x})
	if l.opset < 21 {
		b.opTo("Reshape", []string{b.affine(y3, input(n, 1), input(n, 2)), shape}, n.Outputs[:1])
	} else {
		// [N, G, L] -> [N, C, L·G/C]: "0, 0" would copy G; take C from x's shape.
		yc := b.op("Reshape", []string{y3, b.op("Concat", []string{b.slice1(shape, 0, 2), b.ints(-1)}, intAttr("axis", 0))})
		b.opTo("Reshape", []string{b.affine(yc, input(n, 1), input(n, 2)), shape}, n.Outputs[:1])
	}
	return b.nodes, rwGroupNorm, nil
}

// sigmoid: σ(x) = ½·tanh(x/2) + ½, whose gradient stays finite for any x.
func (l *lowering) sigmoid(n *Node) ([]*Node, string, error) {
	x := n.Inputs[0]
	dt, err := l.floatType(x)
	if err != nil {
		return nil, "", err
	}
	b := l.builder(n)
	half := b.constant(dt, nil, 0.5)
	t := b.op("Tanh", []string{b.op("Mul", []string{x, half})})
	b.opTo("Add", []string{b.op("Mul", []string{t, half}), half}, n.Outputs[:1])
	return b.nodes, rwSigmoid, nil
}

// gelu: x·Φ(x) = ½x(1 + erf(x/√2)), or with approximate="tanh" ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
func (l *lowering) gelu(n *Node) ([]*Node, string, error) {
	x := n.Inputs[0]
	dt, err := l.floatType(x)
	if err != nil {
		return nil, "", err
	}
	b := l.builder(n)
	var inner string
	switch approx := attrString(n, "approximate", "none"); approx {
	case "none":
		inner = b.op("Erf", []string{b.op("Mul", []string{x, b.constant(dt, nil, 1/math.Sqrt2)})})
	case "tanh":
		x3 := b.op("Mul", []string{b.op("Mul", []string{x, x}), x})
		u := b.op("Add", []string{x, b.op("Mul", []string{x3, b.constant(dt, nil, 0.044715)})})
		inner = b.op("Tanh", []string{b.op("Mul", []string{u, b.constant(dt, nil, math.Sqrt(2/math.Pi))})})
	default:
		return nil, "", fmt.Errorf("unknown approximate=%q", approx)
	}
	one := b.op("Add", []string{inner, b.constant(dt, nil, 1)})
	b.opTo("Mul", []string{b.op("Mul", []string{x, b.constant(dt, nil, 0.5)}), one}, n.Outputs[:1])
	return b.nodes, rwGelu, nil
}

// nearestRepeats reports whether Resize's nearest-neighbour source index for output i, under the
// given coordinate transformation and rounding, is floor(i/r) for every i: then upsampling by r
// is repeating each element r times.
func nearestRepeats(ctm, rounding string, r int) bool {
	const n = 5 // input length; the rule is the same for any length, clamping included
	for i := 0; i < n*r; i++ {
		var x float64
		switch ctm {
		case "asymmetric":
			x = float64(i) / float64(r)
		case "half_pixel", "pytorch_half_pixel":
			x = (float64(i)+0.5)/float64(r) - 0.5
		default:
			return false
		}
		var src float64
		switch rounding {
		case "floor":
			src = math.Floor(x)
		case "ceil":
			src = math.Ceil(x)
		case "round_prefer_floor":
			src = math.Ceil(x - 0.5)
		case "round_prefer_ceil":
			src = math.Floor(x + 0.5)
		default:
			return false
		}
		src = math.Max(0, math.Min(src, n-1))
		if int(src) != i/r {
			return false
		}
	}
	return true
}

// resize lowers nearest-neighbour Resize by integer factors r (per axis) to
// Reshape(x, [d0, 1, d1, 1, ...]) -> Expand to [d0, r0, d1, r1, ...] -> Reshape([d0·r0, d1·r1, ...]).
func (l *lowering) resize(n *Node) ([]*Node, string, error) {
	mode := attrString(n, "mode", "nearest")
	ctm := attrString(n, "coordinate_transformation_mode", "half_pixel")
	rounding := attrString(n, "nearest_mode", "round_prefer_floor")
	if mode != "nearest" {
		return nil, "", fmt.Errorf("Resize mode %q cannot be imported (only nearest-neighbour upsampling by integer factors can)", mode)
	}
	if a := attr(n, "axes"); a != nil {
		return nil, "", fmt.Errorf("Resize with an axes attribute cannot be imported; export with scales for every axis")
	}
	if attrInt(n, "antialias", 0) != 0 {
		return nil, "", fmt.Errorf("Resize with antialias cannot be imported")
	}
	x := n.Inputs[0]
	scalesName, sizesName := input(n, 2), input(n, 3)
	if l.opset < 11 {
		scalesName, sizesName = input(n, 1), ""
	}
	b := l.builder(n)
	shape := b.op("Shape", []string{x})
	if scalesName != "" {
		if t, ok := l.constant(scalesName); ok && t.Elements() == 0 {
			scalesName = ""
		}
	}
	if scalesName != "" {
		scales, ok := l.constFloats(scalesName)
		if !ok {
			return nil, "", fmt.Errorf("Resize scales %q must be a constant", scalesName)
		}
		factors := make([]int64, len(scales))
		for i, s := range scales {
			r := math.Round(s)
			if r < 1 || math.Abs(s-r) > 1e-6 || !nearestRepeats(ctm, rounding, int(r)) {
				return nil, "", fmt.Errorf("Resize scale %g on axis %d with coordinate_transformation_mode=%s, nearest_mode=%s is not upsampling by repetition; only integer factors ≥ 1 are importable", s, i, ctm, rounding)
			}
			factors[i] = int64(r)
		}
		// Reshape target: x's dims with a 1 after each upsampled axis; runs of kept axes are
		// sliced from Shape(x) in one piece.
		var parts []string
		var expand []int64
		run := int64(0)
		flush := func(end int64) {
			if end > run {
				parts = append(parts, b.slice1(shape, run, end))
			}
		}
		for a, r := range factors {
			expand = append(expand, 1)
			if r > 1 {
				flush(int64(a) + 1)
				parts = append(parts, b.ints(1))
				run = int64(a) + 1
				expand = append(expand, r)
			}
		}
		flush(int64(len(factors)))
		if len(expand) == len(factors) { // all factors 1
			b.opTo("Identity", []string{x}, n.Outputs[:1])
			return b.nodes, rwResize, nil
		}
		spread := b.op("Reshape", []string{x, b.op("Concat", parts, intAttr("axis", 0))})
		wide := b.op("Expand", []string{spread, b.ints(expand...)})
		b.opTo("Reshape", []string{wide, b.op("Mul", []string{shape, b.ints(factors...)})}, n.Outputs[:1])
		return b.nodes, rwResize, nil
	}
	if sizesName == "" {
		return nil, "", fmt.Errorf("Resize has neither scales nor sizes")
	}
	if !nearestRepeats(ctm, rounding, 2) || !nearestRepeats(ctm, rounding, 3) || !nearestRepeats(ctm, rounding, 4) {
		return nil, "", fmt.Errorf("Resize by sizes with coordinate_transformation_mode=%s, nearest_mode=%s is not upsampling by repetition for every factor", ctm, rounding)
	}
	// Factors r = sizes / dims, interleaved with ones; the last Reshape to sizes fails when a
	// size is not a multiple of its dimension.
	sizes := sizesName
	if dt := l.types[sizes]; dt != Int64 && dt != Undefined {
		sizes = b.cast(sizes, Int64)
	}
	ones := b.op("Div", []string{shape, shape})
	r := b.op("Div", []string{sizes, shape})
	interleave := func(a, c string) string {
		pair := b.op("Concat", []string{b.unsqueeze(a, 1), b.unsqueeze(c, 1)}, intAttr("axis", 1))
		return b.op("Reshape", []string{pair, b.ints(-1)})
	}
	spread := b.op("Reshape", []string{x, interleave(shape, ones)})
	wide := b.op("Expand", []string{spread, interleave(ones, r)})
	b.opTo("Reshape", []string{wide, sizes}, n.Outputs[:1])
	return b.nodes, rwResize, nil
}

// argMax lowers ArgMax/ArgMin along axis a with pairwise comparisons: x_i is a maximum when
// x_i ≥ x_j for all j (the mean of the comparisons is 1); the first (or last) maximum is found
// with a CumSum of the indicator, and its index read from a CumSum of indicator × position.
func (l *lowering) argMax(n *Node) ([]*Node, string, error) {
	x := n.Inputs[0]
	axis := attrInt(n, "axis", 0)
	keep := attrInt(n, "keepdims", 1) != 0
	last := attrInt(n, "select_last_index", 0) != 0
	cmpOp := "GreaterOrEqual"
	if n.OpType == "ArgMin" {
		cmpOp = "LessOrEqual"
	}
	b := l.builder(n)
	// xi[.., i, 1, ..] and xj[.., 1, j, ..]; the j axis is reduced.
	iAxis, jAxis, red := axis+1, axis, axis+1
	if axis < 0 {
		iAxis, jAxis, red = axis, axis-1, axis
	}
	ge := b.op(cmpOp, []string{b.unsqueeze(x, iAxis), b.unsqueeze(x, jAxis)})
	mean := b.reduceMeanDrop(b.cast(ge, Float), red)
	isMax := b.cast(b.op("Equal", []string{mean, b.constant(Float, nil, 1)}), Int64)
	zero := b.scalarInt(0)
	var pick string
	if !last {
		before := b.cumSum(isMax, axis, true)
		pick = b.op("Mul", []string{isMax, b.cast(b.op("Equal", []string{before, zero}), Int64)})
	} else {
		upTo := b.cumSum(isMax, axis, false)
		total := b.op("Gather", []string{upTo, b.ints(-1)}, intAttr("axis", axis))
		after := b.op("Sub", []string{total, upTo})
		pick = b.op("Mul", []string{isMax, b.cast(b.op("Equal", []string{after, zero}), Int64)})
	}
	ones := b.op("ConstantOfShape", []string{b.op("Shape", []string{pick})},
		&Attr{Name: "value", Type: AttrTensor, T: NewTensor("one", Int64, []int64{1}, 1)})
	position := b.cumSum(ones, axis, true)
	sum := b.cumSum(b.op("Mul", []string{pick, position}), axis, false)
	idx := b.scalarInt(-1)
	if keep {
		idx = b.ints(-1)
	}
	b.opTo("Gather", []string{sum, idx}, n.Outputs[:1], intAttr("axis", axis))
	return b.nodes, rwArgMax, nil
}

// gatherND: y[i..] = data[idx[i.., 0], …, idx[i.., k−1], rest..] becomes a Gather along axis 0
// of data reshaped to [d₀·…·d_{k−1}, rest..] at the row-major linear index Σⱼ idxⱼ·strideⱼ
// (negative indices counted from the end); k, the indices' last dimension, must be known.
func (l *lowering) gatherND(n *Node) ([]*Node, string, error) {
	if attrInt(n, "batch_dims", 0) != 0 {
		return nil, "", fmt.Errorf("GatherND with batch_dims > 0 cannot be imported")
	}
	data, indices := n.Inputs[0], n.Inputs[1]
	dims, ok := l.shapeOf(indices)
	if !ok || len(dims) == 0 || dims[len(dims)-1].Value <= 0 {
		return nil, "", fmt.Errorf("GatherND needs the last dimension of its indices %q in the model (value_info)", indices)
	}
	k := dims[len(dims)-1].Value
	b := l.builder(n)
	shape := b.op("Shape", []string{data})
	idx := indices
	if dt := l.types[indices]; dt != Int64 {
		idx = b.cast(indices, Int64)
	}
	zero := b.scalarInt(0)
	var linear, stride string
	for j := k - 1; j >= 0; j-- {
		ij := b.op("Gather", []string{idx, b.scalarInt(j)}, intAttr("axis", -1))
		dj := b.squeeze(b.slice1(shape, j, j+1), 0)
		ij = b.op("Where", []string{b.op("Less", []string{ij, zero}), b.op("Add", []string{ij, dj}), ij})
		term := ij
		if stride != "" {
			term = b.op("Mul", []string{ij, stride})
		}
		if linear == "" {
			linear = term
		} else {
			linear = b.op("Add", []string{linear, term})
		}
		if stride == "" {
			stride = dj
		} else {
			stride = b.op("Mul", []string{stride, dj})
		}
	}
	flat := b.op("Reshape", []string{data, b.op("Concat", []string{b.ints(-1), b.slice1(shape, k, math.MaxInt32)}, intAttr("axis", 0))})
	b.opTo("Gather", []string{flat, linear}, n.Outputs[:1], intAttr("axis", 0))
	return b.nodes, rwGatherND, nil
}

// shapeOf returns a value's recorded dimensions: graph inputs, value_info, constants.
func (l *lowering) shapeOf(name string) ([]Dim, bool) {
	if t, ok := l.constant(name); ok {
		dims := make([]Dim, len(t.Dims))
		for i, d := range t.Dims {
			dims[i] = Dim{Value: d}
		}
		return dims, true
	}
	for _, list := range [][]*ValueInfo{l.g.Inputs, l.g.ValueInfo, l.g.Outputs} {
		for _, v := range list {
			if v.Name == name {
				return v.Shape()
			}
		}
	}
	return nil, false
}

// staticallyEmpty reports whether name is a 1-D value with no elements whatever the model's
// inputs: an empty constant, or a Slice of a Shape whose constant range is empty (flatten()'s
// Slice(Shape(x), 0, 0)).
func (l *lowering) staticallyEmpty(name string) bool {
	producers := l.prod
	if t, ok := l.constant(name); ok {
		return t.Elements() == 0 && len(t.Dims) == 1
	}
	s := producers[name]
	if s == nil || s.OpType != "Slice" || len(s.Inputs) < 3 {
		return false
	}
	if p := producers[s.Inputs[0]]; p == nil || p.OpType != "Shape" {
		return false
	}
	starts, ok1 := l.constInts(s.Inputs[1])
	ends, ok2 := l.constInts(s.Inputs[2])
	if !ok1 || !ok2 || len(starts) != 1 || len(ends) != 1 {
		return false
	}
	if axes := input(s, 3); axes != "" {
		if a, ok := l.constInts(axes); !ok || len(a) != 1 || (a[0] != 0 && a[0] != -1) {
			return false
		}
	}
	if steps := input(s, 4); steps != "" {
		if st, ok := l.constInts(steps); !ok || len(st) != 1 || st[0] != 1 {
			return false
		}
	}
	start, end := starts[0], ends[0]
	return (start >= 0) == (end >= 0) && end <= start
}

// emptyConcat drops statically empty inputs of a Concat (keeping at least one).
func (l *lowering) emptyConcat(n *Node) ([]*Node, string, error) {
	var keep []string
	for _, in := range n.Inputs {
		if !l.staticallyEmpty(in) {
			keep = append(keep, in)
		}
	}
	if len(keep) == len(n.Inputs) || len(keep) == 0 {
		return nil, "", nil
	}
	c := *n
	c.Inputs = keep
	return []*Node{&c}, rwEmptyConcat, nil
}

// negativeGather rewrites Gather(data, idx) with constant idx holding negative entries to
// Gather(data, idx + (idx < 0)·dim), dim the length of data's gathered axis.
func (l *lowering) negativeGather(n *Node) ([]*Node, string, error) {
	idxName := input(n, 1)
	t, ok := l.constant(idxName)
	if !ok || (t.DataType != Int64 && t.DataType != Int32) || t.Elements() > 1<<16 {
		return nil, "", nil
	}
	idx, err := t.Int64s()
	if err != nil || !slices.ContainsFunc(idx, func(v int64) bool { return v < 0 }) {
		return nil, "", nil
	}
	axis := attrInt(n, "axis", 0)
	b := l.builder(n)
	end := axis + 1
	if axis == -1 {
		end = math.MaxInt64
	}
	dim := b.op("Slice", []string{b.op("Shape", []string{n.Inputs[0]}), b.ints(axis), b.ints(end), b.ints(0)})
	if len(t.Dims) == 0 {
		dim = b.squeeze(dim, 0)
	}
	if t.DataType != Int64 {
		dim = b.cast(dim, t.DataType)
	}
	mask := make([]float64, len(idx))
	for i, v := range idx {
		if v < 0 {
			mask[i] = 1
		}
	}
	fixed := b.op("Add", []string{idxName, b.op("Mul", []string{b.constant(t.DataType, t.Dims, mask...), dim})})
	c := *n
	c.Inputs = []string{n.Inputs[0], fixed}
	return append(b.nodes, &c), rwNegGather, nil
}
