package tinyclip

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"

	"github.com/cocoflow/cocoflow/datasets/captioner"
	"github.com/cocoflow/cocoflow/datasets/synthfaces"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// world renders ids identities × per images of synthfaces with two template captions each.
func world(t testing.TB, ids, per int) (Data, []string) {
	t.Helper()
	w, err := synthfaces.New(synthfaces.Config{Seed: 5, Identities: ids, ImagesPerIdentity: per})
	if err != nil {
		t.Fatal(err)
	}
	capt := captioner.NewTemplate()
	var d Data
	var classes []string
	for i := range w.Len() {
		s, err := w.At(i)
		if err != nil {
			t.Fatal(err)
		}
		caps, err := capt.Caption(context.Background(), captioner.Request{ID: s.ID, Class: s.Class, Scene: s.Scene, Attributes: s.Attributes, N: 2, Seed: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, c := range caps {
			texts = append(texts, c.Text)
		}
		d.Images = append(d.Images, s.Image)
		d.Captions = append(d.Captions, texts)
		classes = append(classes, s.Class)
	}
	return d, classes
}

func tinyOptions(t testing.TB) Options {
	t.Helper()
	o, err := DefaultOptions()
	if err != nil {
		t.Fatal(err)
	}
	o.Config.Image = tinyface.TowerConfig{Kind: tinyface.KindViT, Patch: 8, Width: 16, Depth: 1, Heads: 2, MLP: 32}
	o.Config.Text.Width, o.Config.Text.Depth, o.Config.Text.Heads, o.Config.Text.MLP = 16, 1, 2, 32
	o.Config.Dim = 8
	o.Steps, o.BatchSize, o.WarmupSteps = 2, 8, 1
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

func TestInfoNCEMatchesHandComputation(t *testing.T) {
	tests := []struct {
		name     string
		img, txt [][]float32
		pos      [][]float32
		logScale float64
	}{
		{"distinct", [][]float32{{1, 0}, {0, 1}, {0.6, 0.8}}, [][]float32{{0.8, 0.6}, {0, 1}, {1, 0}},
			[][]float32{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}, math.Log(10)},
		{"repeated caption", [][]float32{{1, 0}, {0, 1}, {0.6, 0.8}}, [][]float32{{0.8, 0.6}, {0, 1}, {0.8, 0.6}},
			[][]float32{{1, 0, 1}, {0, 1, 0}, {1, 0, 1}}, 0.5},
	}
	b, err := engine.Backend()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.img)
			logit := func(i, j int) float64 {
				return math.Exp(tc.logScale) * (float64(tc.img[i][0])*float64(tc.txt[j][0]) + float64(tc.img[i][1])*float64(tc.txt[j][1]))
			}
			// ce sums, over rows r, the cross-entropy of row r of the pairs (i, j) = at(r, k).
			ce := func(at func(r, k int) (int, int)) float64 {
				var total float64
				for r := range n {
					var z, qsum float64
					for k := range n {
						i, j := at(r, k)
						z += math.Exp(logit(i, j))
						qsum += float64(tc.pos[i][j])
					}
					for k := range n {
						i, j := at(r, k)
						total -= float64(tc.pos[i][j]) / qsum * (logit(i, j) - math.Log(z))
					}
				}
				return total / float64(n)
			}
			want := 0.5 * (ce(func(r, k int) (int, int) { return r, k }) + ce(func(r, k int) (int, int) { return k, r }))
			out, err := graph.ExecOnce(b, func(img, txt, pos *graph.Node) *graph.Node {
				return InfoNCE(img, txt, graph.Scalar(img.Graph(), tinyface.DType, tc.logScale), pos)
			}, tc.img, tc.txt, tc.pos)
			if err != nil {
				t.Fatal(err)
			}
			if got := float64(out.Value().(float32)); math.Abs(got-want) > 1e-5 {
				t.Fatalf("InfoNCE = %.6f, hand computation %.6f", got, want)
			}
		})
	}
}

