package engine

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// killChildEnv makes the test binary act as a process that is SIGKILLed in the middle of Save.
const killChildEnv = "COCOFLOW_ENGINE_KILL_DURING_SAVE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		killDuringSave(dir)
		os.Exit(3) // not reached: the process is killed inside Save
	}
	os.Exit(m.Run())
}

// killDuringSave saves a fresh context to dir and SIGKILLs its own process after 4 KiB of the
// temporary file were written.
func killDuringSave(dir string) {
	ctx := sampleContext(99)
	saveWriterHook = func(w io.Writer) io.Writer { return &killingWriter{w: w, after: 4096} }
	_ = Save(ctx, dir, map[string]string{"step": "2"})
}

type killingWriter struct {
	w     io.Writer
	after int
	n     int
}

func (k *killingWriter) Write(p []byte) (int, error) {
	if k.n+len(p) > k.after {
		n, _ := k.w.Write(p[:k.after-k.n])
		k.n += n
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // wait for the signal
	}
	n, err := k.w.Write(p)
	k.n += n
	return n, err
}

// failingWriter fails after `after` bytes, like a full disk.
type failingWriter struct {
	w     io.Writer
	after int
	n     int
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n+len(p) > f.after {
		return 0, errors.New("disk full")
	}
	f.n += len(p)
	return f.w.Write(p)
}

// sampleContext makes a context with variables of several dtypes, shapes and scopes, including
// special float values, an empty tensor and a non-trainable scalar. seed changes the values.
func sampleContext(seed int) *context.Context {
	ctx := context.New()
	f := make([]float32, 3000) // big enough that a 4 KiB partial write stops inside the data
	for i := range f {
		f[i] = float32(math.Sin(float64(i*seed))) * 1e3
	}
	f[0], f[1], f[2] = float32(math.Inf(-1)), math.Float32frombits(0x7fc00001), float32(math.Copysign(0, -1))
	ctx.In("model").In("dense").VariableWithValue("w", tensors.FromFlatDataAndDimensions(f, 30, 100))
	ctx.In("model").VariableWithValue("f64", []float64{math.Pi * float64(seed), math.SmallestNonzeroFloat64})
	ctx.In("model").VariableWithValue("ints", [][]int64{{int64(seed), -1}, {math.MaxInt64, math.MinInt64}})
	ctx.In("model").VariableWithValue("mask", []bool{true, false, seed%2 == 0})
	ctx.In("model").VariableWithValue("empty", tensors.FromShape(shapes.Make(dtypes.Float32, 0, 3)))
	ctx.VariableWithValue("global_step", int64(seed)).SetTrainable(false)
	return ctx
}

// contextBytes maps "scope/name" to the variable's dtype, shape, trainable flag and raw bytes.
func contextBytes(t *testing.T, ctx *context.Context) map[string]string {
	t.Helper()
	out := map[string]string{}
	for v := range ctx.IterVariables() {
		val, err := v.Value()
		if err != nil {
			t.Fatalf("%s: %v", v.ScopeAndName(), err)
		}
		var buf bytes.Buffer
		buf.WriteString(val.Shape().String())
		if v.Trainable {
			buf.WriteString(" trainable ")
		}
		if err := tensorBytes(val, func(b []byte) error { buf.Write(b); return nil }); err != nil {
			t.Fatal(err)
		}
		out[v.ScopeAndName()] = buf.String()
	}
	return out
}

func equalContexts(t *testing.T, got, want *context.Context) {
	t.Helper()
	g, w := contextBytes(t, got), contextBytes(t, want)
	if len(g) != len(w) {
		t.Errorf("got %d variables, want %d", len(g), len(w))
	}
	for k, wv := range w {
		if gv, ok := g[k]; !ok {
			t.Errorf("variable %s missing", k)
		} else if gv != wv {
			t.Errorf("variable %s differs (shape, trainable flag or bytes)", k)
		}
	}
}

