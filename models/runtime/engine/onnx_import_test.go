package engine

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// The fixtures of tools/onnx_import_fixtures.py: a diffusers-like UNet and a transformers-like
// CLIP text encoder exported by torch 1.13, with torch's outputs and autograd gradients.
const importDir = "testdata/import"

type refTensor struct {
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
	Data  string `json:"data"`
}

type importRef struct {
	Inputs   map[string]refTensor `json:"inputs"`
	Outputs  map[string]refTensor `json:"outputs"`
	Weights  map[string]refTensor `json:"weights"`
	Grads    map[string]refTensor `json:"grads"`
	F64      *importRef           `json:"f64"`
	FP16     *importRef           `json:"fp16"`
	EOSIndex []int64              `json:"eos_index"`
	Ops      []string             `json:"ops"`
}

func readImportRef(t testing.TB, name string) importRef {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(importDir, name))
	if err != nil {
		t.Fatalf("%v (run /usr/bin/python3 tools/onnx_import_fixtures.py)", err)
	}
	var ref importRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return ref
}

// values decodes the tensor to float64s (float32, float64 and int64 data).
func (r refTensor) values(t testing.TB) []float64 {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	switch r.DType {
	case "float32":
		for i := 0; i < len(raw); i += 4 {
			out = append(out, float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[i:]))))
		}
	case "float64":
		for i := 0; i < len(raw); i += 8 {
			out = append(out, math.Float64frombits(binary.LittleEndian.Uint64(raw[i:])))
		}
	case "int64":
		for i := 0; i < len(raw); i += 8 {
			out = append(out, float64(int64(binary.LittleEndian.Uint64(raw[i:]))))
		}
	default:
		t.Fatalf("reference dtype %q", r.DType)
	}
	return out
}

// gomlx returns the tensor as a GoMLX tensor of dt.
func (r refTensor) gomlx(t testing.TB, dt dtypes.DType) *tensors.Tensor {
	v := r.values(t)
	switch dt {
	case dtypes.Float32:
		f := make([]float32, len(v))
		for i, x := range v {
			f[i] = float32(x)
		}
		return tensors.FromFlatDataAndDimensions(f, r.Shape...)
	case dtypes.Float64:
		return tensors.FromFlatDataAndDimensions(v, r.Shape...)
	case dtypes.Int64:
		n := make([]int64, len(v))
		for i, x := range v {
			n[i] = int64(x)
		}
		return tensors.FromFlatDataAndDimensions(n, r.Shape...)
	}
	t.Fatalf("dtype %s", dt)
	return nil
}

func (r refTensor) ort(t testing.TB) ort.Tensor {
	v := r.values(t)
	shape := make([]int64, len(r.Shape))
	for i, d := range r.Shape {
		shape[i] = int64(d)
	}
	if r.DType == "int64" {
		n := make([]int64, len(v))
		for i, x := range v {
			n[i] = int64(x)
		}
		return ort.NewTensor(shape, n)
	}
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return ort.NewTensor(shape, f)
}

// importRun is a forward (and optionally backward) pass through an imported network.
type importRun struct {
	outputs map[string][]float64
	grads   map[string][]float64
}

