package tinyface

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// world renders ids identities × per images of synthfaces (32×32).
func world(t testing.TB, ids, per int) Data {
	t.Helper()
	w, err := synthfaces.New(synthfaces.Config{Seed: 3, Identities: ids, ImagesPerIdentity: per})
	if err != nil {
		t.Fatal(err)
	}
	var d Data
	for i := range w.Len() {
		s, err := w.At(i)
		if err != nil {
			t.Fatal(err)
		}
		d.Images = append(d.Images, s.Image)
		d.Labels = append(d.Labels, s.Identity)
	}
	return d
}

// tinyOptions is a configuration small enough for unit tests.
func tinyOptions() Options {
	o := DefaultOptions()
	o.Config = Config{Tower: TowerConfig{Kind: KindViT, Patch: 8, Width: 16, Depth: 1, Heads: 2, MLP: 32}, Dim: 8}
	o.Steps, o.BatchSize, o.WarmupSteps, o.MarginWarmup = 2, 8, 1, 1
	return o
}

func mustTrain(t testing.TB, d Data, o Options) *Model {
	t.Helper()
	m, err := Train(context.Background(), d, o, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestArcFaceLossMatchesHandComputation(t *testing.T) {
	s2 := math.Sqrt(0.5)
	tests := []struct {
		name    string
		emb     [][]float32
		centers [][]float32
		labels  []int32
		s, m    float64
	}{
		{"no margin", [][]float32{{1, 0}, {0, 1}}, [][]float32{{1, 0}, {0, 2}, {-1, 1}}, []int32{0, 2}, 10, 0},
		{"margin", [][]float32{{1, 0}, {float32(s2), float32(s2)}}, [][]float32{{2, 0}, {0, 1}, {-1, 1}}, []int32{1, 0}, 30, 0.5},
		// θ_y = 170° and m = 0.5 rad: θ + m passes π, the fallback branch.
		{"fallback", [][]float32{{float32(math.Cos(170 * math.Pi / 180)), float32(math.Sin(170 * math.Pi / 180))}},
			[][]float32{{1, 0}, {0, 1}}, []int32{0}, 8, 0.5},
	}
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Hand computation in float64.
			var want float64
			for i, e := range tc.emb {
				logits := make([]float64, len(tc.centers))
				for j, c := range tc.centers {
					norm := math.Hypot(float64(c[0]), float64(c[1]))
					cos := (float64(e[0])*float64(c[0]) + float64(e[1])*float64(c[1])) / norm
					if j == int(tc.labels[i]) {
						theta := math.Acos(cos)
						if theta+tc.m <= math.Pi {
							cos = math.Cos(theta + tc.m)
						} else {
							cos -= tc.m * math.Sin(tc.m)
						}
					}
					logits[j] = tc.s * cos
				}
				var z float64
				for _, l := range logits {
					z += math.Exp(l)
				}
				want += -(logits[tc.labels[i]] - math.Log(z)) / float64(len(tc.emb))
			}
			out, err := graph.ExecOnce(b, func(emb, centers, labels *graph.Node) *graph.Node {
				m := graph.Scalar(emb.Graph(), DType, tc.m)
				loss, _ := ArcFaceLoss(emb, centers, labels, tc.s, m)
				return loss
			}, tc.emb, tc.centers, tc.labels)
			if err != nil {
				t.Fatal(err)
			}
			got := float64(out.Value().(float32))
			if math.Abs(got-want) > 1e-4*max(1, math.Abs(want)) {
				t.Fatalf("ArcFace loss = %.6f, hand computation %.6f", got, want)
			}
		})
	}
}

