package tiny

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/models/text/prompt"
)

func TestConfigValidate(t *testing.T) {
	base := testConfig(t)
	if err := base.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	if err := DefaultConfig(base.VocabSize).Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	tests := []struct {
		name string
		edit func(c *Config)
		want string
	}{
		{"heads", func(c *Config) { c.Heads = 3 }, "width 16 is not divisible by heads 3"},
		{"text heads", func(c *Config) { c.TextHeads = 5 }, "text_width 16 is not divisible by text_heads 5"},
		{"depth", func(c *Config) { c.Depth = 0 }, "depth = 0, want >= 1"},
		{"time dim", func(c *Config) { c.TimeDim = 7 }, "time_dim = 7, want an even number"},
		{"latent", func(c *Config) { c.LatentShape = []int{4, 4} }, "latent_shape = [4 4]"},
		{"schedule", func(c *Config) { c.Schedule = "karras" }, "schedule"},
		{"vocab", func(c *Config) { c.VocabSize = 3 }, "vocab_size = 3, want >= 4"},
	}
	for _, tc := range tests {
		c := base
		c.LatentShape = slices.Clone(base.LatentShape)
		tc.edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t)
	if err := WriteConfig(dir, c); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseConfig("config.json", data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.LatentShape, c.LatentShape) || got.Width != c.Width || got.Schedule != c.Schedule {
		t.Errorf("round trip: got %+v, want %+v", got, c)
	}
	if _, err := ParseConfig("x/config.json", []byte(`{"width": 8, "colour": 1}`)); err == nil || !strings.Contains(err.Error(), `x/config.json: json: unknown field "colour"`) {
		t.Errorf("unknown field: got %v", err)
	}
	if _, err := ParseConfig("x/config.json", []byte(`{"width": 8}`)); err == nil || !strings.HasPrefix(err.Error(), "x/config.json: tiny config:") {
		t.Errorf("invalid config: got %v", err)
	}
}

