package baselines

import (
	"context"
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

func randomLatent(r *rand.Rand, n int, scale float64) []float32 {
	l := make([]float32, n)
	for j := range l {
		l[j] = float32(scale * r.NormFloat64())
	}
	return l
}

// runLoss evaluates dreamBoothLoss on hand-made predictions and targets [n, 2, 3].
func runLoss(t *testing.T, pred, target []float32, n, nInst int, w float64) (loss, inst, prior float64) {
	t.Helper()
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	exec, err := graph.NewExec(b, func(p, y *graph.Node) []*graph.Node {
		l, i, pr := dreamBoothLoss(p, y, nInst, w)
		return []*graph.Node{l, i, pr}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions(pred, n, 2, 3), tensors.FromFlatDataAndDimensions(target, n, 2, 3))
	if err != nil {
		t.Fatal(err)
	}
	v := func(i int) float64 { return float64(tensors.ToScalar[float32](out[i])) }
	return v(0), v(1), v(2)
}

// TestDreamBoothLossPriorWeight: with prior weight 0 the loss is the plain denoising MSE of the
// instance rows, whatever the class rows hold; with weight λ it adds λ times the class MSE.
func TestDreamBoothLossPriorWeight(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n, nInst, per = 5, 2, 6
	pred, target := randomLatent(r, n*per, 1), randomLatent(r, n*per, 1)
	mse := func(from, to int) float64 {
		s := 0.0
		for i := from * per; i < to*per; i++ {
			d := float64(pred[i] - target[i])
			s += d * d
		}
		return s / float64((to-from)*per)
	}
	plain, class := mse(0, nInst), mse(nInst, n)
	loss, inst, prior := runLoss(t, pred, target, n, nInst, 0)
	if math.Abs(loss-plain) > 1e-6 || math.Abs(inst-plain) > 1e-6 {
		t.Errorf("prior weight 0: loss %g, instance term %g, want the plain MSE %g", loss, inst, plain)
	}
	if math.Abs(prior-class) > 1e-6 {
		t.Errorf("prior term %g, want the class rows' MSE %g", prior, class)
	}
	for i := nInst * per; i < n*per; i++ { // other class rows: same loss at weight 0
		target[i] += 3
	}
	if l2, _, _ := runLoss(t, pred, target, n, nInst, 0); math.Abs(l2-plain) > 1e-6 {
		t.Errorf("prior weight 0: changing the class rows changed the loss from %g to %g", plain, l2)
	}
	class = mse(nInst, n)
	if l, _, _ := runLoss(t, pred, target, n, nInst, 1); math.Abs(l-(plain+class)) > 1e-5 {
		t.Errorf("prior weight 1: loss %g, want %g + %g", l, plain, class)
	}
	if l, _, _ := runLoss(t, pred[:nInst*per], target[:nInst*per], nInst, nInst, 1); math.Abs(l-plain) > 1e-6 {
		t.Errorf("no class rows: loss %g, want the plain MSE %g", l, plain)
	}
}

// identityLoss is the mean instance loss of generator weights ctx (g's architecture) on fixed
// draws of data: the batches of steps 1000… of a batcher without the prior.
func identityLoss(t testing.TB, g family.Generator, ctx *mlctx.Context, data DreamBoothData) float64 {
	t.Helper()
	info := g.Info()
	sched, err := diffusion.NewSchedule(info.Schedule, info.TrainSteps)
	if err != nil {
		t.Fatal(err)
	}
	opt := DefaultDreamBoothOptions()
	opt.PriorWeight, opt.BatchSize, opt.Seed = 0, 16, 99
	bt := dreamBatcher{data: data, opt: opt, sched: sched, info: info, pad: g.Tokenizer().Pad(), eos: g.Tokenizer().EOS()}
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	exec, err := mlctx.NewExec(b, ctx.Reuse(), func(ctx *mlctx.Context, in []*graph.Node) *graph.Node {
		pred := g.Denoise(ctx, in[0], in[1], g.Encode(ctx, g.Embed(ctx, in[2]), in[3]))
		l, _, _ := dreamBoothLoss(pred, in[4], opt.BatchSize, 0)
		return l
	})
	if err != nil {
		t.Fatal(err)
	}
	defer exec.Finalize()
	sum := 0.0
	for k := range 4 {
		in, err := bt.inputs(1000 + k)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec(in...)
		if err != nil {
			t.Fatal(err)
		}
		sum += float64(tensors.ToScalar[float32](out[0]))
	}
	return sum / 4
}

// weights returns the flat values of every variable of ctx by scoped name.
func weights(t *testing.T, ctx *mlctx.Context) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if v.Shape().DType.String() != "Float32" {
			continue
		}
		vals, err := tensors.CopyFlatData[float32](v.MustValue())
		if err != nil {
			t.Fatal(err)
		}
		out[v.ScopeAndName()] = vals
	}
	return out
}