func TestCheckpointRoundTripBitExact(t *testing.T) {
	dir := t.TempDir()
	want := sampleContext(3)
	meta := map[string]string{"step": "7", "config": "tiny"}
	if err := Save(want, dir, meta); err != nil {
		t.Fatal(err)
	}
	// Into a fresh context: variables are created.
	fresh := context.New()
	gotMeta, err := Load(fresh, dir)
	if err != nil {
		t.Fatal(err)
	}
	if gotMeta["step"] != "7" || gotMeta["config"] != "tiny" || len(gotMeta) != 2 {
		t.Errorf("meta = %v, want %v", gotMeta, meta)
	}
	equalContexts(t, fresh, want)

	// Into a context that already has the variables (other values): values are replaced.
	existing := sampleContext(5)
	if _, err := Load(existing, dir); err != nil {
		t.Fatal(err)
	}
	equalContexts(t, existing, want)

	// A second Save replaces the first.
	if err := Save(sampleContext(8), dir, nil); err != nil {
		t.Fatal(err)
	}
	again := context.New()
	if m, err := Load(again, dir); err != nil || len(m) != 0 {
		t.Fatalf("Load after overwrite: meta %v, err %v", m, err)
	}
	equalContexts(t, again, sampleContext(8))
}

func TestCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	if err := Save(sampleContext(1), dir, nil); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-100] ^= 0x40
	tests := []struct {
		name    string
		content []byte // nil: no file
		ctx     func() *context.Context
		wantErr string
	}{
		{"missing", nil, context.New, "no such file"},
		{"not a checkpoint", []byte("hello world, not a checkpoint"), context.New, "want magic"},
		{"truncated", good[:len(good)-10], context.New, "truncated"},
		{"corrupted", flipped, context.New, "checksum mismatch"},
		{"shape mismatch", good, func() *context.Context {
			ctx := context.New()
			ctx.In("model").In("dense").VariableWithValue("w", [][]float32{{1, 2}})
			return ctx
		}, "stored shape"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			if tc.content != nil {
				if err := os.WriteFile(filepath.Join(d, CheckpointFile), tc.content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx := tc.ctx()
			before := ctx.NumVariables()
			_, err := Load(ctx, d)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
			}
			if ctx.NumVariables() != before {
				t.Errorf("failed Load changed the context: %d variables, had %d", ctx.NumVariables(), before)
			}
		})
	}
}

// TestCheckpointFailedSaveKeepsPrevious: a write error in the middle of Save leaves the previous
// checkpoint and no temporary file.
func TestCheckpointFailedSaveKeepsPrevious(t *testing.T) {
	dir := t.TempDir()
	if err := Save(sampleContext(1), dir, map[string]string{"step": "1"}); err != nil {
		t.Fatal(err)
	}
	saveWriterHook = func(w io.Writer) io.Writer { return &failingWriter{w: w, after: 5000} }
	err := Save(sampleContext(2), dir, map[string]string{"step": "2"})
	saveWriterHook = nil
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Save with failing writer: got %v, want a 'disk full' error", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("dir has %d entries after failed save, want only %s", len(entries), CheckpointFile)
	}
	ctx := context.New()
	meta, err := Load(ctx, dir)
	if err != nil || meta["step"] != "1" {
		t.Fatalf("Load after failed save: meta %v, err %v; want step 1", meta, err)
	}
	equalContexts(t, ctx, sampleContext(1))
}

// TestCheckpointKillDuringSave SIGKILLs a process in the middle of Save and checks that the
// previous checkpoint still loads bit-exactly and the next Save cleans up the leftover.
func TestCheckpointKillDuringSave(t *testing.T) {
	dir := t.TempDir()
	if err := Save(sampleContext(1), dir, map[string]string{"step": "1"}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	err := cmd.Run()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("child: got %v, want it killed", err)
	}
	if ws, ok := exitErr.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child exited with %v, want killed by SIGKILL", exitErr)
	}
	temps, _ := filepath.Glob(filepath.Join(dir, ".checkpoint-*.tmp"))
	if len(temps) != 1 {
		t.Fatalf("want the killed save's partial temporary file, found %v", temps)
	}
	ctx := context.New()
	meta, err := Load(ctx, dir)
	if err != nil || meta["step"] != "1" {
		t.Fatalf("Load after killed save: meta %v, err %v; want step 1", meta, err)
	}
	equalContexts(t, ctx, sampleContext(1))
	if err := Save(sampleContext(2), dir, nil); err != nil {
		t.Fatal(err)
	}
	if temps, _ := filepath.Glob(filepath.Join(dir, ".checkpoint-*.tmp")); len(temps) != 0 {
		t.Errorf("stale temporary files left after the next Save: %v", temps)
	}
}