func TestPatchifyLayout(t *testing.T) {
	pix := make([]float32, pixelsLen)
	for i := range pix {
		pix[i] = float32(i) / pixelsLen
	}
	tok := Patchify(nil, pix, TowerConfig{Kind: KindViT, Patch: 4})
	if len(tok) != 64*48 {
		t.Fatalf("len = %d, want %d", len(tok), 64*48)
	}
	// Token (py=1, px=2), within-patch (dy=3, dx=1), channel 2 is pixel (7, 9), channel 2.
	got := tok[(1*8+2)*48+(3*4+1)*3+2]
	want := (pix[(7*ImageSize+9)*3+2] - pixelMean) / pixelStd
	if got != want {
		t.Fatalf("token value %v, want %v", got, want)
	}
	// A 24-pixel crop starts at pixel (4, 4): token (0, 1) of patch 8 begins at pixel (4, 12).
	crop := TowerConfig{Kind: KindMLP, Crop: 24, Patch: 8}
	tok = Patchify(nil, pix, crop)
	if len(tok) != crop.Tokens()*crop.TokenDim() || crop.Tokens() != 9 {
		t.Fatalf("crop 24: %d values, %d tokens; want 9 tokens of 192", len(tok), crop.Tokens())
	}
	if got, want := tok[1*192], (pix[(4*ImageSize+12)*3]-pixelMean)/pixelStd; got != want {
		t.Fatalf("crop 24: token 1 starts with %v, want %v", got, want)
	}
}

func TestPixelsResizesAndRejectsEmpty(t *testing.T) {
	big := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			big.Set(x, y, color.RGBA{200, 100, 50, 255})
		}
	}
	p, err := Pixels(big)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != pixelsLen || math.Abs(float64(p[0])-200.0/255) > 0.01 || math.Abs(float64(p[pixelsLen-1])-50.0/255) > 0.01 {
		t.Fatalf("resized pixels: len %d, first %v, last %v", len(p), p[0], p[pixelsLen-1])
	}
	if _, err := Pixels(image.NewRGBA(image.Rect(0, 0, 0, 0))); err == nil {
		t.Fatal("empty image: want an error")
	}
}

func TestAugmentShiftsAndKeepsInput(t *testing.T) {
	pix := make([]float32, pixelsLen)
	for i := range pix {
		pix[i] = 0.5
	}
	pix[(10*ImageSize+10)*3] = 1
	orig := append([]float32(nil), pix...)
	r := rand.New(rand.NewPCG(1, 2))
	moved := 0
	for range 20 {
		out := Augment{Shift: 2}.Apply(r, pix)
		n := 0
		for i, v := range out {
			if v == 1 {
				n++
				if i != (10*ImageSize+10)*3 {
					moved++
				}
			}
		}
		if n != 1 {
			t.Fatalf("a shift kept %d bright pixels, want 1", n)
		}
	}
	if moved == 0 {
		t.Fatal("20 shifts never moved the pixel")
	}
	for i := range pix {
		if pix[i] != orig[i] {
			t.Fatal("Apply modified its input")
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Options)
		want string // "" means valid
	}{
		{"default", func(*Options) {}, ""},
		{"steps", func(o *Options) { o.Steps = 0 }, "steps"},
		{"batch", func(o *Options) { o.BatchSize = 1 }, "batch_size"},
		{"lr", func(o *Options) { o.LearningRate = 0 }, "learning_rate"},
		{"margin", func(o *Options) { o.Margin = 2 }, "margin"},
		{"patch", func(o *Options) { o.Config.Tower.Patch = 5 }, "patch"},
		{"heads", func(o *Options) { o.Config.Tower.Kind, o.Config.Tower.Heads = KindViT, 5 }, "heads"},
		{"dim", func(o *Options) { o.Config.Dim = 0 }, "dim"},
		{"kind", func(o *Options) { o.Config.Tower.Kind = "cnn" }, "kind"},
		{"crop", func(o *Options) { o.Config.Tower.Crop = 23 }, "crop"},
		{"crop patch", func(o *Options) { o.Config.Tower.Crop, o.Config.Tower.Patch = 24, 16 }, "patch"},
		{"embed vit", func(o *Options) { o.Config.Tower.Kind, o.Config.Tower.Embed = KindViT, 8 }, "embed"},
		{"shift", func(o *Options) { o.Augment.Shift = 20 }, "augment.shift"},
	}
	for _, tc := range tests {
		o := DefaultOptions()
		tc.edit(&o)
		err := o.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Validate() = %v, want error mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestEmbedShapesNormDeterminism(t *testing.T) {
	d := world(t, 10, 7) // 70 images: two inference batches, the second padded
	for _, tower := range []TowerConfig{
		tinyOptions().Config.Tower,
		{Kind: KindMLP, Crop: 24, Patch: 4, Width: 16, Depth: 1, MLP: 32},
		{Kind: KindMLP, Patch: 4, Width: 16, Depth: 2, MLP: 32, Embed: 8},
	} {
		t.Run(fmt.Sprintf("%s_crop%d_embed%d", tower.Kind, tower.Crop, tower.Embed), func(t *testing.T) {
			o := tinyOptions()
			o.Config.Tower = tower
			checkEmbed(t, mustTrain(t, d, o), d)
		})
	}
}

func checkEmbed(t *testing.T, m *Model, d Data) {
	a, err := m.Embed(d.Images)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(d.Images) {
		t.Fatalf("%d embeddings for %d images", len(a), len(d.Images))
	}
	for i, v := range a {
		if len(v) != 8 {
			t.Fatalf("embedding %d has %d values, want 8", i, len(v))
		}
		var n float64
		for _, x := range v {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-4 {
			t.Fatalf("embedding %d has squared norm %v, want 1", i, n)
		}
	}
	b, err := m.Embed(d.Images)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := m.Embed(d.Images[67:68])
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		for k := range a[i] {
			if a[i][k] != b[i][k] {
				t.Fatalf("embedding %d differs between calls", i)
			}
		}
	}
	for k := range alone[0] {
		if math.Abs(float64(alone[0][k]-a[67][k])) > 1e-5 {
			t.Fatalf("image 67 alone %v, in a batch %v", alone[0], a[67])
		}
	}
	if Cosine(a[0], a[20]) > 0.99999 {
		t.Fatal("different images got the same embedding")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	d := world(t, 4, 3)
	m := mustTrain(t, d, tinyOptions())
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Config() != m.Config() || m2.Meta["classes"] != "4" {
		t.Fatalf("loaded config %+v meta %v, want %+v and 4 classes", m2.Config(), m2.Meta, m.Config())
	}
	a, _ := m.Embed(d.Images)
	b, err := m2.Embed(d.Images)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		for k := range a[i] {
			if a[i][k] != b[i][k] {
				t.Fatalf("embedding %d changed across Save/Load", i)
			}
		}
	}

	// A config that does not fit the weights, another format, a missing directory.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := m.Save(bad); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(bad, ConfigFile)
	raw, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), `"width": 16`, `"width": 32`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("Load with a mismatched width: %v, want a mismatch error", err)
	}
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), "tinyface/v1", "tinyclip/v1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "format") {
		t.Fatalf("Load of another format: %v, want a format error", err)
	}
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Load of a missing directory: want an error")
	}
}