// TestDreamBoothLowersIdentityLoss: a short fine-tune on one identity's latents under the
// rare-token prompt lowers that identity's denoising loss, changes only the denoiser, and
// leaves the original generator as it was.
func TestDreamBoothLowersIdentityLoss(t *testing.T) {
	g := smallTiny(t)
	tok := g.Tokenizer()
	opt := DefaultDreamBoothOptions()
	opt.Steps, opt.LearningRate, opt.ClassImages = 150, 1e-2, 4
	inst, class, err := DreamBoothPrompts(tok, opt.Token, "man")
	if err != nil {
		t.Fatal(err)
	}
	if inst != "a patched man" || class != "a man" {
		t.Fatalf("prompts %q, %q; want \"a patched man\", \"a man\"", inst, class)
	}
	r := rand.New(rand.NewPCG(7, 8))
	base := randomLatent(r, 4*4*12, 1) // the identity: one pattern, small variations
	var ids [][]float32
	for range 3 {
		l := randomLatent(r, len(base), 0.1)
		for j := range l {
			l[j] += base[j]
		}
		ids = append(ids, l)
	}
	classLat, err := ClassPriorLatents(g, tok.Encode(class).IDs, opt.ClassImages, family.SampleOptions{Steps: 2, Guidance: 1, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	data := DreamBoothData{Instance: ids, InstanceIDs: tok.Encode(inst).IDs, Class: classLat, ClassIDs: tok.Encode(class).IDs}
	before := weights(t, g.Context())
	lossBefore := identityLoss(t, g, g.Context(), data)
	var logs []DreamBoothStep
	tuned, err := DreamBooth(context.Background(), g, data, opt, func(s DreamBoothStep) { logs = append(logs, s) })
	if err != nil {
		t.Fatal(err)
	}
	lossAfter := identityLoss(t, g, tuned.Context(), data)
	t.Logf("identity loss %.4f -> %.4f after %d steps (%v)", lossBefore, lossAfter, opt.Steps, tuned.Elapsed)
	if !(lossAfter < 0.8*lossBefore) {
		t.Errorf("identity loss %.4f -> %.4f: want a drop of at least 20%%", lossBefore, lossAfter)
	}
	if len(logs) != opt.Steps || logs[0].Prior == 0 {
		t.Errorf("%d step logs (want %d), first prior term %g (want > 0)", len(logs), opt.Steps, logs[0].Prior)
	}
	after := weights(t, tuned.Context())
	changed := 0
	for name, w := range before {
		a, ok := after[name]
		if !ok {
			t.Fatalf("tuned generator lacks %s", name)
		}
		same := maxAbsDiff(a, w) == 0
		if inDit := len(name) > 4 && name[:5] == "/dit/"; !inDit && !same {
			t.Errorf("%s is outside the train scope /dit but changed", name)
		} else if inDit && !same {
			changed++
		}
	}
	if changed == 0 {
		t.Error("no denoiser weight changed")
	}
	for name, w := range weights(t, g.Context()) {
		if maxAbsDiff(w, before[name]) != 0 {
			t.Fatalf("the original generator's %s changed", name)
		}
	}
	// The tuned generator samples through family.Sampler with its own weights.
	req := []family.SampleRequest{{IDs: data.InstanceIDs, Seed: 1}}
	so := family.SampleOptions{Steps: 3, Guidance: 2, BatchSize: 1}
	a, err := family.Sample(g, req, so)
	if err != nil {
		t.Fatal(err)
	}
	b, err := family.Sample(tuned, req, so)
	if err != nil {
		t.Fatal(err)
	}
	if maxAbsDiff(a[0], b[0]) == 0 {
		t.Error("the tuned generator samples what the original does")
	}
}

func maxAbsDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}

// TestDreamBoothErrors: bad options and data are named.
func TestDreamBoothErrors(t *testing.T) {
	g := smallTiny(t)
	tok := g.Tokenizer()
	if _, _, err := DreamBoothPrompts(tok, "sks", "man"); err == nil {
		t.Error("a token outside the vocabulary was accepted")
	}
	good := DreamBoothData{Instance: [][]float32{make([]float32, 192)}, InstanceIDs: tok.Encode("a patched man").IDs,
		Class: [][]float32{make([]float32, 192)}, ClassIDs: tok.Encode("a man").IDs}
	for name, tc := range map[string]struct {
		data DreamBoothData
		opt  func(*DreamBoothOptions)
	}{
		"steps":       {good, func(o *DreamBoothOptions) { o.Steps = 0 }},
		"scope":       {good, func(o *DreamBoothOptions) { o.TrainScopes = []string{"/unet"} }},
		"no class":    {DreamBoothData{Instance: good.Instance, InstanceIDs: good.InstanceIDs}, func(*DreamBoothOptions) {}},
		"latent size": {DreamBoothData{Instance: [][]float32{make([]float32, 5)}, InstanceIDs: good.InstanceIDs, Class: good.Class, ClassIDs: good.ClassIDs}, func(*DreamBoothOptions) {}},
	} {
		opt := DefaultDreamBoothOptions()
		opt.Steps = 1
		tc.opt(&opt)
		if _, err := DreamBooth(context.Background(), g, tc.data, opt, nil); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// BenchmarkDreamBoothIdentity fine-tunes the committed tiny generator with the default options
// on one synthfaces identity (8 images, 32 class images drawn with 10 guided steps) and reports
// the wall time of one identity's fine-tune (ns/op, class images excluded), the identity loss
// before and after on fixed draws, and how close the token prompt's images come to the references.
func BenchmarkDreamBoothIdentity(b *testing.B) {
	g, err := tiny.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	world, err := synthfaces.New(synthfaces.Config{Seed: 1, Identities: 1, ImagesPerIdentity: 8, Size: g.Info().ImageSize})
	if err != nil {
		b.Fatal(err)
	}
	var inst [][]float32
	for i := range world.Len() {
		s, err := world.At(i)
		if err != nil {
			b.Fatal(err)
		}
		l, _, err := g.Autoencoder().Encode(s.Image)
		if err != nil {
			b.Fatal(err)
		}
		inst = append(inst, l)
	}
	opt := DefaultDreamBoothOptions()
	tok := g.Tokenizer()
	ip, cp, err := DreamBoothPrompts(tok, opt.Token, world.Identity(0).Class)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := ClassPriorLatents(g, tok.Encode(cp).IDs, opt.ClassImages, family.SampleOptions{Steps: 10, Guidance: 4, BatchSize: 8})
	if err != nil {
		b.Fatal(err)
	}
	data := DreamBoothData{Instance: inst, InstanceIDs: tok.Encode(ip).IDs, Class: cl, ClassIDs: tok.Encode(cp).IDs}
	before := identityLoss(b, g, g.Context(), data)
	var tuned *Tuned
	b.ResetTimer()
	for range b.N {
		if tuned, err = DreamBooth(context.Background(), g, data, opt, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(before, "loss_before")
	b.ReportMetric(identityLoss(b, g, tuned.Context(), data), "loss_after")
	// Identity: the tiny identity encoder's mean cosine between the references and 8 images of
	// "a patched <class> is looking at the camera." from the tuned and from the original generator.
	face, err := tinyface.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	var refs []image.Image
	for i := range world.Len() {
		s, _ := world.At(i)
		refs = append(refs, s.Image)
	}
	refEmb, err := face.Embed(refs)
	if err != nil {
		b.Fatal(err)
	}
	prompt, err := WithToken("a "+world.Identity(0).Class+" is looking at the camera.", world.Identity(0).Class, opt.Token)
	if err != nil {
		b.Fatal(err)
	}
	var reqs []family.SampleRequest
	for k := range 8 {
		reqs = append(reqs, family.SampleRequest{IDs: tok.Encode(prompt).IDs, Seed: uint64(k)})
	}
	for name, gen := range map[string]family.Generator{"ref_cos_tuned": tuned, "ref_cos_original": g} {
		lat, err := family.Sample(gen, reqs, family.SampleOptions{Steps: 10, Guidance: 4, BatchSize: 8})
		if err != nil {
			b.Fatal(err)
		}
		var imgs []image.Image
		for _, l := range lat {
			img, err := g.Autoencoder().Decode(l, g.Info().LatentShape)
			if err != nil {
				b.Fatal(err)
			}
			imgs = append(imgs, img)
		}
		emb, err := face.Embed(imgs)
		if err != nil {
			b.Fatal(err)
		}
		sum := 0.0
		for _, e := range emb {
			for _, r := range refEmb {
				sum += tinyface.Cosine(e, r)
			}
		}
		b.ReportMetric(sum/float64(len(emb)*len(refEmb)), name)
	}
}

// TestTuneIdentity: reference images through the autoencoder into a fine-tune, and the
// generation prompt with the token before the class word.
func TestTuneIdentity(t *testing.T) {
	got, err := WithToken("a smiling man is reading in the library.", "man", "patched")
	if err != nil || got != "a smiling patched man is reading in the library ." {
		t.Errorf("WithToken: %q, %v", got, err)
	}
	if _, err := WithToken("a woman at the beach", "man", "patched"); err == nil {
		t.Error("WithToken: a prompt without the class word was accepted")
	}
	g := smallTiny(t)
	var imgs []image.Image
	for k := range 2 {
		img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
		for i := range img.Pix {
			img.Pix[i] = uint8(40*k + 7*i)
		}
		imgs = append(imgs, img)
	}
	opt := DefaultDreamBoothOptions()
	opt.Steps, opt.PriorWeight = 3, 0
	tuned, err := TuneIdentity(context.Background(), g, imgs, "man", nil, opt)
	if err != nil {
		t.Fatal(err)
	}
	if tuned.Context() == g.Context() {
		t.Error("the tuned generator shares the original's context")
	}
	if _, err := TuneIdentity(context.Background(), g, []image.Image{image.NewNRGBA(image.Rect(0, 0, 5, 5))}, "man", nil, opt); err == nil {
		t.Error("a reference image of the wrong size was accepted")
	} else {
		t.Log(err)
	}
}
