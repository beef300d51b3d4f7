package family_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/text"
)

// fakeGen is a generator whose every part is computable by hand, so Sample can be checked
// against a host-side reference:
//
//	embed    e = table[ids]                  (table row 0, the pad, is zero)
//	encode   states_j = e_j·(1 + j/L); pooled = Σ_j states_j + states_eos
//	denoise  ε̂ = 0.5·x_t + 0.1·Σ_d pooled_d + t/1000
type fakeGen struct {
	ctx   *context.Context
	tok   *text.WordTokenizer
	table [][]float32
}

const fakeLen = 8

var fakeWords = []string{"a", "man", "woman", "red", "blue", "photo"}

func newFake(t *testing.T) *fakeGen {
	t.Helper()
	tok, err := text.NewWordTokenizer(fakeWords, fakeLen)
	if err != nil {
		t.Fatal(err)
	}
	table := make([][]float32, tok.VocabSize())
	for i := range table {
		table[i] = make([]float32, 3)
		if i == int(tok.Pad()) {
			continue
		}
		for d := range table[i] {
			table[i][d] = float32(math.Sin(float64(7*i+3*d+1))) * 0.7
		}
	}
	ctx := context.New()
	ctx.InAbsPath("/fake").VariableWithValue("table", table).SetTrainable(false)
	return &fakeGen{ctx: ctx, tok: tok, table: table}
}

func (f *fakeGen) Info() family.Info {
	return family.Info{Name: "fake", Encoders: []family.TextEncoder{{Name: "enc", Dim: 3, MaxLength: fakeLen}},
		LatentShape: []int{2, 3}, ImageSize: 4, Schedule: diffusion.ScaledLinear, TrainSteps: 1000, Prediction: "epsilon"}
}
func (f *fakeGen) Tokenizer() text.Tokenizer       { return f.tok }
func (f *fakeGen) Autoencoder() family.Autoencoder { return nil }
func (f *fakeGen) VocabStats(int) (m, s []float32) { return nil, nil }
func (f *fakeGen) Context() *context.Context       { return f.ctx }
func (f *fakeGen) scope(ctx *context.Context) *context.Context {
	return ctx.InAbsPath("/fake").Checked(true).Reuse()
}

func (f *fakeGen) Embed(ctx *context.Context, ids *graph.Node) []*graph.Node {
	table := f.scope(ctx).GetVariable("table").ValueGraph(ids.Graph())
	return []*graph.Node{graph.Gather(table, graph.ExpandAxes(ids, -1))}
}

func (f *fakeGen) Encode(ctx *context.Context, embeds []*graph.Node, eos *graph.Node) family.Cond {
	e := embeds[0]
	L := e.Shape().Dimensions[1]
	w := make([]float32, L)
	for j := range w {
		w[j] = 1 + float32(j)/float32(L)
	}
	states := graph.Mul(e, graph.Reshape(graph.Const(e.Graph(), w), 1, L, 1))
	sel := graph.OneHot(eos, L, dtypes.Float32)
	atEOS := graph.DotGeneral(sel, []int{1}, []int{0}, states, []int{1}, []int{0})
	return family.Cond{States: states, Pooled: graph.Add(graph.ReduceSum(states, 1), atEOS)}
}

func (f *fakeGen) Denoise(ctx *context.Context, xt, t *graph.Node, cond family.Cond) *graph.Node {
	c := graph.MulScalar(graph.ReduceSum(cond.Pooled, 1), 0.1)                                   // [N]
	c = graph.Add(c, graph.DivScalar(graph.ConvertDType(t, dtypes.Float32), 1000))               // [N]
	return graph.Add(graph.MulScalar(xt, 0.5), graph.Reshape(c, xt.Shape().Dimensions[0], 1, 1)) // [N, 2, 3]
}