// TestCheckpointResumeIdentical trains a tiny model with Adam and random noise for 4 steps in one
// go, and for 2 + (save, load into a fresh context) + 2 steps: every variable — weights, Adam
// moments, global step, RNG state — must end bit-identical.
func TestCheckpointResumeIdentical(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.FromValue([][]float32{{0.1, -0.2, 0.3, 0.5}, {0.7, 0.2, -0.4, 0.1}, {-0.3, 0.9, 0.2, -0.6}})
	y := tensors.FromValue([][]float32{{0.5, -0.5}, {0.1, 0.2}, {-0.3, 0.4}})
	newCtx := func() *context.Context {
		ctx := context.New()
		ctx.In("dense").VariableWithValue("w", [][]float32{{0.1, 0.2}, {-0.3, 0.4}, {0.5, -0.6}, {0.7, 0.8}})
		ctx.In("dense").VariableWithValue("b", []float32{0.01, -0.02})
		if err := ctx.SetRNGStateFromSeed(42); err != nil {
			t.Fatal(err)
		}
		return ctx
	}
	train := func(ctx *context.Context, steps int) {
		opt := optimizers.Adam().LearningRate(0.05).Done()
		e, err := context.NewExec(b, ctx.Reuse(), func(ctx *context.Context, x, y *graph.Node) *graph.Node {
			g := x.Graph()
			w := ctx.In("dense").VariableWithShape("w", shapes.Make(dtypes.Float32, 4, 2)).ValueGraph(g)
			bias := ctx.In("dense").VariableWithShape("b", shapes.Make(dtypes.Float32, 2)).ValueGraph(g)
			h := graph.Add(graph.DotGeneral(x, []int{1}, nil, w, []int{0}, nil), graph.InsertAxes(bias, 0))
			h = graph.Add(h, graph.MulScalar(ctx.RandomNormal(g, h.Shape()), 0.1))
			d := graph.Sub(graph.Tanh(h), y)
			loss := graph.ReduceAllMean(graph.Mul(d, d))
			opt.UpdateGraph(ctx, g, loss)
			return loss
		})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Finalize()
		for range steps {
			if _, err := e.Exec(x, y); err != nil {
				t.Fatal(err)
			}
		}
	}
	straight := newCtx()
	train(straight, 4)

	first := newCtx()
	train(first, 2)
	dir := t.TempDir()
	if err := Save(first, dir, map[string]string{"step": "2"}); err != nil {
		t.Fatal(err)
	}
	resumed := context.New()
	if _, err := Load(resumed, dir); err != nil {
		t.Fatal(err)
	}
	if step := optimizers.GetGlobalStep(resumed); step != 2 {
		t.Fatalf("global step after load = %d, want 2", step)
	}
	train(resumed, 2)
	equalContexts(t, resumed, straight)
	if step := optimizers.GetGlobalStep(resumed); step != 4 {
		t.Errorf("global step after resume = %d, want 4", step)
	}
	// Sanity: training moved the weights, so equality above is not trivial.
	if contextBytes(t, straight)["/dense/w"] == contextBytes(t, newCtx())["/dense/w"] {
		t.Error("training did not change /dense/w")
	}
}

// SaveExcept leaves the named variables out of the file, and Load then keeps their values.
func TestCheckpointSaveExceptSkipsFrozen(t *testing.T) {
	dir := t.TempDir()
	ctx := sampleContext(3)
	frozen := map[string]bool{"/model/dense/w": true}
	if _, ok := contextBytes(t, ctx)["/model/dense/w"]; !ok {
		t.Fatalf("sample context has no /model/dense/w: %v", contextBytes(t, ctx))
	}
	if err := SaveExcept(ctx, dir, nil, frozen); err != nil {
		t.Fatal(err)
	}
	fresh := context.New()
	if _, err := Load(fresh, dir); err != nil {
		t.Fatal(err)
	}
	got := contextBytes(t, fresh)
	if _, ok := got["/model/dense/w"]; ok {
		t.Error("the skipped variable was saved")
	}
	if len(got) != len(contextBytes(t, ctx))-1 {
		t.Errorf("saved %d variables, want every one but the skipped", len(got))
	}
	other := sampleContext(5)
	before := contextBytes(t, other)["/model/dense/w"]
	if _, err := Load(other, dir); err != nil {
		t.Fatal(err)
	}
	after := contextBytes(t, other)
	if after["/model/dense/w"] != before {
		t.Error("Load changed a variable the checkpoint does not hold")
	}
	if after["/model/f64"] != contextBytes(t, ctx)["/model/f64"] {
		t.Error("Load did not restore the saved variables")
	}
}
