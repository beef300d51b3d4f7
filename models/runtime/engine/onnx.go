package engine

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/onnx-gomlx/onnx"

	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
)

// Imported is a frozen ONNX network that can be built into GoMLX graphs with Call. Its weights
// live as non-trainable variables in the context scope Scope, so optimizers leave them alone
// while gradients still flow through the network to its inputs.
type Imported struct {
	// Path is the ONNX file it was read from ("" for a graph imported from memory).
	Path string
	// Scope is the context scope (relative to the ctx given to Call) that holds the network's
	// variables; ImportONNX sets it to "onnx_" + the file's base name ("onnx_" + the folder's
	// name for diffusers' <component>/model.onnx). Change it before the first Call to import the
	// same file twice with separate weights.
	Scope string
	// InputNames and OutputNames are the graph's inputs (in Call's argument order) and outputs
	// (in Call's result order).
	InputNames, OutputNames []string
	// InputTypes are the element types Call's inputs must have, in InputNames order, after the
	// rewrites (a float16 export takes float32).
	InputTypes []dtypes.DType
	// Rewrites lists the graph rewrites applied before import (see onnxgraph.Lower), for run
	// manifests; empty when the graph needed none.
	Rewrites []onnxgraph.Rewrite
	// WeightBytes is the size of the network's weights as loaded (float32 for a float16 export).
	WeightBytes int64

	model *onnx.Model
	graph *onnxgraph.Model // where the weights are read from
}

// ImportONNX reads an ONNX model file for use inside GoMLX graphs: a model exported by
// torch.onnx.export or optimum-cli (diffusers' UNet2DConditionModel, transformers' CLIP text
// models), with weights inline or in external data files beside it (model.onnx_data). The graph
// is rewritten into ops onnx-gomlx v0.3.4 converts (onnxgraph.Lower; Rewrites lists what was
// done). Weights are not read here: the first Call reads them straight into the backend's
// buffers, so they are held once.
//
// It returns an error naming the file when it cannot be read or parsed, and naming the file, the
// node and the op when a node cannot be rewritten or imported, before any graph is built.
func ImportONNX(path string) (*Imported, error) {
	g, err := onnxgraph.Read(path)
	if err != nil {
		return nil, fmt.Errorf("engine.ImportONNX: %w", err)
	}
	return ImportGraph(g)
}

// ImportGraph is ImportONNX for a model already read with onnxgraph.Read (and possibly edited,
// e.g. with an intermediate value turned into an input by onnxgraph.Graph.CutAt). It lowers g in
// place. The scope is derived from g.Path as in ImportONNX ("onnx_model" when g.Path is empty).
func ImportGraph(g *onnxgraph.Model) (*Imported, error) {
	where := g.Path
	if where == "" {
		where = "ONNX model"
	}
	rewrites, err := onnxgraph.Lower(g)
	if err != nil {
		return nil, fmt.Errorf("engine.ImportONNX: %w", err)
	}
	frame, weightBytes, err := importFrame(g)
	if err != nil {
		return nil, fmt.Errorf("engine.ImportONNX: %s: %w", where, err)
	}
	var m *onnx.Model
	if perr := catch(func() { m, err = onnx.Parse(frame) }); perr != nil || err != nil {
		return nil, fmt.Errorf("engine.ImportONNX: %s: onnx-gomlx: %w", where, firstErr(perr, err))
	}
	types := make([]dtypes.DType, len(m.InputsShapes))
	for i, s := range m.InputsShapes {
		types[i] = s.DType
	}
	return &Imported{
		Path:        g.Path,
		Scope:       scopeFor(g.Path),
		InputNames:  slices.Clone(m.InputsNames),
		OutputNames: slices.Clone(m.OutputsNames),
		InputTypes:  types,
		Rewrites:    rewrites,
		WeightBytes: weightBytes,
		model:       m,
		graph:       g,
	}, nil
}

// scopeFor returns "onnx_" + the file's base name, or the folder's name for a file called
// model.onnx (diffusers' unet/model.onnx gives "onnx_unet").
func scopeFor(path string) string {
	base := "model"
	if path != "" {
		base = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if dir := filepath.Base(filepath.Dir(path)); base == "model" && dir != "." && dir != string(filepath.Separator) {
			base = dir
		}
	}
	return "onnx_" + strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, base)
}

