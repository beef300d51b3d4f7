package sdxl

import (
	"image"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/models/text/prompt"
)

// Sampling runs through ONNX Runtime (the generator is a family.HostSampler): deterministic for
// a seed, independent of batching, and moved by a pseudo-word.
func TestHostSampling(t *testing.T) {
	g := loadFixture(t)
	tok := g.Tokenizer()
	enc := tok.Encode("a photo of a man")
	pos := text.ConceptIndex(enc, "man")
	words := [][]float32{make([]float32, 32), make([]float32, 48)}
	for k := range words {
		for i := range words[k] {
			words[k][i] = float32(math.Sin(float64(3*i + k)))
		}
	}
	reqs := []family.SampleRequest{
		{IDs: enc.IDs, Seed: 1},
		{IDs: enc.IDs, Seed: 1, Insertions: []family.Insertion{{Position: pos, Words: words}}},
		{IDs: enc.IDs, Seed: 2},
	}
	opt := family.SampleOptions{Steps: 3, Guidance: 4, BatchSize: 2, Spacing: "leading"}
	s, err := family.NewSampler(g, opt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.Sample(reqs)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 3 || len(a[0]) != 4*8*8 {
		t.Fatalf("got %d latents of %d values", len(a), len(a[0]))
	}
	b, err := s.Sample(reqs[2:]) // alone in its batch
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a[2], b[0]) {
		t.Error("a request's latent depends on its batch")
	}
	if d := maxDiff(t, "word", a[0], a[1]); d < 1e-3 {
		t.Errorf("the pseudo-word moved the latent by only %.3g", d)
	}
	if d := maxDiff(t, "seed", a[0], a[2]); d < 1e-3 {
		t.Errorf("another seed moved the latent by only %.3g", d)
	}
	for _, v := range a[1] {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatal("non-finite latent")
		}
	}
}

// The unconditional rows (the empty prompt) get zero conditioning, as diffusers' SDXL pipeline
// does with force_zeros_for_empty_prompt.
func TestEmptyPromptIsZero(t *testing.T) {
	g := loadFixture(t)
	r, err := g.NewHostRunner(2)
	if err != nil {
		t.Fatal(err)
	}
	tok := g.Tokenizer()
	L := tok.MaxLength()
	var ids []int32
	plans := make([]prompt.Plan, 2)
	for i, p := range []string{"a man", ""} {
		fitted, eos, _ := text.Fit(tok.Encode(p).IDs, L, tok.EOS(), tok.Pad())
		ids = append(ids, fitted...)
		plans[i] = identityPlan(L, eos)
	}
	b := family.TextBatch{Rows: 2, Length: L, IDs: ids, Plans: plans, EOS: []int32{int32(plans[0].EOS), int32(plans[1].EOS)}, Words: 1, Vectors: [][]float32{make([]float32, 2*32), make([]float32, 2*48)}}
	hc, err := r.EncodeText(b)
	if err != nil {
		t.Fatal(err)
	}
	c := hc.(*cond)
	D := 32 + 48
	if maxAbs(c.states[:L*D]) == 0 || maxAbs(c.pooled[:c.pooledWidth]) == 0 {
		t.Error("the prompt's conditioning is zero")
	}
	if maxAbs(c.states[L*D:]) != 0 || maxAbs(c.pooled[c.pooledWidth:]) != 0 {
		t.Error("the empty prompt's conditioning is not zero")
	}
}

func TestAutoencoder(t *testing.T) {
	g := loadFixture(t)
	ae := g.Autoencoder()
	img := image.NewNRGBA(image.Rect(0, 0, 40, 32)) // not square, not the VAE's size
	for y := range 32 {
		for x := range 40 {
			img.SetNRGBA(x, y, color.NRGBA{R: uint8(6 * x), G: uint8(8 * y), B: 100, A: 255})
		}
	}
	lat, shape, err := ae.Encode(img)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{4, 8, 8}) || len(lat) != 256 {
		t.Fatalf("latent shape %v, %d values", shape, len(lat))
	}
	again, _, _ := ae.Encode(img)
	if !slices.Equal(lat, again) {
		t.Error("encoding is not deterministic")
	}
	out, err := ae.Decode(lat, shape)
	if err != nil {
		t.Fatal(err)
	}
	if b := out.Bounds(); b.Dx() != 64 || b.Dy() != 64 {
		t.Fatalf("decoded %v, want 64x64", b)
	}
	if _, err := ae.Decode(lat[:10], shape); err == nil {
		t.Error("Decode accepted a short latent")
	}
	mask := image.NewGray(image.Rect(0, 0, 32, 32))
	for y := range 16 {
		for x := range 32 {
			mask.SetGray(x, y, color.Gray{Y: 255})
		}
	}
	m, ms, err := ae.Mask(mask)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ms, []int{8, 8}) || m[0] != 1 || m[63] != 0 {
		t.Fatalf("mask %v: %v", ms, m)
	}
}

// Older optimum exports take the timestep as int64 [batch], newer ones as a float32 scalar; the
// family feeds either, and samples the same latents from each.
func TestTimestepVariants(t *testing.T) {
	initORT(t)
	variants := map[string]func(m *onnxgraph.Model){
		"float32 [batch]": func(m *onnxgraph.Model) {
			if err := batchedTimestep(m); err != nil {
				t.Fatal(err)
			}
		},
		"int64 [batch]": func(m *onnxgraph.Model) {
			if err := batchedTimestep(m); err != nil {
				t.Fatal(err)
			}
			g := m.Graph
			for _, n := range g.Consumers(unetTimestep) {
				for i, in := range n.Inputs {
					if in == unetTimestep {
						n.Inputs[i] = "timestep_float"
					}
				}
			}
			cast := &onnxgraph.Node{OpType: "Cast", Name: "timestep_cast", Inputs: []string{unetTimestep}, Outputs: []string{"timestep_float"},
				Attrs: []*onnxgraph.Attr{{Name: "to", Type: onnxgraph.AttrInt, I: int64(onnxgraph.Float)}}}
			g.Nodes = append([]*onnxgraph.Node{cast}, g.Nodes...)
			v := findValue(g.Inputs, unetTimestep)
			v.Type = onnxgraph.NewTensorType(onnxgraph.Int64, onnxgraph.Dim{Param: "batch_size"})
		},
	}
	enc := "a photo of a man"
	sample := func(dir string) ([]float32, *Generator) {
		g, err := Load(dir, Options{Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { g.Close() })
		reqs := []family.SampleRequest{{IDs: g.Tokenizer().Encode(enc).IDs, Seed: 3}}
		out, err := family.Sample(g, reqs, family.SampleOptions{Steps: 2, Guidance: 3, BatchSize: 1})
		if err != nil {
			t.Fatal(err)
		}
		return out[0], g
	}
	want, _ := sample(fixtureDir)
	for name, edit := range variants {
		dir := copyFixture(t)
		rewriteModel(t, filepath.Join(dir, "unet", "model.onnx"), edit)
		got, g := sample(dir)
		if len(g.unetTime.Shape) != 1 {
			t.Errorf("%s: the generator read the timestep as %v", name, g.unetTime)
		}
		if d := maxDiff(t, name, got, want); d > 1e-6 {
			t.Errorf("%s: latents differ from the scalar export's by %.3g", name, d)
		}
		if err := g.importErr(); err != nil {
			t.Errorf("%s: GoMLX import: %v", name, err)
		}
	}
}
