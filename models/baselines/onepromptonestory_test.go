package baselines

import (
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// orthonormal returns k orthonormal vectors of length n (Gram-Schmidt of random ones).
func orthonormal(r *rand.Rand, k, n int) [][]float64 {
	var out [][]float64
	for len(out) < k {
		v := make([]float64, n)
		for i := range v {
			v[i] = r.NormFloat64()
		}
		for _, u := range out {
			d := 0.0
			for i := range v {
				d += v[i] * u[i]
			}
			for i := range v {
				v[i] -= d * u[i]
			}
		}
		norm := 0.0
		for _, x := range v {
			norm += x * x
		}
		norm = math.Sqrt(norm)
		for i := range v {
			v[i] /= norm
		}
		out = append(out, v)
	}
	return out
}

// TestSVRIdentity: SVR with β = 1 and α = 0 leaves every row as it is.
func TestSVRIdentity(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randomLatent(r, 10*16, 1)
	want := slices.Clone(x)
	SVR(x, 16, []int{0, 2, 3, 7, 9}, 0, 1)
	if d := maxAbsDiff(x, want); d > 1e-5 {
		t.Errorf("SVR(α=0, β=1) moved the states by up to %g", d)
	}
}

// TestSVRSingularValues: on X = U·diag(s)·Vᵀ built from known singular vectors, SVR gives
// U·diag(β·s·e^(−α·s))·Vᵀ in the selected rows and leaves the others alone, for the code's weaken
// and enhance defaults.
func TestSVRSingularValues(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const m, dim, rows = 4, 12, 7
	sel := []int{1, 2, 4, 6}
	s := []float64{9, 4, 1.5, 0.3}
	for _, ab := range [][2]float64{{0.01, 0.05}, {-0.01, 1}, {0.5, 1.2}} {
		u, v := orthonormal(r, m, m), orthonormal(r, m, dim) // u: columns of U as rows here
		build := func(f func(float64) float64) []float64 {
			out := make([]float64, m*dim)
			for a := range m {
				for k := range m {
					for j := range dim {
						out[a*dim+j] += u[k][a] * f(s[k]) * v[k][j]
					}
				}
			}
			return out
		}
		x0 := build(func(x float64) float64 { return x })
		want := build(func(x float64) float64 { return ab[1] * x * math.Exp(-ab[0]*x) })
		x := randomLatent(r, rows*dim, 1)
		other := slices.Clone(x)
		for a, row := range sel {
			for j := range dim {
				x[row*dim+j] = float32(x0[a*dim+j])
			}
		}
		SVR(x, dim, sel, ab[0], ab[1])
		for a, row := range sel {
			for j := range dim {
				if d := math.Abs(float64(x[row*dim+j]) - want[a*dim+j]); d > 1e-4 {
					t.Fatalf("α=%g β=%g: row %d value %d is %g, want %g", ab[0], ab[1], row, j, x[row*dim+j], want[a*dim+j])
				}
			}
		}
		for row := range rows {
			if !slices.Contains(sel, row) && maxAbsDiff(x[row*dim:(row+1)*dim], other[row*dim:(row+1)*dim]) != 0 {
				t.Errorf("row %d was not selected but changed", row)
			}
		}
	}
}

// TestConsolidate: positions of the identity, express and suppressed frames in the consolidated
// prompt, circular windows when the story is longer than the window, and the error when nothing
// fits.
func TestConsolidate(t *testing.T) {
	tok, err := tiny.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	frames := []string{"is reading in the library.", "is walking in the park.", "is cooking in the kitchen."}
	ps, err := Consolidate(tok, "a man", frames, 10)
	if err != nil {
		t.Fatal(err)
	}
	whole := tok.Encode("a man is reading in the library. is walking in the park. is cooking in the kitchen.").IDs
	for i, p := range ps {
		if !slices.Equal(p.IDs, whole) {
			t.Fatalf("frame %d: ids %v, want the whole story %v", i, p.IDs, whole)
		}
		if !slices.Equal(p.Identity, []int{1, 2}) || len(p.Suppress) != 2 {
			t.Errorf("frame %d: identity %v (want [1 2]), %d suppressed frames (want 2)", i, p.Identity, len(p.Suppress))
		}
	}
	if !slices.Equal(ps[1].Express, []int{9, 10, 11, 12, 13, 14}) {
		t.Errorf("frame 1 expresses positions %v, want 9 … 14", ps[1].Express)
	}
	if got := tok.Decode(pick(ps[2].IDs, ps[2].Express)); got != "is cooking in the kitchen." {
		t.Errorf("frame 2 expresses %q", got)
	}
	win, err := Consolidate(tok, "a man", frames, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Decode(win[2].IDs); got != "a man is cooking in the kitchen. is reading in the library." {
		t.Errorf("window 2, frame 2: %q, want its circular window", got)
	}
	if len(win[2].Suppress) != 1 || win[2].Express[0] != 3 {
		t.Errorf("window 2, frame 2: express %v, suppress %v", win[2].Express, win[2].Suppress)
	}
	long := []string{"is reading in the library at night with a book and glasses on a sunny day in the park today with a dog and a cat"}
	if _, err := Consolidate(tok, "a smiling bearded man wearing a red hat and sunglasses", long, 4); err == nil {
		t.Error("a prompt past MaxLength was accepted")
	}
	id, fr, err := SplitPrompt("a smiling man is reading in the library.", "man")
	if err != nil || id != "a smiling man" || fr != "is reading in the library ." {
		t.Errorf("SplitPrompt: %q, %q, %v", id, fr, err)
	}
}

func pick(ids []int32, pos []int) []int32 {
	var out []int32
	for _, p := range pos {
		out = append(out, ids[p])
	}
	return out
}

// TestOnePromptPlainEqualsSampler: a one-frame story with SVR off (α = 0, β = 1) and IPCA off is
// the plain sampler's image of the same prompt and seed; the defaults change it, and frames of a
// story share their initial noise.
func TestOnePromptPlainEqualsSampler(t *testing.T) {
	g := smallTiny(t)
	so := family.SampleOptions{Steps: 3, Guidance: 3, BatchSize: 1, Seed: 2}
	off := OnePromptOptions{AlphaWeaken: 0, BetaWeaken: 1, AlphaEnhance: 0, BetaEnhance: 1, Window: 10, SameNoise: true}
	smp, err := NewOnePromptSampler(g, off, so)
	if err != nil {
		t.Fatal(err)
	}
	defer smp.Close()
	got, err := smp.Story("a man", []string{"at the beach"}, []uint64{7})
	if err != nil {
		t.Fatal(err)
	}
	want, err := family.Sample(g, []family.SampleRequest{{IDs: g.Tokenizer().Encode("a man at the beach").IDs, Seed: 7}}, so)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(got[0], want[0]); d > 1e-4 {
		t.Errorf("plain one-frame story differs from the plain sampler by %g", d)
	}
	frames := []string{"at the beach", "in the forest"}
	plain, err := smp.Story("a man", frames, []uint64{7, 8})
	if err != nil {
		t.Fatal(err)
	}
	def, err := NewOnePromptSampler(g, DefaultOnePromptOptions(), so)
	if err != nil {
		t.Fatal(err)
	}
	defer def.Close()
	story, err := def.Story("a man", frames, []uint64{7, 8})
	if err != nil {
		t.Fatal(err)
	}
	for i := range frames {
		if maxAbsDiff(story[i], plain[i]) < 1e-4 {
			t.Errorf("frame %d: SVR and IPCA did not change the image", i)
		}
	}
	noIPCA := DefaultOnePromptOptions()
	noIPCA.IPCA = false
	ni, err := NewOnePromptSampler(g, noIPCA, so)
	if err != nil {
		t.Fatal(err)
	}
	defer ni.Close()
	svrOnly, err := ni.Story("a man", frames, []uint64{7, 8})
	if err != nil {
		t.Fatal(err)
	}
	if maxAbsDiff(svrOnly[0], story[0]) < 1e-5 {
		t.Error("IPCA did not change the image")
	}
	if _, err := def.Story("a man", frames, []uint64{7}); err == nil {
		t.Error("a seed count unlike the frame count was accepted")
	}
}

// BenchmarkOnePromptStory generates 6 stories of "a man" with 4 frames each through the committed
// tiny generator, with 1Prompt1Story (defaults), with 1Prompt1Story with each frame's own noise, and with the plain sampler on the frames' own
// prompts and seeds, and reports the tiny identity encoder's Face Sim and Face Div of both (a
// story is an identity) and the wall time per 1Prompt1Story image.
func BenchmarkOnePromptStory(b *testing.B) {
	g, err := tiny.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	face, err := tinyface.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	frames := []string{"is reading in the library.", "is walking in the park.", "is cooking in the kitchen.", "is singing on the stage."}
	so := family.SampleOptions{Steps: 10, Guidance: 4, BatchSize: 8}
	smp, err := NewOnePromptSampler(g, DefaultOnePromptOptions(), so)
	if err != nil {
		b.Fatal(err)
	}
	defer smp.Close()
	const stories = 6
	score := func(lat [][]float32, labels []int) (float64, float64) {
		imgs := make([]image.Image, len(lat))
		for i, l := range lat {
			if imgs[i], err = g.Autoencoder().Decode(l, g.Info().LatentShape); err != nil {
				b.Fatal(err)
			}
		}
		emb, err := face.Embed(imgs)
		if err != nil {
			b.Fatal(err)
		}
		sim, div, _, err := tinyface.IdentityScores(emb, labels)
		if err != nil {
			b.Fatal(err)
		}
		return sim, div
	}
	var story [][]float32
	var labels []int
	b.ResetTimer()
	for range b.N {
		story, labels = nil, nil
		for k := range stories {
			seeds := []uint64{uint64(100 * k), uint64(100*k + 1), uint64(100*k + 2), uint64(100*k + 3)}
			lat, err := smp.Story("a man", frames, seeds)
			if err != nil {
				b.Fatal(err)
			}
			story = append(story, lat...)
			for range frames {
				labels = append(labels, k)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*len(story)), "ms/image")
	var reqs []family.SampleRequest
	for k := range stories {
		for j, f := range frames {
			reqs = append(reqs, family.SampleRequest{IDs: g.Tokenizer().Encode("a man " + f).IDs, Seed: uint64(100*k + j)})
		}
	}
	plain, err := family.Sample(g, reqs, so)
	if err != nil {
		b.Fatal(err)
	}
	distinct := DefaultOnePromptOptions()
	distinct.SameNoise = false // how much of the consistency is the shared noise
	dsmp, err := NewOnePromptSampler(g, distinct, so)
	if err != nil {
		b.Fatal(err)
	}
	defer dsmp.Close()
	var noisy [][]float32
	for k := range stories {
		lat, err := dsmp.Story("a man", frames, []uint64{uint64(100 * k), uint64(100*k + 1), uint64(100*k + 2), uint64(100*k + 3)})
		if err != nil {
			b.Fatal(err)
		}
		noisy = append(noisy, lat...)
	}
	sim, div := score(story, labels)
	psim, pdiv := score(plain, labels)
	dsim, _ := score(noisy, labels)
	b.ReportMetric(dsim, "own_noise_face_sim")
	b.ReportMetric(sim, "face_sim")
	b.ReportMetric(div, "face_div")
	b.ReportMetric(psim, "plain_face_sim")
	b.ReportMetric(pdiv, "plain_face_div")
}

// TestStoryOf: one identity prompt, every prompt's context as a frame.
func TestStoryOf(t *testing.T) {
	id, frames, err := StoryOf([]string{"a man is reading in the library.", "a smiling man at the beach"}, "man")
	if err != nil || id != "a man" || !slices.Equal(frames, []string{"is reading in the library .", "at the beach"}) {
		t.Errorf("StoryOf: %q %q %v", id, frames, err)
	}
	if _, _, err := StoryOf([]string{"a woman at the beach"}, "man"); err == nil {
		t.Error("a prompt without the subject was accepted")
	}
}

// TestIPCAHookMasksReference: the cross-attention over the states and the reference states with
// the mask bias is attention over the states and the unmasked reference rows alone.
func TestIPCAHookMasksReference(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const L, S, H, dh = 3, 2, 2, 4 // queries, states per half, heads, head width
	q, k, v := randomLatent(r, L*H*dh, 1), randomLatent(r, 2*S*H*dh, 1), randomLatent(r, 2*S*H*dh, 1)
	bias := maskBias([]bool{true, true, true, false}) // keep the states and reference row 0
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExec(b, func(q, k, v, bias *graph.Node) []*graph.Node {
		hooked := ipcaHook{bias: bias}.CrossAttention(0, q, k, v)
		kept := graph.Slice(k, graph.AxisRange(), graph.AxisRange(0, S+1))
		return []*graph.Node{hooked, tiny.Attend(q, kept, graph.Slice(v, graph.AxisRange(), graph.AxisRange(0, S+1)), nil), tiny.Attend(q, k, v, nil)}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions(q, 1, L, H, dh), tensors.FromFlatDataAndDimensions(k, 1, 2*S, H, dh),
		tensors.FromFlatDataAndDimensions(v, 1, 2*S, H, dh), tensors.FromFlatDataAndDimensions(bias, 1, 1, 1, 2*S))
	if err != nil {
		t.Fatal(err)
	}
	flat := func(i int) []float32 { return tensors.MustCopyFlatData[float32](out[i]) }
	if d := maxAbsDiff(flat(0), flat(1)); d > 1e-6 {
		t.Errorf("masked IPCA differs from attention over the kept keys by %g", d)
	}
	if d := maxAbsDiff(flat(0), flat(2)); d < 1e-4 {
		t.Errorf("the mask changed nothing (%g)", d)
	}
}
