package family_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/family/tiny"
)

// smallTiny returns a tiny generator of a very small architecture, pretrained for a few steps on
// random latents so that none of its layers is still zero.
func smallTiny(t testing.TB) *tiny.Generator {
	t.Helper()
	tok, err := tiny.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	cfg := tiny.DefaultConfig(tok.VocabSize())
	cfg.TextWidth, cfg.TextDepth, cfg.TextHeads = 16, 1, 2
	cfg.Width, cfg.Depth, cfg.Heads, cfg.MLPRatio, cfg.TimeDim = 16, 1, 2, 2, 8
	cfg.ImageSize, cfg.LatentShape = 8, []int{4, 4, 12}
	r := rand.New(rand.NewPCG(1, 1))
	var data tiny.Data
	for i := range 8 {
		lat := make([]float32, 4*4*12)
		for j := range lat {
			lat[j] = float32(r.NormFloat64())
		}
		data.Latents = append(data.Latents, lat)
		data.Captions = append(data.Captions, [][]int32{tok.Encode([]string{"a man", "a woman at the beach"}[i%2]).IDs})
	}
	opt := tiny.DefaultPretrainOptions()
	opt.Steps, opt.BatchSize, opt.LearningRate, opt.WarmupSteps, opt.EMADecay = 4, 4, 0.05, 1, 0
	g, err := tiny.Pretrain(context.Background(), cfg, data, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestSampleTiny: the tiny generator through Sample — shapes, pseudo-words, and the same latent
// per request whatever the batch size and batch composition.
func TestSampleTiny(t *testing.T) {
	g := smallTiny(t)
	tok := g.Tokenizer()
	word := make([]float32, 16)
	for i := range word {
		word[i] = 0.3 * float32(i%5-2)
	}
	reqs := []family.SampleRequest{
		{IDs: tok.Encode("a man at the beach").IDs, Seed: 4},
		{IDs: tok.Encode("a man at the beach").IDs, Seed: 4, Insertions: []family.Insertion{{Position: 2, Words: [][]float32{word}}}},
		{IDs: tok.Encode("a woman and a man").IDs, Seed: 5, Insertions: []family.Insertion{
			{Position: 2, Words: [][]float32{word}}, {Position: 5, Words: [][]float32{word}}}},
	}
	opt := family.SampleOptions{Steps: 3, Guidance: 4, BatchSize: 1}
	one, err := family.Sample(g, reqs, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range one {
		if len(l) != 4*4*12 {
			t.Fatalf("request %d: latent of %d values, want 192", i, len(l))
		}
	}
	if maxDiff(one[0], one[1]) == 0 {
		t.Error("inserting a pseudo-word did not change the sample")
	}
	opt.BatchSize = 4
	four, err := family.Sample(g, []family.SampleRequest{reqs[2], reqs[0], reqs[1]}, opt)
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range []int{2, 0, 1} {
		if d := maxDiff(four[i], one[j]); d > 1e-5 {
			t.Errorf("request %d: batch of 4 and batch of 1 differ by %g", j, d)
		}
	}
}

// BenchmarkSample times sampling with the committed tiny generator as the evaluate stage
// samples by default (10 DDIM steps, guidance 4), at batch 8 and a larger batch.
func BenchmarkSample(b *testing.B) {
	tok, err := tiny.Tokenizer()
	if err != nil {
		b.Fatal(err)
	}
	g, err := tiny.LoadDefault()
	if err != nil {
		b.Fatal(err)
	}
	for _, bs := range []int{8, 32} {
		b.Run(fmt.Sprintf("batch%d", bs), func(b *testing.B) {
			s, err := family.NewSampler(g, family.SampleOptions{Steps: 10, Guidance: 4, BatchSize: bs})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var reqs []family.SampleRequest
			for i := range bs {
				reqs = append(reqs, family.SampleRequest{IDs: tok.Encode("a man is looking at the camera.").IDs, Seed: uint64(i)})
			}
			if _, err := s.Sample(reqs); err != nil { // compile
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := s.Sample(reqs); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			n := float64(b.N * len(reqs))
			b.ReportMetric(n/b.Elapsed().Seconds(), "images/s")
			b.ReportMetric(b.Elapsed().Seconds()/n, "s/image")
		})
	}
}