// importFrame returns the model as bytes for onnx-gomlx with the weights left out: initializers
// keep name, type and shape (onnx-gomlx reads the values from the context's variables), except
// small integer ones, which it may read as constants (shapes, axes), and which stay inline. It
// also returns the weights' size.
func importFrame(g *onnxgraph.Model) ([]byte, int64, error) {
	frame := *g
	graphCopy := *g.Graph
	frame.Graph = &graphCopy
	// onnx-gomlx needs every input and output shaped, and takes unnamed dynamic dimensions
	// ("?") of different inputs to be one and the same: name each on its own. Output shapes it
	// does not use: a missing one is declared a scalar.
	graphCopy.Inputs = make([]*onnxgraph.ValueInfo, len(g.Graph.Inputs))
	for i, v := range g.Graph.Inputs {
		dims, ok := v.Shape()
		if !ok || v.ElemType() == onnxgraph.Undefined {
			return nil, 0, fmt.Errorf("input %q has no tensor type and shape: export with input shapes", v.Name)
		}
		for k := range dims {
			if dims[k].Value <= 0 && dims[k].Param == "" {
				dims[k].Param = fmt.Sprintf("%s_dim%d", v.Name, k)
			}
		}
		graphCopy.Inputs[i] = &onnxgraph.ValueInfo{Name: v.Name, Type: onnxgraph.NewTensorType(v.ElemType(), dims...)}
	}
	graphCopy.Outputs = make([]*onnxgraph.ValueInfo, len(g.Graph.Outputs))
	for i, v := range g.Graph.Outputs {
		graphCopy.Outputs[i] = v
		if _, ok := v.Shape(); !ok {
			graphCopy.Outputs[i] = &onnxgraph.ValueInfo{Name: v.Name, Type: onnxgraph.NewTensorType(v.ElemType(), []onnxgraph.Dim{}...)}
		}
	}
	graphCopy.Initializers = make([]*onnxgraph.Tensor, len(g.Graph.Initializers))
	var total int64
	for i, t := range g.Graph.Initializers {
		n, err := t.NumBytes()
		if err != nil {
			return nil, 0, err
		}
		if _, err := gomlxDType(t.DataType); err != nil {
			return nil, 0, fmt.Errorf("initializer %q: %w", t.Name, err)
		}
		total += n
		if isIntType(t.DataType) && t.Elements() <= 1<<14 {
			c, err := t.InMemoryCopy()
			if err != nil {
				return nil, 0, err
			}
			graphCopy.Initializers[i] = c
			continue
		}
		graphCopy.Initializers[i] = t.Header()
	}
	b, err := frame.Encode()
	return b, total, err
}

func isIntType(dt onnxgraph.DataType) bool {
	switch dt {
	case onnxgraph.Int64, onnxgraph.Int32, onnxgraph.Int16, onnxgraph.Int8, onnxgraph.Uint8,
		onnxgraph.Uint16, onnxgraph.Uint32, onnxgraph.Uint64, onnxgraph.Bool:
		return true
	}
	return false
}

