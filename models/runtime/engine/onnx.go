package engine

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/onnx-gomlx/onnx"
)

// onnxSupportedOps are the ONNX op types that onnx-gomlx v0.3.4 converts (its convertNode). Notably
// missing: Sigmoid, InstanceNormalization, Resize — PyTorch exports of SiLU, GroupNorm and
// upsampling produce them, so models meant for import rewrite those modules before export.
var onnxSupportedOps = map[string]bool{}

func init() {
	for _, op := range strings.Fields(`Add Sub Mul Div Pow And Or Xor BitwiseAnd BitwiseOr BitwiseXor
		Equal Less LessOrEqual Greater GreaterOrEqual Sqrt Exp Log Erf Relu Abs Neg Sign Ceil Floor
		Identity Not BitwiseNot Tanh Sin Cos MatMul Clip Where Min Max Constant Gather GatherElements
		Shape Concat Softmax Cast Transpose Gemm Flatten DequantizeLinear QuantizeLinear MatMulInteger
		QLinearMatMul Squeeze Unsqueeze Slice Reshape ReduceMean ConstantOfShape Expand Tile Range
		CumSum LSTM Conv AveragePool MaxPool GlobalAveragePool BatchNormalization LayerNormalization
		Pad DynamicQuantizeLinear Split Trilu ScatterND If`) {
		onnxSupportedOps[op] = true
	}
}

// Imported is a frozen ONNX network that can be built into GoMLX graphs with Call. Its weights
// live as non-trainable variables in the context scope Scope, so optimizers leave them alone
// while gradients still flow through the network to its inputs.
type Imported struct {
	// Path is the ONNX file it was read from.
	Path string
	// Scope is the context scope (relative to the ctx given to Call) that holds the network's
	// variables; ImportONNX sets it to "onnx_" + the file's base name. Change it before the first
	// Call to import the same file twice with separate weights.
	Scope string
	// InputNames and OutputNames are the graph's inputs (in Call's argument order) and outputs
	// (in Call's result order).
	InputNames, OutputNames []string

	model *onnx.Model
}

// ImportONNX reads an ONNX model file for use inside GoMLX graphs. It returns an error if the file
// cannot be read or parsed, or if the graph uses ops that onnx-gomlx cannot convert (the error
// lists them), so such problems surface before any graph is built.
func ImportONNX(path string) (*Imported, error) {
	m, err := onnx.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("engine.ImportONNX: %w", err)
	}
	unsupported := map[string][]string{}
	for _, n := range m.Proto.Graph.Node {
		if !onnxSupportedOps[n.OpType] {
			unsupported[n.OpType] = append(unsupported[n.OpType], n.Name)
		}
	}
	if len(unsupported) > 0 {
		var parts []string
		for op, nodes := range unsupported {
			parts = append(parts, fmt.Sprintf("%s (%d nodes, first %q)", op, len(nodes), nodes[0]))
		}
		sort.Strings(parts)
		return nil, fmt.Errorf("engine.ImportONNX: %s: ops not supported by onnx-gomlx v0.3.4: %s", path, strings.Join(parts, ", "))
	}
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	scope := "onnx_" + strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, base)
	return &Imported{
		Path:        path,
		Scope:       scope,
		InputNames:  slices.Clone(m.InputsNames),
		OutputNames: slices.Clone(m.OutputsNames),
		model:       m,
	}, nil
}

// Call builds the imported network into the graph of its inputs (one per InputNames entry, in
// order) and returns its outputs (one per OutputNames entry). On first use in a context it creates
// the network's weights as variables under ctx.In(Scope) (unless they are already there, e.g.
// loaded from a checkpoint) and marks every one of them non-trainable. Like all GoMLX
// graph-building functions it reports errors (wrong number or shape of inputs) by panicking with
// an error value, which GoMLX's Exec returns as an error.
func (imp *Imported) Call(ctx *context.Context, inputs ...*graph.Node) []*graph.Node {
	if len(inputs) != len(imp.InputNames) {
		panic(fmt.Errorf("engine: ONNX model %s takes %d inputs %q, got %d", imp.Path, len(imp.InputNames), imp.InputNames, len(inputs)))
	}
	if len(inputs) == 0 {
		panic(fmt.Errorf("engine: ONNX model %s has no inputs: nothing to build it into", imp.Path))
	}
	ctx = ctx.In(imp.Scope)
	if err := imp.ensureVariables(ctx); err != nil {
		panic(err)
	}
	feed := make(map[string]*graph.Node, len(inputs))
	for i, name := range imp.InputNames {
		feed[name] = inputs[i]
	}
	var outs []*graph.Node
	if err := catch(func() { outs = imp.model.CallGraph(ctx, inputs[0].Graph(), feed) }); err != nil {
		panic(fmt.Errorf("engine: building ONNX model %s: %w", imp.Path, err))
	}
	return outs
}

// Variables returns the network's weight variables in ctx (created by the first Call), in the
// ONNX file's initializer order; missing ones are skipped, so it returns nil before any Call.
func (imp *Imported) Variables(ctx *context.Context) []*context.Variable {
	return imp.scopedVariables(ctx.In(imp.Scope))
}

// scopedVariables is Variables for a ctx already in imp.Scope.
func (imp *Imported) scopedVariables(ctx *context.Context) []*context.Variable {
	varCtx := ctx.In(onnx.ModelScope)
	var vars []*context.Variable
	for _, t := range imp.model.Proto.Graph.Initializer {
		if v := varCtx.InspectVariableIfLoaded(varCtx.Scope(), onnx.SafeVarName(t.Name)); v != nil {
			vars = append(vars, v)
		}
	}
	return vars
}

// ensureVariables creates the model's variables in ctx (already scoped) when any is missing, and
// freezes all of them.
func (imp *Imported) ensureVariables(ctx *context.Context) error {
	init := imp.model.Proto.Graph.Initializer
	varCtx := ctx.In(onnx.ModelScope)
	missing := false
	for _, t := range init {
		if varCtx.InspectVariableIfLoaded(varCtx.Scope(), onnx.SafeVarName(t.Name)) == nil {
			missing = true
			break
		}
	}
	if missing {
		var err error
		if perr := catch(func() { err = imp.model.VariablesToContext(ctx) }); perr != nil || err != nil {
			return fmt.Errorf("engine: loading weights of ONNX model %s: %w", imp.Path, firstErr(perr, err))
		}
	}
	vars := imp.scopedVariables(ctx)
	for _, v := range vars {
		v.SetTrainable(false)
	}
	if n := len(vars); n != len(init) {
		return fmt.Errorf("engine: ONNX model %s has %d weights, found %d in scope %q", imp.Path, len(init), n, varCtx.Scope())
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