// run compiles fn on g's context and executes it once.
func run(t *testing.T, g *Generator, fn any, args ...any) []*tensors.Tensor {
	t.Helper()
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	e, err := context.NewExecAny(b, g.Context().Reuse(), fn)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Finalize()
	out, err := e.Exec(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustShape(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }

func flat(t *testing.T, x *tensors.Tensor) []float32 {
	t.Helper()
	return tensors.MustCopyFlatData[float32](x)
}

func maxDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// eachWordSkip runs test under both text-state layouts: contextual states only, and with
// Config.WordSkip's words appended.
func eachWordSkip(t *testing.T, test func(t *testing.T, skip bool)) {
	for _, skip := range []bool{false, true} {
		t.Run(fmt.Sprintf("word_skip=%v", skip), func(t *testing.T) { test(t, skip) })
	}
}

func TestGraphShapes(t *testing.T) { eachWordSkip(t, testGraphShapes) }

func testGraphShapes(t *testing.T, skip bool) {
	cfg := testConfig(t)
	cfg.WordSkip = skip
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	info := g.Info()
	if info.Name != "tiny" || info.Encoders[0].Dim != 16 || info.Encoders[0].MaxLength != MaxLength ||
		!slices.Equal(info.LatentShape, []int{4, 4, 12}) || info.Prediction != "epsilon" || info.Schedule != "scaled_linear" {
		t.Errorf("Info() = %+v", info)
	}
	for _, L := range []int{MaxLength, 20} {
		ids := make([]int32, 3*L)
		for i := range ids {
			ids[i] = int32(i % cfg.VocabSize)
		}
		out := run(t, g, func(ctx *context.Context, ids, eos, xt, ts *graph.Node) []*graph.Node {
			e := g.Embed(ctx, ids)
			c := g.Encode(ctx, e, eos)
			return []*graph.Node{e[0], c.States, c.Pooled, g.Denoise(ctx, xt, ts, c)}
		}, tensors.FromFlatDataAndDimensions(ids, 3, L), []int32{1, 5, 2},
			tensors.FromShape(mustShape(3, 4, 4, 12)), []int32{0, 500, 999})
		states := L
		if skip {
			states = 2 * L // contextual states, then the words themselves
		}
		want := [][]int{{3, L, 16}, {3, states, 16}, {3, 16}, {3, 4, 4, 12}}
		for i, o := range out {
			if !slices.Equal(o.Shape().Dimensions, want[i]) {
				t.Errorf("L=%d output %d: shape %v, want %v", L, i, o.Shape().Dimensions, want[i])
			}
		}
	}
}

// TestInsertedWordEqualsWrittenWord: inserting the embedding of "smiling" before "man" with the
// one-hot plan gives exactly the text states of the prompt with "smiling" written there, and
// padding content after EOS changes nothing (the encoder is causal).
func TestInsertedWordEqualsWrittenWord(t *testing.T) {
	eachWordSkip(t, testInsertedWordEqualsWrittenWord)
}

func testInsertedWordEqualsWrittenWord(t *testing.T, skip bool) {
	cfg := testConfig(t)
	cfg.WordSkip = skip
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	randomizeZeros(t, g)
	tok := g.tok
	plain := tok.Encode("a photo of a man at the beach").IDs
	written := tok.Encode("a photo of a smiling man at the beach").IDs
	smiling, _ := tok.ID("smiling")
	pos := text.ConceptIndex(tok.Encode("a photo of a man at the beach"), "man")
	L := MaxLength
	fit := func(ids []int32) ([]int32, int) {
		f, e, _ := text.Fit(ids, L, tok.EOS(), tok.Pad())
		return f, e
	}
	p0, eos0 := fit(plain)
	p1, eos1 := fit(written)
	p2 := slices.Clone(p1)
	for i := eos1 + 1; i < L; i++ {
		p2[i] = smiling // garbage after EOS
	}
	plan, err := prompt.NewPlan(L, eos0, []int{pos}, L)
	if err != nil {
		t.Fatal(err)
	}
	ident, _ := prompt.NewPlan(L, eos1, nil, L)
	m := prompt.OneHot([]prompt.Plan{plan, ident, ident}, L, 1)
	if plan.EOS != eos1 {
		t.Fatalf("plan EOS %d, written EOS %d", plan.EOS, eos1)
	}
	ids := slices.Concat(p0, p1, p2)
	out := run(t, g, func(ctx *context.Context, ids, m, sel, eos *graph.Node) []*graph.Node {
		e := g.Embed(ctx, ids)[0]
		// The pseudo-word of row 0 is the embedding of "smiling": sel [3, V] · table.
		word := graph.ExpandAxes(graph.Gather(ctx.InAbsPath("/text").GetVariable("tokens").ValueGraph(ids.Graph()), graph.ExpandAxes(sel, -1)), 1)
		all := graph.Concatenate([]*graph.Node{e, word}, 1)
		ins := graph.DotGeneral(m, []int{2}, []int{0}, all, []int{1}, []int{0})
		c := g.Encode(ctx, []*graph.Node{ins}, eos)
		return []*graph.Node{c.States, c.Pooled}
	}, tensors.FromFlatDataAndDimensions(ids, 3, L), tensors.FromFlatDataAndDimensions(m, 3, L, L+1),
		[]int32{smiling, 0, 0}, []int32{int32(plan.EOS), int32(eos1), int32(eos1)})
	states, pooled := flat(t, out[0]), flat(t, out[1])
	D := 16
	row := func(x []float32, r, n int) []float32 { return x[r*n : (r+1)*n] }
	upto := (eos1 + 1) * D
	halves := []string{"contextual states"}
	if skip {
		halves = append(halves, "word skip") // states [B, 2L, D]
	}
	for half, name := range halves {
		a, b := row(states, 0, len(halves)*L*D)[half*L*D:], row(states, 1, len(halves)*L*D)[half*L*D:]
		if d := maxDiff(a[:upto], b[:upto]); d > 1e-5 {
			t.Errorf("inserted vs written: %s up to EOS differ by %g", name, d)
		}
	}
	if d := maxDiff(row(pooled, 0, D), row(pooled, 1, D)); d > 1e-5 {
		t.Errorf("inserted vs written: pooled differs by %g", d)
	}
	if d := maxDiff(row(pooled, 1, D), row(pooled, 2, D)); d > 1e-6 {
		t.Errorf("padding content changed the pooled state by %g", d)
	}
	if d := maxDiff(row(pooled, 0, D), make([]float32, D)); d == 0 {
		t.Error("pooled state is all zero")
	}
}

// TestFrozenWeights: after Load, gradients reach a pseudo-word inserted into the prompt through
// Encode and Denoise, and an optimizer step on a separate trainable variable leaves every
// generator weight bit-identical.
func TestFrozenWeights(t *testing.T) {
	g0, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	randomizeZeros(t, g0)
	dir := t.TempDir()
	if err := g0.Save(dir); err != nil {
		t.Fatal(err)
	}
	g, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for v := range g.Context().IterVariables() {
		if v.Trainable {
			t.Fatalf("loaded variable %s is trainable", v.ScopeAndName())
		}
	}
	before := values(t, g)
	ctx := g.Context()
	ctx.InAbsPath("/mapper").VariableWithValue("w", []float32{0.1, -0.2, 0.3, 0.05, 0, 0.2, -0.1, 0.4, 0.3, 0.1, -0.3, 0.2, 0.1, 0, 0.05, -0.05})
	tok := g.tok
	L := MaxLength
	ids, eos, _ := text.Fit(tok.Encode("a man at the beach").IDs, L, tok.EOS(), tok.Pad())
	plan, err := prompt.NewPlan(L, eos, []int{2}, L)
	if err != nil {
		t.Fatal(err)
	}
	m := prompt.OneHot([]prompt.Plan{plan}, L, 1)
	xt := make([]float32, 4*4*12)
	for i := range xt {
		xt[i] = float32(math.Sin(float64(i)))
	}
	opt := optimizers.Adam().LearningRate(0.1).Done()
	out := run(t, g, func(ctx *context.Context, ids, m, eos, xt, ts *graph.Node) []*graph.Node {
		w := ctx.InAbsPath("/mapper").GetVariable("w").ValueGraph(ids.Graph())
		e := g.Embed(ctx, ids)[0]
		all := graph.Concatenate([]*graph.Node{e, graph.Reshape(w, 1, 1, 16)}, 1)
		c := g.Encode(ctx, []*graph.Node{graph.DotGeneral(m, []int{2}, []int{0}, all, []int{1}, []int{0})}, eos)
		eps := g.Denoise(ctx, xt, ts, c)
		loss := graph.ReduceAllMean(graph.Square(eps))
		grad := graph.Gradient(loss, w)[0]
		opt.UpdateGraph(ctx.InAbsPath(context.RootScope), ids.Graph(), loss)
		return []*graph.Node{loss, grad}
	}, tensors.FromFlatDataAndDimensions(ids, 1, L), tensors.FromFlatDataAndDimensions(m, 1, L, L+1),
		[]int32{int32(plan.EOS)}, tensors.FromFlatDataAndDimensions(xt, 1, 4, 4, 12), []int32{400})
	grad := flat(t, out[1])
	var norm float64
	for _, v := range grad {
		norm += float64(v) * float64(v)
	}
	if !(norm > 1e-12) || math.IsNaN(norm) {
		t.Errorf("gradient w.r.t. the pseudo-word has norm² %g, want > 0", norm)
	}
	after := values(t, g)
	for name, b := range before {
		if !slices.Equal(b, after[name]) {
			t.Errorf("generator weight %s changed after the optimizer step", name)
		}
	}
	w := tensors.MustCopyFlatData[float32](ctx.InAbsPath("/mapper").GetVariable("w").MustValue())
	if w[0] == 0.1 && w[1] == -0.2 {
		t.Error("the trainable mapper variable did not change")
	}
}

func TestSaveLoad(t *testing.T) {
	g, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	randomizeZeros(t, g)
	g.Context().InAbsPath("/mapper").VariableWithValue("w", []float32{1, 2}) // not part of the generator
	dir := t.TempDir()
	if err := g.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, got := values(t, g), values(t, back)
	if len(want) != len(got) {
		t.Fatalf("%d variables saved, %d loaded", len(want), len(got))
	}
	for k, v := range want {
		if !slices.Equal(v, got[k]) {
			t.Errorf("variable %s differs after the round trip", k)
		}
	}
	if back.Context().GetVariableByScopeAndName("/mapper", "w") != nil {
		t.Error("a caller's variable was saved with the generator")
	}
	if back.Config().Width != g.Config().Width {
		t.Errorf("config: %+v", back.Config())
	}

	// A config that does not describe the checkpoint is an error naming the variable.
	bad := t.TempDir()
	if err := g.Save(bad); err != nil {
		t.Fatal(err)
	}
	c := g.Config()
	c.Width = 32
	if err := WriteConfig(bad, c); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "has shape") {
		t.Errorf("mismatched config: got %v", err)
	}
	c = g.Config()
	c.Depth = 2
	if err := WriteConfig(bad, c); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "/dit/block1") || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("missing block: got %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), ConfigFile) {
		t.Errorf("empty dir: got %v", err)
	}
	if err := os.WriteFile(filepath.Join(bad, ConfigFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), filepath.Join(bad, ConfigFile)) {
		t.Errorf("corrupt config: got %v", err)
	}
}

