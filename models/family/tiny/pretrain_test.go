package tiny

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
)

func TestPretrainReducesLoss(t *testing.T) {
	cfg := testConfig(t)
	data := syntheticData(t, cfg, 12)
	opt := DefaultPretrainOptions()
	opt.Steps, opt.BatchSize, opt.LearningRate, opt.WarmupSteps, opt.Seed, opt.MinSNRGamma = 60, 8, 1e-2, 5, 3, 0
	steps := 0
	g, err := Pretrain(context.Background(), cfg, data, opt, func(step int, out []float64, _ time.Duration) {
		if len(out) != 3 || out[0] != out[2] { // without Min-SNR weighting the loss is the ε-MSE
			t.Errorf("step %d: outputs %v, want [loss, gradient norm, ε-MSE] with loss = ε-MSE", step, out)
		}
		steps++
	})
	if err != nil {
		t.Fatal(err)
	}
	if steps != opt.Steps {
		t.Fatalf("report called %d times, want %d", steps, opt.Steps)
	}
	// ε-MSE on the same 4 batches of held-back noise before (random init) and after training.
	init, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := Tokenizer()
	sched, _ := diffusion.NewSchedule(cfg.Schedule, cfg.TrainSteps)
	held := DefaultPretrainOptions()
	held.Seed = 99
	tr := trainer{m: g.m, opt: held, data: data, sched: sched, tok: tok}
	before, after := epsMSE(t, init, tr), epsMSE(t, g, tr)
	t.Logf("ε-MSE: random init %.4f, after %d steps %.4f", before, opt.Steps, after)
	if !(after < 0.8*before) {
		t.Errorf("ε-MSE did not fall enough: random init %.4f, after %d steps %.4f", before, opt.Steps, after)
	}
	for v := range g.Context().IterVariables() {
		if v.Trainable {
			t.Errorf("exported variable %s is trainable", v.ScopeAndName())
		}
		if !isModelScope(v.Scope()) {
			t.Errorf("exported generator holds training state %s", v.ScopeAndName())
		}
	}
	// The token counts of the data were recorded, so VocabStats leaves out unused words.
	counts := flat(t, g.ctx.GetVariableByScopeAndName(textScope, tokenCountsName).MustValue())
	man, _ := g.tok.ID("man")
	dog, _ := g.tok.ID("dog")
	if counts[man] != 8 || counts[dog] != 0 { // 12 images, every third one a man, 2 captions each
		t.Errorf("token counts: man %g, dog %g; want 8, 0", counts[man], counts[dog])
	}
}

// TestPretrainResume: 6 steps in one run equal 3 steps, then a new run resumed from the
// checkpoint directory up to 6 — the exported EMA weights are bit-identical.
func TestPretrainResume(t *testing.T) {
	cfg := testConfig(t)
	data := syntheticData(t, cfg, 6)
	opt := DefaultPretrainOptions()
	opt.Steps, opt.BatchSize, opt.WarmupSteps, opt.Seed = 6, 4, 2, 11
	straight, err := Pretrain(context.Background(), cfg, data, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	opt.CheckpointDir = t.TempDir()
	// Stop after 3 steps by cancelling (a 3-step run would have another cosine schedule).
	ctx, cancel := context.WithCancel(context.Background())
	steps := 0
	_, err = Pretrain(ctx, cfg, data, opt, func(int, []float64, time.Duration) {
		if steps++; steps == 3 {
			cancel()
		}
	})
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("cancelled run: got %v, want the context error", err)
	}
	calls := 0
	resumed, err := Pretrain(context.Background(), cfg, data, opt, func(int, []float64, time.Duration) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if calls != 3 {
		t.Errorf("resumed run made %d steps, want 3", calls)
	}
	a, b := values(t, straight), values(t, resumed)
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			t.Errorf("variable %s differs between the straight and the resumed run", k)
		}
	}
}