func TestEmbedShapesNormDeterminism(t *testing.T) {
	d, _ := world(t, 10, 7) // 70 images and texts: two batches each, the second padded
	m := mustTrain(t, d, tinyOptions(t))
	var texts []string
	for _, c := range d.Captions {
		texts = append(texts, c[0])
	}
	iv, err := m.EmbedImages(d.Images)
	if err != nil {
		t.Fatal(err)
	}
	tv, err := m.EmbedTexts(texts)
	if err != nil {
		t.Fatal(err)
	}
	for name, vs := range map[string][][]float32{"image": iv, "text": tv} {
		if len(vs) != 70 {
			t.Fatalf("%d %s embeddings, want 70", len(vs), name)
		}
		for i, v := range vs {
			var n float64
			for _, x := range v {
				n += float64(x) * float64(x)
			}
			if len(v) != 8 || math.Abs(n-1) > 1e-4 {
				t.Fatalf("%s embedding %d: %d values, squared norm %v; want 8 and 1", name, i, len(v), n)
			}
		}
	}
	iv2, _ := m.EmbedImages(d.Images)
	tv2, _ := m.EmbedTexts(texts)
	alone, _ := m.EmbedTexts(texts[66:67])
	for i := range iv {
		for k := range iv[i] {
			if iv[i][k] != iv2[i][k] || tv[i][k] != tv2[i][k] {
				t.Fatalf("embedding %d differs between calls", i)
			}
		}
	}
	for k := range alone[0] {
		if math.Abs(float64(alone[0][k]-tv[66][k])) > 1e-5 {
			t.Fatalf("text 66 alone %v, in a batch %v", alone[0], tv[66])
		}
	}
	// Padding after EOS does not matter (causal attention, pooled at EOS); the words do.
	long, _ := m.EmbedTexts([]string{"a man.", "a man .", "a woman."})
	if tinyface.Cosine(long[0], long[1]) < 0.99999 || tinyface.Cosine(long[0], long[2]) > 0.99999 {
		t.Fatalf("cos(a man., a man .) = %v, cos(a man., a woman.) = %v", tinyface.Cosine(long[0], long[1]), tinyface.Cosine(long[0], long[2]))
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	d, _ := world(t, 4, 3)
	m := mustTrain(t, d, tinyOptions(t))
	dir := t.TempDir()
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	m2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Config() != m.Config() {
		t.Fatalf("loaded config %+v, want %+v", m2.Config(), m.Config())
	}
	texts := []string{"a photo of a man.", "a girl with red hair in a park."}
	for _, pair := range []struct {
		name string
		a, b func() ([][]float32, error)
	}{
		{"images", func() ([][]float32, error) { return m.EmbedImages(d.Images) }, func() ([][]float32, error) { return m2.EmbedImages(d.Images) }},
		{"texts", func() ([][]float32, error) { return m.EmbedTexts(texts) }, func() ([][]float32, error) { return m2.EmbedTexts(texts) }},
	} {
		a, err1 := pair.a()
		b, err2 := pair.b()
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		for i := range a {
			for k := range a[i] {
				if a[i][k] != b[i][k] {
					t.Fatalf("%s embedding %d changed across Save/Load", pair.name, i)
				}
			}
		}
	}
	cfgPath := filepath.Join(dir, tinyface.ConfigFile)
	raw, _ := os.ReadFile(cfgPath)
	for _, tc := range []struct{ from, to, want string }{
		{`"dim": 8`, `"dim": 16`, "do not match"},
		{"tinyclip/v1", "tinyface/v1", "format"},
		{`"vocab": `, `"vocab": 1`, "do not match"},
	} {
		if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(raw), tc.from, tc.to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load with %s -> %s: %v, want an error mentioning %q", tc.from, tc.to, err, tc.want)
		}
	}
}