func TestDefaultWeightsAndFamily(t *testing.T) {
	_, statErr := defaultWeights.ReadFile("weights/" + ConfigFile)
	g, err := LoadDefault()
	if statErr != nil {
		if !errors.Is(err, ErrNoDefaultWeights) || err.Error() != "tiny generator weights not found: run experiments/tiny/pretrain.yaml" {
			t.Errorf("without committed weights: got %v, want ErrNoDefaultWeights", err)
		}
	} else if err != nil || g == nil {
		t.Errorf("committed default weights do not load: %v", err)
	}
	spec, err := family.Lookup(FamilyName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := spec.Generator(""); (err == nil) != (statErr == nil) {
		t.Errorf("family generator with dir \"\": error %v, committed weights present: %v", err, statErr == nil)
	}
	small, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := small.Save(dir); err != nil {
		t.Fatal(err)
	}
	fg, err := spec.Generator(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fg.Info().Encoders[0].Dim != 16 {
		t.Errorf("family generator from dir: %+v", fg.Info())
	}
	tk, err := spec.Tokenizer("")
	if err != nil || tk.VocabSize() != small.Config().VocabSize {
		t.Errorf("family tokenizer: %v, %v", tk, err)
	}
}

func TestVocabStats(t *testing.T) {
	g, err := New(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	table := flat(t, g.ctx.GetVariableByScopeAndName(textScope, "tokens").MustValue())
	D, V := 16, g.cfg.VocabSize
	check := func(rows []int) {
		t.Helper()
		mean, std := g.computeVocabStats()
		for j := range D {
			var s, sq float64
			for _, r := range rows {
				v := float64(table[r*D+j])
				s += v
				sq += v * v
			}
			m := s / float64(len(rows))
			sd := math.Sqrt(sq/float64(len(rows)) - m*m)
			if math.Abs(float64(mean[j])-m) > 1e-6 || math.Abs(float64(std[j])-sd) > 1e-5 {
				t.Fatalf("dim %d: mean %g std %g, want %g %g over rows %v", j, mean[j], std[j], m, sd, rows)
			}
		}
	}
	var all []int
	for id := 4; id < V; id++ {
		all = append(all, id)
	}
	check(all) // no counts recorded: every real word
	counts := make([]float32, V)
	counts[1], counts[2], counts[7], counts[9], counts[20] = 5, 5, 3, 1, 2 // BOS and EOS are never stats rows
	if err := g.ctx.GetVariableByScopeAndName(textScope, tokenCountsName).SetValue(tensors.FromFlatDataAndDimensions(counts, V)); err != nil {
		t.Fatal(err)
	}
	check([]int{7, 9, 20})
	if m, _ := g.VocabStats(0); maxDiff(m, func() []float32 { m, _ := g.computeVocabStats(); return m }()) != 0 {
		t.Error("VocabStats(0) differs from the computed statistics")
	}
	if m, s := g.VocabStats(1); m != nil || s != nil {
		t.Error("VocabStats(1) of a one-encoder generator should be nil")
	}
}

func TestLearningRateSchedule(t *testing.T) {
	o := DefaultPretrainOptions()
	o.Steps, o.WarmupSteps, o.LearningRate = 1000, 100, 1e-3 // decays to 1e-3 / 10
	tests := []struct {
		k    int
		want float64
	}{{0, 1e-5}, {49, 5e-4}, {99, 1e-3}, {100, 1e-3}, {550, 5.5e-4}, {1000, 1e-4}}
	for _, tc := range tests {
		if got := o.LearningRateAt(tc.k); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("step %d: lr %g, want %g", tc.k, got, tc.want)
		}
	}
	if w := o.lossWeight(0.5); w != 1 { // SNR 1 < γ
		t.Errorf("loss weight at SNR 1: %g", w)
	}
	if w := o.lossWeight(0.99); math.Abs(w-5/99.0) > 1e-9 { // SNR 99
		t.Errorf("loss weight at SNR 99: %g, want 5/99", w)
	}
	if w := o.lossWeight(0.2); w != 1 { // SNR 1/4, no floor: plain ε-MSE
		t.Errorf("loss weight at SNR 1/4: %g, want 1", w)
	}
	f := o
	f.SNRFloor = 1
	if w := f.lossWeight(0.2); math.Abs(w-4) > 1e-9 { // x̂₀ weight raised from 1/4 to 1
		t.Errorf("loss weight at SNR 1/4 with floor 1: %g, want 4", w)
	}
	if w := f.lossWeight(0.99); math.Abs(w-5/99.0) > 1e-9 { // the floor leaves γ alone
		t.Errorf("loss weight at SNR 99 with floor 1: %g, want 5/99", w)
	}
}