func TestPretrainDataErrors(t *testing.T) {
	cfg := testConfig(t)
	good := syntheticData(t, cfg, 2)
	tests := []struct {
		name string
		edit func(d *Data)
		want string
	}{
		{"no latents", func(d *Data) { d.Latents, d.Captions = nil, nil }, "no latents"},
		{"caption lists", func(d *Data) { d.Captions = d.Captions[:1] }, "2 latents but 1 caption lists"},
		{"latent size", func(d *Data) { d.Latents[1] = d.Latents[1][:10] }, "latent 1 has 10 values, want 192"},
		{"no captions", func(d *Data) { d.Captions[0] = nil }, "latent 0 has no captions"},
		{"no EOS", func(d *Data) { d.Captions[1][1] = []int32{1, 7} }, "latent 1 caption 1: want BOS (1) … EOS (2), got [1 7]"},
		{"bad id", func(d *Data) { d.Captions[0][0] = []int32{1, 999, 2} }, "latent 0 caption 0: token id 999 outside the vocabulary"},
	}
	for _, tc := range tests {
		d := Data{Latents: slices.Clone(good.Latents), Captions: slices.Clone(good.Captions)}
		for i := range d.Captions {
			d.Captions[i] = slices.Clone(d.Captions[i])
		}
		tc.edit(&d)
		_, err := Pretrain(context.Background(), cfg, d, oneStep(), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
}

// oneStep is DefaultPretrainOptions for a run of one step.
func oneStep() PretrainOptions {
	o := DefaultPretrainOptions()
	o.Steps = 1
	return o
}

// TestPretrainOptionsMeanWhatTheySay: the defaults are valid, and an option out of range is an
// error naming it rather than a value quietly replaced.
func TestPretrainOptionsMeanWhatTheySay(t *testing.T) {
	if err := DefaultPretrainOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(o *PretrainOptions)
	}{
		{"steps", func(o *PretrainOptions) { o.Steps = 0 }},
		{"batch size", func(o *PretrainOptions) { o.BatchSize = 0 }},
		{"learning rate", func(o *PretrainOptions) { o.LearningRate = 0 }},
		{"decay factor", func(o *PretrainOptions) { o.DecayFactor = 0 }},
		{"clip norm", func(o *PretrainOptions) { o.ClipNorm = -1 }},
		{"caption dropout", func(o *PretrainOptions) { o.CaptionDropout = 1 }},
		{"EMA decay", func(o *PretrainOptions) { o.EMADecay = -1 }},
		{"subject weight", func(o *PretrainOptions) { o.SubjectWeight = 0 }},
	} {
		o := DefaultPretrainOptions()
		tc.edit(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: got %v, want an error naming it", tc.name, err)
		}
	}
}

// epsMSE is the ε-prediction MSE of g through its family.Generator methods on the batches 0…3
// of tr.
func epsMSE(t *testing.T, g *Generator, tr trainer) float64 {
	t.Helper()
	var sum float64
	for k := range 4 {
		in, err := tr.batch(k)
		if err != nil {
			t.Fatal(err)
		}
		out := run(t, g, func(ctx *mlctx.Context, xt, ts, ids, eos, eps *graph.Node) *graph.Node {
			c := g.Encode(ctx, g.Embed(ctx, ids), eos)
			return graph.ReduceAllMean(graph.Square(graph.Sub(g.Denoise(ctx, xt, ts, c), eps)))
		}, in[:5]...)
		sum += float64(out[0].Value().(float32))
	}
	return sum / 4
}

func TestInitFromCopiesOnlyTheNamedScopes(t *testing.T) {
	cfg := testConfig(t)
	src, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg2 := cfg
	cfg2.InitSeed = cfg.InitSeed + 1
	dst, err := New(cfg2)
	if err != nil {
		t.Fatal(err)
	}
	before, from := values(t, dst), values(t, src)
	if err := dst.initFrom(src, []string{"/dit"}); err != nil {
		t.Fatal(err)
	}
	after := values(t, dst)
	var copied, kept int
	for name, v := range after {
		want := before[name]
		if strings.HasPrefix(name, "/dit/") {
			want = from[name]
			copied++
		} else {
			kept++
		}
		if !slices.Equal(v, want) {
			t.Errorf("%s: not the expected weights after initFrom(/dit)", name)
		}
	}
	if copied == 0 || kept == 0 {
		t.Fatalf("copied %d, kept %d variables: want both", copied, kept)
	}
	for _, scopes := range [][]string{nil, {"/nowhere"}} {
		if err := dst.initFrom(src, scopes); err == nil {
			t.Errorf("initFrom(%v): want an error", scopes)
		}
	}
	other := cfg
	other.Width, other.Heads = 32, 2
	wide, err := New(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.initFrom(wide, []string{"/dit"}); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("initFrom a wider denoiser: %v, want a shape error", err)
	}
}

func TestTokenInitStd(t *testing.T) {
	rms := func(cfg Config) float64 {
		g, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		v := values(t, g)["/text/tokens"]
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		return math.Sqrt(s / float64(len(v)))
	}
	cfg := testConfig(t)
	if r := rms(cfg); r < 0.015 || r > 0.025 {
		t.Errorf("default (token_init_std 0) token embeddings rms %.4f, want about 0.02", r)
	}
	cfg.TokenInitStd = 1
	if r := rms(cfg); r < 0.9 || r > 1.1 {
		t.Errorf("token_init_std 1: rms %.3f, want about 1", r)
	}
	cfg.TokenInitStd = -1
	if err := cfg.Validate(); err == nil {
		t.Error("token_init_std -1: want an error")
	}
}

func TestPositionWeights(t *testing.T) {
	out := make([]float32, 4)
	positionWeights([]float32{1, 0, 0, 0.5}, 4, out)
	want := []float32{4, 1, 1, 2.5} // 1 + (4-1)·m, scaled to mean 1: sum 8.5 over 4
	var sum float32
	for j := range out {
		if d := out[j] - want[j]*4/8.5; d > 1e-6 || d < -1e-6 {
			t.Errorf("weight %d = %g, want %g", j, out[j], want[j]*4/8.5)
		}
		sum += out[j]
	}
	if sum < 4-1e-5 || sum > 4+1e-5 {
		t.Errorf("weights sum to %g, want 4 (mean 1)", sum)
	}
}

// TestSubjectWeight checks the training loss against a host-side computation: each sample's
// squared ε error weighted per position (the left half of every latent as subject, weight 8)
// and per timestep (Min-SNR-5), and that Pretrain refuses masks that do not fit.
func TestSubjectWeight(t *testing.T) {
	cfg := testConfig(t)
	data := syntheticData(t, cfg, 12)
	h, w, c := cfg.LatentShape[0], cfg.LatentShape[1], cfg.LatentShape[2]
	mask := make([]float32, h*w)
	for y := range h {
		for x := range w / 2 {
			mask[y*w+x] = 1
		}
	}
	for range data.Latents {
		data.Masks = append(data.Masks, mask)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := Tokenizer()
	sched, _ := diffusion.NewSchedule(cfg.Schedule, cfg.TrainSteps)
	opt := DefaultPretrainOptions()
	opt.BatchSize, opt.Seed, opt.SubjectWeight = 4, 7, 8
	tr := trainer{m: g.m, opt: opt, data: data, sched: sched, tok: tok}
	in, err := tr.batch(0)
	if err != nil {
		t.Fatal(err)
	}
	out := run(t, g, func(ctx *mlctx.Context, xt, ts, ids, eos, eps, wts, pos *graph.Node) []*graph.Node {
		loss, mse := tr.loss(ctx, []*graph.Node{xt, ts, ids, eos, eps, wts, pos})
		pred := g.Denoise(ctx, xt, ts, g.Encode(ctx, g.Embed(ctx, ids), eos))
		return []*graph.Node{loss, mse, graph.Square(graph.Sub(pred, eps))}
	}, in[:7]...)
	sq, wts := flat(t, out[2]), flat(t, in[5].(*tensors.Tensor))
	var want, plain float64
	for b := range opt.BatchSize {
		var s float64
		for j := range h * w * c {
			pw := 1.0 / (1 + 7*0.5) // off the subject: 1, scaled to mean 1 (half of it at 8)
			if mask[j/c] == 1 {
				pw *= 8
			}
			e := float64(sq[b*h*w*c+j])
			s += pw * e
			plain += e
		}
		want += float64(wts[b]) * s / float64(h*w*c)
	}
	want /= float64(opt.BatchSize)
	plain /= float64(opt.BatchSize * h * w * c)
	loss, mse := float64(out[0].Value().(float32)), float64(out[1].Value().(float32))
	if math.Abs(loss-want) > 1e-5*want || math.Abs(mse-plain) > 1e-5*plain {
		t.Errorf("loss %.6f, ε-MSE %.6f; want %.6f, %.6f computed on the host", loss, mse, want, plain)
	}
	data.Masks = data.Masks[:3]
	weighed := oneStep()
	weighed.SubjectWeight = 2
	if _, err := Pretrain(context.Background(), cfg, data, weighed, nil); err == nil || !strings.Contains(err.Error(), "3 masks for 12 latents") {
		t.Errorf("too few masks: got %v", err)
	}
	data.Masks = slices.Repeat([][]float32{mask[:5]}, 12)
	if _, err := Pretrain(context.Background(), cfg, data, weighed, nil); err == nil || !strings.Contains(err.Error(), "mask 0 has 5 values") {
		t.Errorf("short mask: got %v", err)
	}
}