func TestTrainLossFalls(t *testing.T) {
	d := world(t, 4, 4)
	o := tinyOptions()
	o.Steps, o.BatchSize, o.LearningRate, o.Augment = 60, 16, 3e-3, Augment{}
	o.WarmupSteps, o.MarginWarmup = 5, 20
	var losses []float64
	var acc float64
	if _, err := Train(context.Background(), d, o, func(p Progress) {
		losses = append(losses, p.Loss)
		acc = p.Accuracy
	}); err != nil {
		t.Fatal(err)
	}
	first, last := mean(losses[:5]), mean(losses[len(losses)-5:])
	if !(last < 0.5*first) || acc < 0.9 {
		t.Fatalf("loss %.3f -> %.3f, final batch accuracy %.2f: want the loss halved and accuracy ≥ 0.9", first, last, acc)
	}
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func TestTrainResumeMatchesStraightRun(t *testing.T) {
	d := world(t, 4, 3)
	o := tinyOptions()
	o.Steps = 4
	straight := mustTrain(t, d, o)
	o.CheckpointDir = t.TempDir()
	o.Steps = 2
	mustTrain(t, d, o)
	o.Steps = 4
	resumed := mustTrain(t, d, o)
	a, _ := straight.Embed(d.Images)
	b, _ := resumed.Embed(d.Images)
	for i := range a {
		for k := range a[i] {
			if a[i][k] != b[i][k] {
				t.Fatalf("embedding %d: resumed run %v, straight run %v", i, b[i], a[i])
			}
		}
	}
}

func TestTrainRejectsBadData(t *testing.T) {
	d := world(t, 2, 2)
	tests := []struct {
		name string
		data Data
		want string
	}{
		{"lengths", Data{Images: d.Images, Labels: d.Labels[:1]}, "labels"},
		{"one identity", Data{Images: d.Images[:2], Labels: []int{5, 5}}, "identities"},
		{"empty image", Data{Images: []image.Image{d.Images[0], image.NewRGBA(image.Rect(0, 0, 0, 0))}, Labels: []int{1, 2}}, "image 1"},
	}
	for _, tc := range tests {
		if _, err := Train(context.Background(), tc.data, tinyOptions(), nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Train error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name              string
		emb               [][]float32
		labels            []int
		same, diff, auc   float64
		acc, sim, faceDiv float64
	}{
		{
			name:   "separable",
			emb:    [][]float32{{1, 0}, {1, 0}, {0, 1}, {0, 1}},
			labels: []int{1, 1, 2, 2},
			same:   1, diff: 0, auc: 1, acc: 1, sim: 1, faceDiv: 1,
		},
		{
			// Pairs: (0,1) same cos 0.6; (0,2) diff 0.8; (1,2) diff 0; AUC = ½ (one of two negatives below).
			name:   "overlapping",
			emb:    [][]float32{{1, 0}, {0.6, 0.8}, {0.8, -0.6}},
			labels: []int{7, 7, 9},
			same:   0.6, diff: 0.4, auc: 0.5, acc: 0.75, sim: 0.6, faceDiv: 1 - (0.8*0.8-0.4*0.6)/math.Hypot(0.8, 0.4),
		},
	}
	for _, tc := range tests {
		r, err := Verify(tc.emb, tc.labels)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, c := range []struct {
			what      string
			got, want float64
		}{{"same", r.SameCos, tc.same}, {"diff", r.DiffCos, tc.diff}, {"gap", r.Gap, tc.same - tc.diff},
			{"auc", r.AUC, tc.auc}, {"acc", r.VerifyAcc, tc.acc}, {"face_sim", r.FaceSim, tc.sim}, {"face_div", r.FaceDiv, tc.faceDiv}} {
			if math.Abs(c.got-c.want) > 1e-6 {
				t.Errorf("%s: %s = %v, want %v", tc.name, c.what, c.got, c.want)
			}
		}
	}
	if _, err := Verify([][]float32{{1, 0}, {0, 1}}, []int{1, 2}); err == nil {
		t.Error("no same-identity pair: want an error")
	}
}

// BenchmarkEmbed measures inference throughput of the default architecture (random weights).
func BenchmarkEmbed(b *testing.B) {
	d := world(b, 16, 8)
	m := randomModel(b, DefaultConfig())
	if _, err := m.Embed(d.Images); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := m.Embed(d.Images); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(d.Images))/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkTrainStep measures one training step (forward, backward, Adam) of the default
// options, batch 64.
func BenchmarkTrainStep(b *testing.B) {
	d := world(b, 16, 4)
	o := DefaultOptions()
	o.Steps = 1
	if _, err := Train(context.Background(), d, o, nil); err != nil { // warm caches
		b.Fatal(err)
	}
	o.Steps = b.N + 1
	var first float64
	b.ResetTimer()
	if _, err := Train(context.Background(), d, o, func(p Progress) {
		if p.Step == 1 {
			first = p.Elapsed.Seconds()
		}
	}); err != nil {
		b.Fatal(err)
	}
	if b.N > 0 {
		b.ReportMetric((b.Elapsed().Seconds()-first)/float64(b.N), "s/step")
	}
}

// randomModel returns an untrained model of cfg (variables initialised by running the graph).
func randomModel(t testing.TB, cfg Config) *Model {
	t.Helper()
	ctx := mlctx.New()
	if err := ctx.SetRNGStateFromSeed(1); err != nil {
		t.Fatal(err)
	}
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	e, err := mlctx.NewExec(b, ctx, func(ctx *mlctx.Context, x *graph.Node) *graph.Node {
		return EmbedGraph(ctx.In(modelScope), cfg, x)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Exec(tensors.FromShape(tokenShape(cfg.Tower, 1))); err != nil {
		t.Fatal(err)
	}
	return newModel(cfg, ctx, nil)
}