func TestTrainLossFalls(t *testing.T) {
	d, _ := world(t, 8, 2)
	o := tinyOptions(t)
	o.Steps, o.BatchSize, o.LearningRate, o.WarmupSteps, o.Augment = 40, 16, 3e-3, 5, tinyface.Augment{}
	var losses []float64
	if _, err := Train(context.Background(), d, o, func(p Progress) { losses = append(losses, p.Loss) }); err != nil {
		t.Fatal(err)
	}
	first, last := mean(losses[:5]), mean(losses[len(losses)-5:])
	if !(last < 0.6*first) {
		t.Fatalf("loss %.3f -> %.3f: want it to fall by at least 40%%", first, last)
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
	d, _ := world(t, 4, 3)
	o := tinyOptions(t)
	o.Steps = 4
	straight := mustTrain(t, d, o)
	o.CheckpointDir, o.Steps = t.TempDir(), 2
	mustTrain(t, d, o)
	o.Steps = 4
	resumed := mustTrain(t, d, o)
	a, _ := straight.EmbedTexts([]string{"a man in a park."})
	b, _ := resumed.EmbedTexts([]string{"a man in a park."})
	for k := range a[0] {
		if a[0][k] != b[0][k] {
			t.Fatalf("resumed run %v, straight run %v", b[0], a[0])
		}
	}
}

func TestTrainRejectsBadInput(t *testing.T) {
	d, _ := world(t, 4, 3)
	tests := []struct {
		name string
		data Data
		edit func(*Options)
		want string
	}{
		{"lengths", Data{Images: d.Images, Captions: d.Captions[:3]}, nil, "caption lists"},
		{"too few images", Data{Images: d.Images[:3], Captions: d.Captions[:3]}, nil, "batch_size"},
		{"no caption", Data{Images: d.Images, Captions: append([][]string{{}}, d.Captions[1:]...)}, nil, "image 0 has no caption"},
		{"flip", d, func(o *Options) { o.Augment.Flip = true }, "flip"},
		{"vocab", d, func(o *Options) { o.Config.Text.Vocab = 50 }, "vocab"},
	}
	for _, tc := range tests {
		o := tinyOptions(t)
		if tc.edit != nil {
			tc.edit(&o)
		}
		if _, err := Train(context.Background(), tc.data, o, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Train error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestEvaluateCountsAndConfusion(t *testing.T) {
	d, classes := world(t, 5, 4)
	m := mustTrain(t, d, tinyOptions(t))
	ev := EvalData{Images: d.Images, Classes: classes}
	for _, c := range d.Captions {
		ev.Captions = append(ev.Captions, c[0])
	}
	r, err := Evaluate(m, ev, synthfaces.HumanClasses, 8)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i, row := range r.Confusion {
		n := 0
		for _, k := range row {
			n += k
		}
		if n != 4 {
			t.Errorf("class %s: %d images in the confusion row, want 4", r.ClassNames[i], n)
		}
		total += row[i]
	}
	if r.Images != 20 || math.Abs(r.ClassAcc-float64(total)/20) > 1e-9 || r.Candidates != 8 {
		t.Fatalf("report %+v: want 20 images, class accuracy = diagonal/20, 8 candidates", r)
	}
	if r.RetrievalTop1 < 0 || r.RetrievalTop1 > r.RetrievalTop5 || r.Chance < 1.0/8 || r.Chance > 1 {
		t.Fatalf("retrieval top1 %v top5 %v chance %v: want 0 ≤ top1 ≤ top5, chance in [1/8, 1]", r.RetrievalTop1, r.RetrievalTop5, r.Chance)
	}
	pred, err := m.Classify(d.Images, synthfaces.HumanClasses)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pred {
		if p < 0 || p >= 5 {
			t.Fatalf("Classify image %d: %d, want an index in [0, 5)", i, p)
		}
	}
	if _, err := Evaluate(m, EvalData{Images: d.Images[:2], Captions: []string{"a", "b"}, Classes: []string{"man", "cat"}}, synthfaces.HumanClasses, 0); err == nil {
		t.Error("unknown class: want an error")
	}
	if !strings.Contains(r.String(), "person") {
		t.Errorf("report text lacks the class names:\n%s", r)
	}
}

// BenchmarkEmbed measures image and text inference throughput of the default architecture.
func BenchmarkEmbed(b *testing.B) {
	d, _ := world(b, 16, 8)
	o, err := DefaultOptions()
	if err != nil {
		b.Fatal(err)
	}
	o.Steps = 1
	m := mustTrain(b, d, o)
	texts := make([]string, len(d.Images))
	for i := range texts {
		texts[i] = d.Captions[i][0]
	}
	for _, bc := range []struct {
		name string
		run  func() ([][]float32, error)
	}{
		{"images", func() ([][]float32, error) { return m.EmbedImages(d.Images) }},
		{"texts", func() ([][]float32, error) { return m.EmbedTexts(texts) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := bc.run(); err != nil { // compile
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(texts))/b.Elapsed().Seconds(), fmt.Sprintf("%s/s", bc.name))
		})
	}
}

// BenchmarkTrainStep measures one training step (both towers forward and backward, Adam) of the
// default options, batch 64.
func BenchmarkTrainStep(b *testing.B) {
	d, _ := world(b, 16, 4)
	o, err := DefaultOptions()
	if err != nil {
		b.Fatal(err)
	}
	o.Steps = 1
	mustTrain(b, d, o) // warm caches
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
	b.ReportMetric((b.Elapsed().Seconds()-first)/float64(b.N), "s/step")
}