// gomlxDType maps an ONNX element type to GoMLX's.
func gomlxDType(dt onnxgraph.DataType) (dtypes.DType, error) {
	switch dt {
	case onnxgraph.Float:
		return dtypes.Float32, nil
	case onnxgraph.Double:
		return dtypes.Float64, nil
	case onnxgraph.Float16:
		return dtypes.Float16, nil
	case onnxgraph.BFloat16:
		return dtypes.BFloat16, nil
	case onnxgraph.Int64:
		return dtypes.Int64, nil
	case onnxgraph.Int32:
		return dtypes.Int32, nil
	case onnxgraph.Int16:
		return dtypes.Int16, nil
	case onnxgraph.Int8:
		return dtypes.Int8, nil
	case onnxgraph.Uint8:
		return dtypes.Uint8, nil
	case onnxgraph.Uint16:
		return dtypes.Uint16, nil
	case onnxgraph.Uint32:
		return dtypes.Uint32, nil
	case onnxgraph.Uint64:
		return dtypes.Uint64, nil
	case onnxgraph.Bool:
		return dtypes.Bool, nil
	case onnxgraph.Complex64:
		return dtypes.Complex64, nil
	case onnxgraph.Complex128:
		return dtypes.Complex128, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("element type %s cannot be imported into GoMLX", dt)
}

// Call builds the imported network into the graph of its inputs (one per InputNames entry, in
// order, of InputTypes) and returns its outputs (one per OutputNames entry). On first use in a
// context it loads the network's weights into variables under ctx.In(Scope) (unless they are
// already there, e.g. loaded from a checkpoint) and marks every one of them non-trainable. Like
// all GoMLX graph-building functions it reports errors (wrong number or shape of inputs, a
// missing or truncated external data file) by panicking with an error value, which GoMLX's Exec
// returns as an error.
func (imp *Imported) Call(ctx *context.Context, inputs ...*graph.Node) []*graph.Node {
	if len(inputs) != len(imp.InputNames) {
		panic(fmt.Errorf("engine: ONNX model %s takes %d inputs %q, got %d", imp.Path, len(imp.InputNames), imp.InputNames, len(inputs)))
	}
	if len(inputs) == 0 {
		panic(fmt.Errorf("engine: ONNX model %s has no inputs: nothing to build it into", imp.Path))
	}
	for i, in := range inputs {
		if in.DType() != imp.InputTypes[i] {
			panic(fmt.Errorf("engine: ONNX model %s: input %q must be %s, got %s", imp.Path, imp.InputNames[i], imp.InputTypes[i], in.DType()))
		}
	}
	ctx = ctx.In(imp.Scope)
	if err := imp.ensureVariables(ctx, inputs[0].Graph().Backend()); err != nil {
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

// Variables returns the network's weight variables in ctx (created by the first Call or
// LoadWeights), in the ONNX file's initializer order; missing ones are skipped, so it returns nil
// before any Call.
func (imp *Imported) Variables(ctx *context.Context) []*context.Variable {
	return imp.scopedVariables(ctx.In(imp.Scope))
}

// LoadWeights loads the network's weights into ctx (under Scope) on backend, as the first Call
// would, so that loading errors (a missing or truncated external data file) come as an error
// before any graph is built. Weights already in ctx are kept.
func (imp *Imported) LoadWeights(ctx *context.Context, backend backends.Backend) error {
	return imp.ensureVariables(ctx.In(imp.Scope), backend)
}

// scopedVariables is Variables for a ctx already in imp.Scope.
func (imp *Imported) scopedVariables(ctx *context.Context) []*context.Variable {
	varCtx := ctx.In(onnx.ModelScope)
	var vars []*context.Variable
	for _, t := range imp.graph.Graph.Initializers {
		if v := varCtx.InspectVariableIfLoaded(varCtx.Scope(), onnx.SafeVarName(t.Name)); v != nil {
			vars = append(vars, v)
		}
	}
	return vars
}

// ensureVariables creates the model's missing variables in ctx (already scoped), reading each
// weight from its file straight into a buffer of backend, and freezes all of them.
func (imp *Imported) ensureVariables(ctx *context.Context, backend backends.Backend) error {
	varCtx := ctx.In(onnx.ModelScope).Checked(false)
	files := &onnxgraph.Files{}
	defer files.Close()
	init := imp.graph.Graph.Initializers
	for _, t := range init {
		name := onnx.SafeVarName(t.Name)
		if varCtx.InspectVariableIfLoaded(varCtx.Scope(), name) != nil {
			continue
		}
		value, err := loadWeight(backend, t, files)
		if err != nil {
			return fmt.Errorf("engine: loading weights of ONNX model %s: %w", imp.Path, err)
		}
		if err := catch(func() { varCtx.VariableWithValue(name, value) }); err != nil {
			return fmt.Errorf("engine: loading weights of ONNX model %s: %w", imp.Path, err)
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

// loadWeight reads one initializer into a tensor on backend: into a shared buffer where the
// backend has them (CPU), so that the bytes are read once into their final place; otherwise
// through one host copy that is released once the device holds the value.
func loadWeight(backend backends.Backend, t *onnxgraph.Tensor, files *onnxgraph.Files) (*tensors.Tensor, error) {
	dt, err := gomlxDType(t.DataType)
	if err != nil {
		return nil, fmt.Errorf("initializer %q: %w", t.Name, err)
	}
	dims := make([]int, len(t.Dims))
	for i, d := range t.Dims {
		dims[i] = int(d)
	}
	shape := shapes.Make(dt, dims...)
	if useSharedBuffers(backend) && shape.Size() > 0 {
		buf, flat, err := backend.NewSharedBuffer(0, shape)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", t.Name, err)
		}
		if err := t.ReadInto(flatBytes(flat), files); err != nil {
			_ = backend.BufferFinalize(buf)
			return nil, err
		}
		return tensors.FromBuffer(backend, buf)
	}
	value := tensors.FromShape(shape)
	var readErr error
	if err := value.MutableBytes(func(b []byte) { readErr = t.ReadInto(b, files) }); err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, readErr
	}
	if shape.Size() == 0 {
		return value, nil
	}
	if err := value.MaterializeOnDevice(backend, false, 0); err != nil {
		return nil, fmt.Errorf("initializer %q: %w", t.Name, err)
	}
	value.FinalizeLocal()
	return value, nil
}

// useSharedBuffers reports whether weights are read into shared buffers on backend; tests turn
// it off to run the path of backends without them (XLA on a GPU).
var useSharedBuffers = func(b backends.Backend) bool { return b.HasSharedBuffers() }

// flatBytes views a flat Go slice of numbers ([]float32, []int64, ...) as its bytes.
func flatBytes(flat any) []byte {
	v := reflect.ValueOf(flat)
	if v.Len() == 0 {
		return nil
	}
	size := int(v.Type().Elem().Size())
	return unsafe.Slice((*byte)(v.UnsafePointer()), v.Len()*size)
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