// runImport feeds ref's inputs to imp and returns every output and the gradients of
// L = Σ_o Σ r_o·y_o (r_o = ref.Weights) w.r.t. the inputs named in wrt.
func runImport(t testing.TB, imp *Imported, ctx *context.Context, inputs map[string]*tensors.Tensor, weights map[string]*tensors.Tensor, wrt ...string) importRun {
	t.Helper()
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	var outNames []string
	for _, o := range imp.OutputNames {
		if _, ok := weights[o]; ok || weights == nil {
			outNames = append(outNames, o)
		}
	}
	var args []*tensors.Tensor
	for _, n := range imp.InputNames {
		in, ok := inputs[n]
		if !ok {
			t.Fatalf("no test input for %q", n)
		}
		args = append(args, in)
	}
	for _, o := range imp.OutputNames {
		if w, ok := weights[o]; ok {
			args = append(args, w)
		}
	}
	nIn := len(imp.InputNames)
	e, err := context.NewExec(b, ctx, func(ctx *context.Context, xs []*graph.Node) []*graph.Node {
		ys := imp.Call(ctx, xs[:nIn]...)
		var res []*graph.Node
		var loss *graph.Node
		k := nIn
		for i, o := range imp.OutputNames {
			if _, ok := weights[o]; !ok && weights != nil {
				continue
			}
			res = append(res, graph.ConvertDType(ys[i], dtypes.Float64))
			if weights != nil {
				term := graph.ReduceAllSum(graph.Mul(ys[i], xs[k]))
				k++
				if loss == nil {
					loss = term
				} else {
					loss = graph.Add(loss, term)
				}
			}
		}
		if len(wrt) > 0 {
			var nodes []*graph.Node
			for _, w := range wrt {
				nodes = append(nodes, xs[slices.Index(imp.InputNames, w)])
			}
			for _, g := range graph.Gradient(loss, nodes...) {
				res = append(res, graph.ConvertDType(g, dtypes.Float64))
			}
		}
		return res
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	out, err := e.Exec(args)
	if err != nil {
		t.Fatal(err)
	}
	r := importRun{outputs: map[string][]float64{}, grads: map[string][]float64{}}
	for i, o := range outNames {
		r.outputs[o] = tensors.MustCopyFlatData[float64](out[i])
	}
	for i, w := range wrt {
		r.grads[w] = tensors.MustCopyFlatData[float64](out[len(outNames)+i])
	}
	return r
}

// maxRelDiff returns max |a−b| / max(1, max |b|): the error relative to the values' scale.
func maxRelDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	scale, worst := 1.0, 0.0
	for _, v := range b {
		scale = math.Max(scale, math.Abs(v))
	}
	for i := range a {
		d := math.Abs(a[i] - b[i])
		if math.IsNaN(d) {
			return math.Inf(1)
		}
		worst = math.Max(worst, d)
	}
	return worst / scale
}

func refInputs(t testing.TB, ref importRef, imp *Imported) map[string]*tensors.Tensor {
	in := map[string]*tensors.Tensor{}
	for i, n := range imp.InputNames {
		if r, ok := ref.Inputs[n]; ok {
			in[n] = r.gomlx(t, imp.InputTypes[i])
		}
	}
	return in
}

func refWeights(t testing.TB, ref importRef, dt dtypes.DType) map[string]*tensors.Tensor {
	w := map[string]*tensors.Tensor{}
	for n, r := range ref.Weights {
		w[n] = r.gomlx(t, dt)
	}
	return w
}

// ortOutputs runs the model file with ONNX Runtime on ref's inputs.
func ortOutputs(t testing.TB, path string, ref importRef) map[string][]float64 {
	t.Helper()
	if err := ort.Init(""); err != nil {
		t.Fatalf("%v", err)
	}
	s, err := ort.Open(path, ort.Options{IntraOpThreads: 1, InterOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	feed := map[string]ort.Tensor{}
	for n, r := range ref.Inputs {
		feed[n] = r.ort(t)
	}
	out, err := s.Run(feed)
	if err != nil {
		t.Fatal(err)
	}
	res := map[string][]float64{}
	for n, v := range out {
		f, err := ort.Data[float32](v)
		if err != nil {
			t.Fatalf("output %s: %v", n, err)
		}
		res[n] = make([]float64, len(f))
		for i, x := range f {
			res[n][i] = float64(x)
		}
	}
	return res
}

// Tolerances, relative to the largest magnitude of the values compared (see maxRelDiff).
// float32: the fixtures' outputs and gradients are O(1)–O(10) and ~100 rounding steps of 6e-8
// lie on their deepest paths (convolutions of 144 products, attention, group norms), so a few
// 1e-6 are expected between any two float32 implementations. float64: the same paths in
// double precision, except that ONNX stores the norms' epsilon as a float32 (1e-5 becomes
// 9.99999975e-06, a change of 2.5e-13 in each variance).
const (
	tolF32 = 5e-6
	tolF64 = 1e-10
)

func TestImportUNetMatchesORTAndTorch(t *testing.T) {
	ref := readImportRef(t, "unet_ref.json")
	path := filepath.Join(importDir, "unet.onnx")
	imp, err := ImportONNX(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	run := runImport(t, imp, ctx, refInputs(t, ref, imp), refWeights(t, ref, dtypes.Float32), "sample", "encoder_hidden_states")
	ortOut := ortOutputs(t, path, ref)
	want := ref.Outputs["out_sample"].values(t)
	dOrt, dTorch := maxRelDiff(run.outputs["out_sample"], ortOut["out_sample"]), maxRelDiff(run.outputs["out_sample"], want)
	t.Logf("float32 forward: GoMLX vs ORT %.2g, vs torch %.2g (ORT vs torch %.2g)", dOrt, dTorch, maxRelDiff(ortOut["out_sample"], want))
	if dOrt > tolF32 || dTorch > tolF32 {
		t.Errorf("forward differs: vs ORT %g, vs torch %g (tolerance %g)", dOrt, dTorch, tolF32)
	}
	for _, in := range []string{"sample", "encoder_hidden_states"} {
		g := ref.Grads[in].values(t)
		d := maxRelDiff(run.grads[in], g)
		t.Logf("float32 d L/d %s vs torch autograd: %.2g", in, d)
		if d > tolF32 || maxAbs(g) < 1e-3 {
			t.Errorf("gradient w.r.t. %s differs from torch by %g (tolerance %g), |grad| max %g", in, d, tolF32, maxAbs(g))
		}
	}
	for _, v := range imp.Variables(ctx) {
		if v.Trainable {
			t.Errorf("variable %s is trainable, want frozen", v.ScopeAndName())
		}
	}
	if n := len(imp.Variables(ctx)); n == 0 || imp.Scope != "onnx_unet" {
		t.Errorf("%d variables in scope %q", n, imp.Scope)
	}
}

func TestImportUNetFloat64MatchesTorch(t *testing.T) {
	ref := *readImportRef(t, "unet_ref.json").F64
	imp, err := ImportONNX(filepath.Join(importDir, "unet_f64.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	run := runImport(t, imp, context.New(), refInputs(t, ref, imp), refWeights(t, ref, dtypes.Float64), "sample", "encoder_hidden_states")
	d := maxRelDiff(run.outputs["out_sample"], ref.Outputs["out_sample"].values(t))
	t.Logf("float64 forward vs torch: %.2g", d)
	if d > tolF64 {
		t.Errorf("float64 forward differs from torch by %g (tolerance %g)", d, tolF64)
	}
	for _, in := range []string{"sample", "encoder_hidden_states"} {
		d := maxRelDiff(run.grads[in], ref.Grads[in].values(t))
		t.Logf("float64 d L/d %s vs torch autograd: %.2g", in, d)
		if d > tolF64 {
			t.Errorf("float64 gradient w.r.t. %s differs from torch by %g (tolerance %g)", in, d, tolF64)
		}
	}
}

func maxAbs(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

func rewriteNames(rs []onnxgraph.Rewrite) []string {
	var out []string
	for _, r := range rs {
		out = append(out, strings.SplitN(r.Name, " ", 2)[0])
	}
	return out
}

// TestImportUNetRewrites pins which rewrites the UNet export needs: each is a blocker measured
// with onnx-gomlx v0.3.4 on diffusers' graphs.
func TestImportUNetRewrites(t *testing.T) {
	imp, err := ImportONNX(filepath.Join(importDir, "unet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range imp.Rewrites {
		got[strings.SplitN(r.Name, " ", 2)[0]] = r.Count
	}
	want := map[string]int{"InstanceNormalization": 10, "Sigmoid": 10, "Resize": 1, "Concat:": 1, "Gather:": 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rewrites %v, want %v", imp.Rewrites, want)
	}
}

// TestImportExternalData: optimum's layout (model.onnx + model.onnx_data) imports with the
// same weights, bit for bit, as the inline export, and ONNX Runtime agrees.
func TestImportExternalData(t *testing.T) {
	ref := readImportRef(t, "unet_ref.json")
	ext, err := ImportONNX(filepath.Join(importDir, "unet_ext", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	inline, err := ImportONNX(filepath.Join(importDir, "unet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if ext.Scope != "onnx_unet_ext" {
		t.Errorf("scope %q, want onnx_unet_ext (the folder's name for model.onnx)", ext.Scope)
	}
	external := 0
	for _, w := range ext.graph.Graph.Initializers {
		if w.IsExternal() {
			external++
		}
	}
	if external == 0 {
		t.Fatal("the fixture has no external tensors")
	}
	a := runImport(t, ext, context.New(), refInputs(t, ref, ext), nil)
	b := runImport(t, inline, context.New(), refInputs(t, ref, inline), nil)
	if !slices.Equal(a.outputs["out_sample"], b.outputs["out_sample"]) {
		t.Errorf("external-data import differs from the inline one by %g", maxRelDiff(a.outputs["out_sample"], b.outputs["out_sample"]))
	}
	o := ortOutputs(t, filepath.Join(importDir, "unet_ext", "model.onnx"), ref)
	if d := maxRelDiff(a.outputs["out_sample"], o["out_sample"]); d > tolF32 {
		t.Errorf("external-data import differs from ONNX Runtime by %g", d)
	}
	if ext.WeightBytes != inline.WeightBytes || ext.WeightBytes < 100_000 {
		t.Errorf("weight bytes %d (external) vs %d (inline)", ext.WeightBytes, inline.WeightBytes)
	}
	t.Logf("%d of %d weights external, %d bytes in all", external, len(ext.graph.Graph.Initializers), ext.WeightBytes)
}

// TestImportWithoutSharedBuffers loads the weights as on a backend without shared buffers (XLA
// on a GPU): through a host tensor moved to the device and then released. The outputs must be
// the same, bit for bit.
func TestImportWithoutSharedBuffers(t *testing.T) {
	ref := readImportRef(t, "unet_ref.json")
	imp, err := ImportONNX(filepath.Join(importDir, "unet_ext", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	shared := runImport(t, imp, context.New(), refInputs(t, ref, imp), nil)
	defer func(f func(backends.Backend) bool) { useSharedBuffers = f }(useSharedBuffers)
	useSharedBuffers = func(backends.Backend) bool { return false }
	ctx := context.New()
	copied := runImport(t, imp, ctx, refInputs(t, ref, imp), nil)
	if !slices.Equal(shared.outputs["out_sample"], copied.outputs["out_sample"]) {
		t.Errorf("outputs differ by %g", maxRelDiff(shared.outputs["out_sample"], copied.outputs["out_sample"]))
	}
	for _, v := range imp.Variables(ctx) {
		value, err := v.Value()
		if err != nil {
			t.Fatal(err)
		}
		if value.HasLocal() {
			t.Errorf("weight %s keeps its host copy", v.Name())
			break
		}
	}
}

// TestImportFloat16 imports an fp16 export as float32; it must compute what torch computes in
// float32 with the fp16-rounded weights.
func TestImportFloat16(t *testing.T) {
	ref := readImportRef(t, "unet_ref.json")
	imp, err := ImportONNX(filepath.Join(importDir, "unet_fp16.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for i, dt := range imp.InputTypes {
		if dt != dtypes.Float32 {
			t.Errorf("input %s is %s, want float32", imp.InputNames[i], dt)
		}
	}
	if names := rewriteNames(imp.Rewrites); len(names) == 0 || names[0] != "float16/bfloat16" {
		t.Errorf("rewrites %v: want the float16 conversion first", imp.Rewrites)
	}
	run := runImport(t, imp, context.New(), refInputs(t, ref, imp), nil)
	d := maxRelDiff(run.outputs["out_sample"], ref.FP16.Outputs["out_sample"].values(t))
	t.Logf("fp16 export imported as float32 vs torch float32 on fp16-rounded weights: %.2g", d)
	// The reference rounds the weights and the constants folded from the module's own code; the
	// constants torch writes inside F.gelu (1/√2) and LayerNorm (ε) are float16 in the export
	// only, which moves outputs by a few 1e-6 more.
	const tolFP16 = 2e-5
	if d > tolFP16 {
		t.Errorf("differs by %g (tolerance %g)", d, tolFP16)
	}
}

// clipEmbeddingCut reads the CLIP fixture and cuts it at the token-embedding Gather, so that it
// takes token embeddings ("inputs_embeds") as an input beside input_ids.
func clipEmbeddingCut(t testing.TB, file string) *onnxgraph.Model {
	t.Helper()
	g, err := onnxgraph.Read(filepath.Join(importDir, file))
	if err != nil {
		t.Fatal(err)
	}
	var gather *onnxgraph.Node
	for _, n := range g.Graph.Nodes {
		if n.OpType == "Gather" && n.Inputs[0] == "token_embedding.weight" {
			gather = n
		}
	}
	if gather == nil {
		t.Fatal("no Gather reads token_embedding.weight")
	}
	dt := g.Graph.Initializer("token_embedding.weight").DataType
	dims := []onnxgraph.Dim{{Param: "batch_size"}, {Param: "sequence_length"}, {Value: 32}}
	if err := g.Graph.CutAt(gather.Outputs[0], "inputs_embeds", dt, dims...); err != nil {
		t.Fatal(err)
	}
	if g.Graph.Initializer("token_embedding.weight") != nil {
		t.Error("the token embedding table is still imported after the cut")
	}
	return g
}

// tokenEmbeddings looks the fixture's input_ids up in the token embedding table, in Go.
func tokenEmbeddings(t testing.TB, g *onnxgraph.Model, ids []float64, dims []int, dt dtypes.DType) *tensors.Tensor {
	t.Helper()
	orig, err := onnxgraph.Read(g.Path)
	if err != nil {
		t.Fatal(err)
	}
	table, err := orig.Graph.Initializer("token_embedding.weight").Float64s()
	if err != nil {
		t.Fatal(err)
	}
	width := 32
	emb := make([]float64, 0, len(ids)*width)
	for _, id := range ids {
		emb = append(emb, table[int(id)*width:(int(id)+1)*width]...)
	}
	if dt == dtypes.Float64 {
		return tensors.FromFlatDataAndDimensions(emb, append(slices.Clone(dims), width)...)
	}
	f := make([]float32, len(emb))
	for i, v := range emb {
		f[i] = float32(v)
	}
	return tensors.FromFlatDataAndDimensions(f, append(slices.Clone(dims), width)...)
}

func TestImportCLIPMatchesORTAndTorch(t *testing.T) {
	ref := readImportRef(t, "clip_ref.json")
	path := filepath.Join(importDir, "clip.onnx")
	imp, err := ImportONNX(path)
	if err != nil {
		t.Fatal(err)
	}
	if names := rewriteNames(imp.Rewrites); !slices.Contains(names, "ArgMax/ArgMin") || !slices.Contains(names, "Sigmoid") {
		t.Errorf("rewrites %v: want ArgMax and Sigmoid (quick-GELU)", imp.Rewrites)
	}
	run := runImport(t, imp, context.New(), refInputs(t, ref, imp), nil)
	ortOut := ortOutputs(t, path, ref)
	names := mapKeys(ref.Outputs)
	for _, o := range names {
		dOrt, dTorch := maxRelDiff(run.outputs[o], ortOut[o]), maxRelDiff(run.outputs[o], ref.Outputs[o].values(t))
		t.Logf("%s: GoMLX vs ORT %.2g, vs torch %.2g", o, dOrt, dTorch)
		if dOrt > tolF32 || dTorch > tolF32 {
			t.Errorf("%s differs: vs ORT %g, vs torch %g (tolerance %g)", o, dOrt, dTorch, tolF32)
		}
	}
}

func mapKeys[V any](m map[string]V) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return k
}

// TestImportCLIPGradientWrtTokenEmbeddings cuts the text encoder at its token-embedding Gather
// (what a pseudo-word needs: eq. 4 inserts an embedding, not a token) and checks the gradient of
// L w.r.t. the token embeddings against torch autograd, in float32 and float64.
func TestImportCLIPGradientWrtTokenEmbeddings(t *testing.T) {
	full := readImportRef(t, "clip_ref.json")
	for _, tc := range []struct {
		file string
		ref  importRef
		dt   dtypes.DType
		tol  float64
	}{{"clip.onnx", full, dtypes.Float32, tolF32}, {"clip_f64.onnx", *full.F64, dtypes.Float64, tolF64}} {
		t.Run(tc.file, func(t *testing.T) {
			g := clipEmbeddingCut(t, tc.file)
			imp, err := ImportGraph(g)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(imp.InputNames, []string{"input_ids", "inputs_embeds"}) {
				t.Fatalf("inputs %v", imp.InputNames)
			}
			ids := tc.ref.Inputs["input_ids"]
			in := refInputs(t, tc.ref, imp)
			in["inputs_embeds"] = tokenEmbeddings(t, g, ids.values(t), ids.Shape, tc.dt)
			run := runImport(t, imp, context.New(), in, refWeights(t, tc.ref, tc.dt), "inputs_embeds")
			for _, o := range mapKeys(tc.ref.Outputs) {
				if d := maxRelDiff(run.outputs[o], tc.ref.Outputs[o].values(t)); d > tc.tol {
					t.Errorf("%s differs from torch by %g (tolerance %g)", o, d, tc.tol)
				}
			}
			want := tc.ref.Grads["inputs_embeds"].values(t)
			d := maxRelDiff(run.grads["inputs_embeds"], want)
			t.Logf("%s: d L/d inputs_embeds vs torch autograd %.2g (|grad| max %.3g)", tc.dt, d, maxAbs(want))
			if d > tc.tol || maxAbs(want) < 1e-3 {
				t.Errorf("gradient differs from torch by %g (tolerance %g)", d, tc.tol)
			}
		})
	}
}

// TestImportCLIPEOSInput cuts the ArgMax pooling index too: fed the EOS positions, the pooled
// text_embeds are unchanged, and ArgMax is no longer imported.
func TestImportCLIPEOSInput(t *testing.T) {
	ref := readImportRef(t, "clip_ref.json")
	g := clipEmbeddingCut(t, "clip.onnx")
	var argmax *onnxgraph.Node
	for _, n := range g.Graph.Nodes {
		if n.OpType == "ArgMax" {
			argmax = n
		}
	}
	if argmax == nil {
		t.Fatal("no ArgMax")
	}
	if err := g.Graph.CutAt(argmax.Outputs[0], "eos_index", onnxgraph.Int64, onnxgraph.Dim{Param: "batch_size"}); err != nil {
		t.Fatal(err)
	}
	imp, err := ImportGraph(g)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(rewriteNames(imp.Rewrites), "ArgMax/ArgMin") {
		t.Errorf("ArgMax still imported: %v", imp.Rewrites)
	}
	ids := ref.Inputs["input_ids"]
	in := refInputs(t, ref, imp)
	in["inputs_embeds"] = tokenEmbeddings(t, g, ids.values(t), ids.Shape, dtypes.Float32)
	in["eos_index"] = tensors.FromFlatDataAndDimensions(ref.EOSIndex, len(ref.EOSIndex))
	run := runImport(t, imp, context.New(), in, nil)
	if d := maxRelDiff(run.outputs["text_embeds"], ref.Outputs["text_embeds"].values(t)); d > tolF32 {
		t.Errorf("text_embeds with the EOS index as input differ from torch by %g", d)
	}
}

// TestImportCutErrors: cutting at a value no node writes is an error naming it.
func TestImportCutErrors(t *testing.T) {
	g, err := onnxgraph.Read(filepath.Join(importDir, "clip.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Graph.CutAt("input_ids", "x", onnxgraph.Float); err == nil || !strings.Contains(err.Error(), "input_ids") {
		t.Errorf("cut at a graph input: %v", err)
	}
	if err := g.Graph.CutAt("last_hidden_state", "input_ids", onnxgraph.Float); err == nil || !strings.Contains(err.Error(), "already") {
		t.Errorf("cut to an existing name: %v", err)
	}
}

// copyDir copies a fixture folder into a temporary one.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestImportBadExternalData: a truncated or missing model.onnx_data is an error naming the file
// and the fix, from LoadWeights and from the first Call, never a panic or zeros.
func TestImportBadExternalData(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		break_ func(dir string) error
		want   []string
	}{
		{"truncated", func(dir string) error {
			p := filepath.Join(dir, "model.onnx_data")
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, st.Size()-1000)
		}, []string{"model.onnx_data is truncated", "copy or download it again"}},
		{"missing", func(dir string) error { return os.Remove(filepath.Join(dir, "model.onnx_data")) },
			[]string{"model.onnx_data", "does not exist", "next to the .onnx file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, filepath.Join(importDir, "unet_ext"))
			if err := tc.break_(dir); err != nil {
				t.Fatal(err)
			}
			imp, err := ImportONNX(filepath.Join(dir, "model.onnx"))
			if err != nil {
				t.Fatalf("import (weights are read later): %v", err)
			}
			err = imp.LoadWeights(context.New(), b)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("LoadWeights: got %v, want an error containing %q", err, w)
				}
			}
			_, err = context.ExecOnce(b, context.New(), func(ctx *context.Context, xs []*graph.Node) *graph.Node {
				return imp.Call(ctx, xs...)[0]
			}, unetZeros(imp))
			if err == nil || !strings.Contains(err.Error(), tc.want[0]) {
				t.Errorf("Call: got %v, want an error containing %q", err, tc.want[0])
			}
		})
	}
}

func unetZeros(imp *Imported) []*tensors.Tensor {
	dims := map[string][]int{"sample": {2, 4, 8, 8}, "timestep": {2}, "encoder_hidden_states": {2, 7, 24}, "text_embeds": {2, 16}, "time_ids": {2, 6}}
	var out []*tensors.Tensor
	for i, n := range imp.InputNames {
		out = append(out, tensors.FromShape(shapes.Make(imp.InputTypes[i], dims[n]...)))
	}
	return out
}

// TestImportErrors: errors name the file, the node and the op, or the input.
func TestImportErrors(t *testing.T) {
	// An op neither onnx-gomlx nor the rewrites handle.
	g, err := onnxgraph.Read(filepath.Join(importDir, "clip.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Graph.Nodes {
		if n.OpType == "Softmax" {
			n.OpType = "Hardmax"
		}
	}
	g.Path = "clip_hardmax.onnx"
	if _, err := ImportGraph(g); err == nil || !strings.Contains(err.Error(), "Hardmax (2 nodes") || !strings.Contains(err.Error(), "clip_hardmax.onnx") {
		t.Errorf("unsupported op: %v", err)
	}
	// A rewrite that refuses: Resize with linear interpolation.
	g, err = onnxgraph.Read(filepath.Join(importDir, "unet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Graph.Nodes {
		if n.OpType == "Resize" {
			for _, a := range n.Attrs {
				if a.Name == "mode" {
					a.S = []byte("linear")
				}
			}
		}
	}
	if _, err := ImportGraph(g); err == nil || !strings.Contains(err.Error(), `node "/Resize" (Resize)`) || !strings.Contains(err.Error(), "linear") || !strings.Contains(err.Error(), "unet.onnx") {
		t.Errorf("linear Resize: %v", err)
	}
	// A wrong input dtype.
	imp, err := ImportONNX(filepath.Join(importDir, "unet.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Backend()
	in := unetZeros(imp)
	in[0] = tensors.FromShape(shapes.Make(dtypes.Float64, 2, 4, 8, 8))
	_, err = context.ExecOnce(b, context.New(), func(ctx *context.Context, xs []*graph.Node) *graph.Node { return imp.Call(ctx, xs...)[0] }, in)
	if err == nil || !strings.Contains(err.Error(), `input "sample" must be Float32`) {
		t.Errorf("float64 input: %v", err)
	}
}