// hostCond is the reference of Denoise's per-row constant for a request, computed on the host.
func (f *fakeGen) hostCond(t *testing.T, r family.SampleRequest) float64 {
	t.Helper()
	ids, eos, _ := text.Fit(r.IDs, fakeLen, f.tok.EOS(), f.tok.Pad())
	// Insert by hand: words go before their positions; the sequence is cut back to fakeLen.
	var seq [][]float32
	for i, id := range ids {
		for _, ins := range r.Insertions {
			if ins.Position == i {
				seq = append(seq, ins.Words[0])
			}
		}
		seq = append(seq, f.table[id])
	}
	seq = seq[:fakeLen]
	eos += len(r.Insertions)
	var sum float64
	for j, e := range seq {
		for _, v := range e {
			s := float64(v) * (1 + float64(j)/fakeLen)
			sum += s
			if j == eos {
				sum += s
			}
		}
	}
	return 0.1 * sum
}

func (f *fakeGen) ids(t *testing.T, s string) []int32 {
	t.Helper()
	return f.tok.Encode(s).IDs
}

// reference runs the DDIM loop on the host with diffusion.Sampler for one request.
func (f *fakeGen) reference(t *testing.T, r family.SampleRequest, opt family.SampleOptions) []float32 {
	t.Helper()
	sched, _ := diffusion.NewSchedule(diffusion.ScaledLinear, 1000)
	cond := f.hostCond(t, r)
	uncond := f.hostCond(t, family.SampleRequest{IDs: []int32{f.tok.BOS(), f.tok.EOS()}})
	eps := func(xt []float32, step int) ([]float32, error) {
		out := make([]float32, len(xt))
		for i, x := range xt {
			c := 0.5*float64(x) + cond + float64(step)/1000
			u := 0.5*float64(x) + uncond + float64(step)/1000
			out[i] = float32(u + opt.Guidance*(c-u))
		}
		return out, nil
	}
	smp := diffusion.Sampler{Schedule: sched, Steps: opt.Steps, Eta: opt.Eta, Seed: opt.Seed, Spacing: opt.Spacing}
	x, err := smp.Sample([]uint64{r.Seed}, 6, eps)
	if err != nil {
		t.Fatal(err)
	}
	return x
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

func TestSampleMatchesHostReference(t *testing.T) {
	f := newFake(t)
	word := []float32{0.3, -0.2, 0.9}
	reqs := []family.SampleRequest{
		{IDs: f.ids(t, "a photo of a man"), Seed: 1},
		{IDs: f.ids(t, "a red woman"), Seed: 2, Insertions: []family.Insertion{{Position: 3, Words: [][]float32{word}}}},
		{IDs: f.ids(t, "a man a woman"), Seed: 3, Insertions: []family.Insertion{
			{Position: 2, Words: [][]float32{word}}, {Position: 4, Words: [][]float32{{-1, 0.5, 0.25}}}}},
	}
	for _, opt := range []family.SampleOptions{
		{Steps: 5, Guidance: 3, BatchSize: 2},
		{Steps: 4, Guidance: 1, BatchSize: 4, Seed: 9},
		{Steps: 6, Guidance: 2, Eta: 1, BatchSize: 1, Spacing: diffusion.Trailing},
		{Steps: 3, Guidance: 0, BatchSize: 3},
	} {
		got, err := family.Sample(f, reqs, opt)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(reqs) {
			t.Fatalf("%+v: %d latents for %d requests", opt, len(got), len(reqs))
		}
		for i, r := range reqs {
			want := f.reference(t, r, opt)
			if d := maxDiff(got[i], want); d > 1e-4 {
				t.Errorf("%+v request %d: differs from the host reference by %g\n got %v\nwant %v", opt, i, d, got[i], want)
			}
		}
	}
}

func TestSampleIndependentOfBatching(t *testing.T) {
	f := newFake(t)
	var reqs []family.SampleRequest
	for i, p := range []string{"a man", "a woman", "a red man", "photo", "a blue woman"} {
		reqs = append(reqs, family.SampleRequest{IDs: f.ids(t, p), Seed: uint64(10 + i)})
	}
	opt := family.SampleOptions{Steps: 4, Guidance: 2.5, Eta: 0.5, BatchSize: 1}
	var first [][]float32
	for _, bs := range []int{1, 2, 3, 8} {
		opt.BatchSize = bs
		got, err := family.Sample(f, reqs, opt)
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = got
			continue
		}
		for i := range got {
			if !slices.Equal(got[i], first[i]) {
				t.Errorf("batch size %d request %d: %v, batch size 1: %v", bs, i, got[i], first[i])
			}
		}
	}
	// Reordered requests (another batch composition) give the same latent per request.
	rev := slices.Clone(reqs)
	slices.Reverse(rev)
	opt.BatchSize = 2
	got, err := family.Sample(f, rev, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if !slices.Equal(got[i], first[len(reqs)-1-i]) {
			t.Errorf("reversed request %d differs", i)
		}
	}
	// Another seed gives another latent.
	other := reqs[0]
	other.Seed++
	o, err := family.Sample(f, []family.SampleRequest{other}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(o[0], first[0]) {
		t.Error("another seed gave the same latent")
	}
}

func TestSampleRequestErrors(t *testing.T) {
	f := newFake(t)
	good := family.SampleRequest{IDs: f.ids(t, "a man")}
	tests := []struct {
		name string
		req  family.SampleRequest
		want string
	}{
		{"id outside vocabulary", family.SampleRequest{IDs: []int32{1, 99, 2}}, "request 1: token 1 is id 99, outside the vocabulary"},
		{"no EOS", family.SampleRequest{IDs: []int32{1, 5}}, "request 1: token ids [1 5] do not end with EOS"},
		{"word width", family.SampleRequest{IDs: good.IDs, Insertions: []family.Insertion{{Position: 1, Words: [][]float32{{1, 2}}}}},
			`request 1: insertion 0: word for encoder "enc" has 2 values, want 3`},
		{"words per encoder", family.SampleRequest{IDs: good.IDs, Insertions: []family.Insertion{{Position: 1}}},
			"request 1: insertion 0 has 0 word vectors, want one per text encoder (1)"},
		{"position past EOS", family.SampleRequest{IDs: good.IDs, Insertions: []family.Insertion{{Position: 6, Words: [][]float32{{1, 2, 3}}}}},
			"request 1: prompt: plan: position 6"},
	}
	valid := family.SampleOptions{Steps: 2, Guidance: 4, BatchSize: 1}
	s, err := family.NewSampler(f, valid)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, tc := range tests {
		_, err := s.Sample([]family.SampleRequest{good, tc.req})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.want)
		}
	}
	for _, edit := range []func(o *family.SampleOptions){
		func(o *family.SampleOptions) { o.Steps = -1 },
		func(o *family.SampleOptions) { o.Steps = 0 },
		func(o *family.SampleOptions) { o.BatchSize = -2 },
		func(o *family.SampleOptions) { o.BatchSize = 0 },
		func(o *family.SampleOptions) { o.Eta = -1 },
		func(o *family.SampleOptions) { o.Spacing = "karras" },
		func(o *family.SampleOptions) { o.Steps = 5000 },
	} {
		opt := valid
		edit(&opt)
		if _, err := family.NewSampler(f, opt); err == nil {
			t.Errorf("options %+v: want an error", opt)
		}
	}
}

