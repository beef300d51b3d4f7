package engine

// Benchmarks of imported ONNX networks (make bench):
//
//   - BenchmarkImportedUNetForward: GoMLX-imported forward (and forward + input gradient) of the
//     UNet-like fixture ÷ ONNX Runtime's forward of the same file, same inputs, same process;
//   - BenchmarkExternalDataLoadRSS: peak resident memory of a fresh process that imports a
//     ~200 MB external-data model (generated into a temporary folder), loads its weights and runs
//     one forward pass, ÷ the weights' bytes (goal ≤ 1.3: the weights are held once).

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

func BenchmarkImportedUNetForward(b *testing.B) {
	ref := readImportRef(b, "unet_ref.json")
	path := filepath.Join(importDir, "unet.onnx")
	imp, err := ImportONNX(path)
	if err != nil {
		b.Fatal(err)
	}
	backend, err := Backend()
	if err != nil {
		b.Fatal(err)
	}
	in := refInputs(b, ref, imp)
	var args []*tensors.Tensor
	for _, n := range imp.InputNames {
		args = append(args, in[n])
	}
	ctx := context.New()
	fwd, err := context.NewExec(backend, ctx, func(ctx *context.Context, xs []*graph.Node) *graph.Node { return imp.Call(ctx, xs...)[0] })
	if err != nil {
		b.Fatal(err)
	}
	defer fwd.Finalize()
	r := ref.Weights["out_sample"].gomlx(b, dtypes.Float32)
	bwd, err := context.NewExec(backend, ctx.Reuse(), func(ctx *context.Context, xs []*graph.Node) []*graph.Node {
		y := imp.Call(ctx, xs[:len(xs)-1]...)[0]
		loss := graph.ReduceAllSum(graph.Mul(y, xs[len(xs)-1]))
		return graph.Gradient(loss, xs[0], xs[2]) // sample, encoder_hidden_states
	})
	if err != nil {
		b.Fatal(err)
	}
	defer bwd.Finalize()
	if err := ort.Init(""); err != nil {
		b.Fatalf("%v", err)
	}
	sess, err := ort.Open(path, ort.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	feed := map[string]ort.Tensor{}
	for n, t := range ref.Inputs {
		feed[n] = t.ort(b)
	}
	runGoMLX := func() {
		out, err := fwd.Exec(args)
		if err != nil {
			b.Fatal(err)
		}
		out[0].FinalizeAll()
	}
	runGrad := func() {
		out, err := bwd.Exec(append(append([]*tensors.Tensor{}, args...), r))
		if err != nil {
			b.Fatal(err)
		}
		for _, o := range out {
			o.FinalizeAll()
		}
	}
	runORT := func() {
		if _, err := sess.Run(feed); err != nil {
			b.Fatal(err)
		}
	}
	runGoMLX() // compile and warm up
	runGrad()
	runORT()
	var tg, tb, to time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		runGoMLX()
		tg += time.Since(start)
		start = time.Now()
		runGrad()
		tb += time.Since(start)
		start = time.Now()
		runORT()
		to += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(tg.Seconds()*1e3/n, "gomlx-ms")
	b.ReportMetric(tb.Seconds()*1e3/n, "gomlx-grad-ms")
	b.ReportMetric(to.Seconds()*1e3/n, "ort-ms")
	b.ReportMetric(tg.Seconds()/to.Seconds(), "gomlx/ort")
}

// writeLargeExternalModel writes a model of n [1024, 1024] float32 weights stored in one
// external data file, y = x + Σᵢ mean(Wᵢ), into dir, and returns its path and weight bytes.
func writeLargeExternalModel(tb testing.TB, dir string, n int) (string, int64) {
	tb.Helper()
	const side = 1024
	data, err := os.Create(filepath.Join(dir, "model.onnx_data"))
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(data, 1<<20)
	block := make([]byte, 4*side*side)
	g := &onnxgraph.Graph{
		Name:    "large",
		Inputs:  []*onnxgraph.ValueInfo{{Name: "x", Type: onnxgraph.NewTensorType(onnxgraph.Float, onnxgraph.Dim{Value: 1})}},
		Outputs: []*onnxgraph.ValueInfo{{Name: "y", Type: onnxgraph.NewTensorType(onnxgraph.Float, onnxgraph.Dim{Value: 1})}},
	}
	sum := "x"
	for i := range n {
		for k := 0; k < side*side; k++ {
			binary.LittleEndian.PutUint32(block[4*k:], math.Float32bits(float32(i)+float32(k%97)*1e-3))
		}
		if _, err := w.Write(block); err != nil {
			tb.Fatal(err)
		}
		name := fmt.Sprintf("w%d", i)
		g.Initializers = append(g.Initializers, &onnxgraph.Tensor{
			Name: name, DataType: onnxgraph.Float, Dims: []int64{side, side}, Location: onnxgraph.External,
			ExternalData: []onnxgraph.KeyValue{{Key: "location", Value: "model.onnx_data"},
				{Key: "offset", Value: strconv.Itoa(i * len(block))}, {Key: "length", Value: strconv.Itoa(len(block))}},
		})
		mean := fmt.Sprintf("m%d", i)
		g.Nodes = append(g.Nodes, &onnxgraph.Node{Name: "mean" + name, OpType: "ReduceMean", Inputs: []string{name}, Outputs: []string{mean},
			Attrs: []*onnxgraph.Attr{{Name: "keepdims", Type: onnxgraph.AttrInt, I: 0}}})
		next := fmt.Sprintf("s%d", i)
		if i == n-1 {
			next = "y"
		}
		g.Nodes = append(g.Nodes, &onnxgraph.Node{Name: "add" + name, OpType: "Add", Inputs: []string{sum, mean}, Outputs: []string{next}})
		sum = next
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := data.Close(); err != nil {
		tb.Fatal(err)
	}
	m := &onnxgraph.Model{IRVersion: 8, Opsets: []onnxgraph.Opset{{Version: 13}}, Graph: g}
	enc, err := m.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(path, enc, 0o644); err != nil {
		tb.Fatal(err)
	}
	return path, int64(n) * int64(len(block))
}

// rssEnv names the model TestLoadRSSHelper loads when the benchmark runs it as a subprocess.
const rssEnv = "COCOFLOW_RSS_HELPER_MODEL"

func BenchmarkExternalDataLoadRSS(b *testing.B) {
	path, weights := writeLargeExternalModel(b, b.TempDir(), 48)
	worst, worstExtra := 0.0, 0.0
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLoadRSSHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), rssEnv+"="+path)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.Fatalf("helper process: %v\n%s", err, out.String())
		}
		var base, peak int64
		for _, line := range strings.Split(out.String(), "\n") {
			if rest, ok := strings.CutPrefix(line, "rss-helper: "); ok {
				if _, err := fmt.Sscanf(rest, "base=%d peak=%d", &base, &peak); err != nil {
					b.Fatalf("helper output %q: %v", line, err)
				}
			}
		}
		if peak == 0 {
			b.Fatalf("helper printed no measurement:\n%s", out.String())
		}
		worst = math.Max(worst, float64(peak)/float64(weights))
		worstExtra = math.Max(worstExtra, float64(peak-base)/float64(weights))
	}
	b.ReportMetric(float64(weights)/1e6, "weight-MB")
	b.ReportMetric(worst, "peakRSS/weights")
	b.ReportMetric(worstExtra, "(peak-base)/weights")
	if worst > 1.3 {
		b.Errorf("peak RSS is %.2f× the weights' %d bytes, goal ≤ 1.3", worst, weights)
	}
}

// TestLoadRSSHelper is the subprocess of BenchmarkExternalDataLoadRSS; in a normal test run (no
// model named in its environment variable) it does nothing.
func TestLoadRSSHelper(t *testing.T) {
	path := os.Getenv(rssEnv)
	if path == "" {
		return
	}
	base := vmHWM(t)
	imp, err := ImportONNX(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := imp.LoadWeights(ctx, b); err != nil {
		t.Fatal(err)
	}
	out, err := context.ExecOnce(b, ctx, func(ctx *context.Context, x *graph.Node) *graph.Node { return imp.Call(ctx, x)[0] },
		tensors.FromShape(shapes.Make(dtypes.Float32, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if y := tensors.MustCopyFlatData[float32](out)[0]; y < 1000 {
		t.Fatalf("y = %g: the weights were not read", y)
	}
	fmt.Printf("rss-helper: base=%d peak=%d\n", base, vmHWM(t))
}

// vmHWM returns the process's peak resident set size in bytes (Linux /proc/self/status).
func vmHWM(t testing.TB) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("peak RSS needs Linux /proc: %v", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
