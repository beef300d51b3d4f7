package tiny

import (
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// testConfig is a very small architecture for fast tests: 8x8 images, a 4x4x12 latent.
func testConfig(t testing.TB) Config {
	t.Helper()
	tok, err := Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig(tok.VocabSize())
	c.TextWidth, c.TextDepth, c.TextHeads = 16, 1, 2
	c.Width, c.Depth, c.Heads, c.MLPRatio, c.TimeDim = 16, 1, 2, 2, 8
	c.ImageSize = 8
	c.LatentShape = Latent{F: 2}.Shape(8)
	return c
}

// syntheticData renders n small images — a coloured disc (by class word) on a coloured
// background (by scene word) — encodes them with the config's patch latent and captions them
// with two captions each.
func syntheticData(t testing.TB, cfg Config, n int) Data {
	t.Helper()
	tok, err := Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	classes := []struct {
		word string
		col  color.NRGBA
	}{{"man", color.NRGBA{200, 60, 40, 255}}, {"woman", color.NRGBA{40, 80, 200, 255}}, {"cat", color.NRGBA{230, 220, 60, 255}}}
	scenes := []struct {
		word string
		col  color.NRGBA
	}{{"beach", color.NRGBA{220, 200, 150, 255}}, {"forest", color.NRGBA{30, 120, 40, 255}}}
	f := cfg.ImageSize / cfg.LatentShape[0]
	ae := Latent{F: f, Mean: DefaultLatent.Mean, Std: DefaultLatent.Std}
	r := rand.New(rand.NewPCG(5, 6))
	var d Data
	s := cfg.ImageSize
	for i := range n {
		cl, sc := classes[i%len(classes)], scenes[(i/len(classes))%len(scenes)]
		img := image.NewNRGBA(image.Rect(0, 0, s, s))
		cx, cy, rad := float64(s)/2+r.Float64()-0.5, float64(s)/2+r.Float64()-0.5, float64(s)*0.3
		for y := range s {
			for x := range s {
				dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
				if dx*dx+dy*dy < rad*rad {
					img.SetNRGBA(x, y, cl.col)
				} else {
					img.SetNRGBA(x, y, sc.col)
				}
			}
		}
		lat, _, err := ae.Encode(img)
		if err != nil {
			t.Fatal(err)
		}
		d.Latents = append(d.Latents, lat)
		d.Captions = append(d.Captions, [][]int32{
			tok.Encode("a photo of a " + cl.word + " at the " + sc.word + ".").IDs,
			tok.Encode("a " + cl.word + " in the " + sc.word).IDs,
		})
	}
	return d
}

// randomizeZeros fills every all-zero weight matrix of g (adaLN-Zero and the output layer are
// zero at initialisation) with small random values, so gradients reach every input.
func randomizeZeros(t testing.TB, g *Generator) {
	t.Helper()
	r := rand.New(rand.NewPCG(9, 9))
	for v := range g.ctx.IterVariables() {
		if !isModelScope(v.Scope()) || v.Shape().Rank() < 2 {
			continue
		}
		vals := tensors.MustCopyFlatData[float32](v.MustValue())
		zero := true
		for _, x := range vals {
			zero = zero && x == 0
		}
		if !zero {
			continue
		}
		for i := range vals {
			vals[i] = float32(r.NormFloat64() * 0.2)
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, v.Shape().Dimensions...)); err != nil {
			t.Fatal(err)
		}
	}
}

// values returns every model variable of g as flat float32 data by scope/name.
func values(t testing.TB, g *Generator) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for v := range g.ctx.IterVariables() {
		if isModelScope(v.Scope()) {
			out[v.ScopeAndName()] = tensors.MustCopyFlatData[float32](v.MustValue())
		}
	}
	return out
}