// TestGuidanceZeroIsUnconditional: guidance 0 means ε = ε_u (diffusion.Guide), so neither the
// prompt nor a pseudo-word changes a latent; the noise seed still does.
func TestGuidanceZeroIsUnconditional(t *testing.T) {
	f := newFake(t)
	word := []float32{0.3, -0.2, 0.9}
	reqs := []family.SampleRequest{
		{IDs: f.ids(t, "a photo of a man"), Seed: 1},
		{IDs: f.ids(t, "a red woman"), Seed: 1, Insertions: []family.Insertion{{Position: 3, Words: [][]float32{word}}}},
		{IDs: f.ids(t, "a red woman"), Seed: 2},
	}
	for _, guidance := range []float64{0, 3} {
		got, err := family.Sample(f, reqs, family.SampleOptions{Steps: 3, Guidance: guidance, BatchSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		same := slices.Equal(got[0], got[1])
		if guidance == 0 && !same {
			t.Errorf("guidance 0: two prompts with one seed differ: %v, %v", got[0], got[1])
		}
		if guidance != 0 && same {
			t.Errorf("guidance %g: two prompts with one seed give the same latent", guidance)
		}
		if slices.Equal(got[1], got[2]) {
			t.Errorf("guidance %g: two seeds give the same latent", guidance)
		}
	}
}
