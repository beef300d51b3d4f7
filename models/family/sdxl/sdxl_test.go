package sdxl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

func loadFixture(tb testing.TB) *Generator {
	tb.Helper()
	initORT(tb)
	g, err := Load(fixtureDir, Options{Threads: 1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { g.Close() })
	return g
}

func TestLoadDescribesTheExport(t *testing.T) {
	g := loadFixture(t)
	r := loadRef(t)
	info := g.Info()
	if info.Name != "sdxl" || len(info.Encoders) != 2 || info.Encoders[0].Dim != 32 || info.Encoders[1].Dim != 48 ||
		info.Encoders[0].MaxLength != 77 || !slices.Equal(info.LatentShape, []int{4, 8, 8}) || info.ImageSize != 64 ||
		info.Schedule != "scaled_linear" || info.TrainSteps != 1000 || info.Prediction != "epsilon" {
		t.Fatalf("Info() = %+v", info)
	}
	tok := g.Tokenizer()
	if tok.VocabSize() != r.Vocab || tok.BOS() != r.Bos || tok.EOS() != r.Eos || tok.Pad() != r.Eos || g.enc[1].pad != r.Pad2 {
		t.Fatalf("tokenizer: vocab %d bos %d eos %d pad %d pad2 %d; reference %d %d %d pad2 %d", tok.VocabSize(), tok.BOS(), tok.EOS(), tok.Pad(), g.enc[1].pad, r.Vocab, r.Bos, r.Eos, r.Pad2)
	}
	for prompt, want := range r.Tokens {
		if got := tok.Encode(prompt).IDs; !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v (the fixture script's BPE)", prompt, got, want)
		}
	}
	for k := range 2 {
		mean, std := g.VocabStats(k)
		if len(mean) != info.Encoders[k].Dim || len(std) != len(mean) || std[0] <= 0 {
			t.Errorf("VocabStats(%d): %d means, %d stds, std[0] %g", k, len(mean), len(std), std[0])
		}
	}
}

// The rewritten text encoders, fed the token embeddings of the ids and the EOS index, give what
// the original exports give from the ids (and torch gave).
func TestSurgeryMatchesTheExport(t *testing.T) {
	g := loadFixture(t)
	r := loadRef(t)
	if err := g.openSessions(); err != nil {
		t.Fatal(err)
	}
	for k, e := range g.enc {
		refs := []map[string]refTensor{r.Text1, r.Text2}[k]
		orig, err := ort.Open(e.path, ort.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer orig.Close()
		idsRef := refs["input_ids"]
		out, err := orig.Run(map[string]ort.Tensor{"input_ids": idsRef.tensor(t)})
		if err != nil {
			t.Fatal(err)
		}
		want := refs["penultimate"].floats(t)
		base, _ := ort.Data[float32](out[e.states])
		if d := maxDiff(t, "original vs torch", base, want); d > 1e-5*max(1, maxAbs(want)) {
			t.Errorf("%s: original export vs torch: max |diff| %.3g", e.name, d)
		}

		ids := idsRef.ints(t)
		B, L := int(idsRef.Shape[0]), int(idsRef.Shape[1])
		embeds := make([]float32, 0, B*L*e.dim)
		eos := make([]int64, B)
		for b := range B {
			for i, id := range ids[b*L : (b+1)*L] {
				embeds = append(embeds, e.table[int(id)*e.dim:(int(id)+1)*e.dim]...)
				if id > ids[b*L+int(eos[b])] {
					eos[b] = int64(i)
				}
			}
		}
		in := map[string]ort.Tensor{inputEmbeds: ort.NewTensor([]int64{int64(B), int64(L), int64(e.dim)}, embeds)}
		if slices.Contains(e.inputs, inputEOS) {
			in[inputEOS] = ort.NewTensor([]int64{int64(B)}, eos)
		}
		got, err := g.te[k].Run(in)
		if err != nil {
			t.Fatal(err)
		}
		cut, _ := ort.Data[float32](got[e.states])
		d := maxDiff(t, "rewritten vs original", cut, base)
		t.Logf("%s: rewritten graph vs the export: states max |diff| %.3g (scale %.3g)", e.name, d, maxAbs(base))
		if d > 1e-6*max(1, maxAbs(base)) {
			t.Errorf("%s: rewritten graph differs from the export by %.3g", e.name, d)
		}
		if e.pooled != "" {
			p, _ := ort.Data[float32](got[e.pooled])
			po, _ := ort.Data[float32](out[e.pooled])
			if d := maxDiff(t, "pooled", p, po); d > 1e-6*max(1, maxAbs(po)) {
				t.Errorf("%s: pooled %s differs by %.3g", e.name, e.pooled, d)
			}
			if d := maxDiff(t, "pooled vs torch", p, refs["text_embeds"].floats(t)); d > 1e-5 {
				t.Errorf("%s: pooled vs torch: %.3g", e.name, d)
			}
		}
		if len(g.te[k].Outputs()) != len(slices.DeleteFunc([]string{e.states, e.pooled}, func(s string) bool { return s == "" })) {
			t.Errorf("%s: rewritten outputs %v", e.name, g.te[k].Outputs())
		}
	}
}

func TestUNetAndVAEMatchTorch(t *testing.T) {
	g := loadFixture(t)
	r := loadRef(t)
	if err := g.openSessions(); err != nil {
		t.Fatal(err)
	}
	var ts float32
	if err := json.Unmarshal(r.UNet["timestep"], &ts); err != nil {
		t.Fatal(err)
	}
	in := map[string]ort.Tensor{unetTimestep: g.timestepTensor(int(ts), 1)}
	for _, name := range []string{unetSample, unetStates, unetPooled, unetTimeIDs} {
		in[name] = r.unetTensor(t, name).tensor(t)
	}
	out, err := g.unet.Run(in)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ort.Data[float32](out[unetOut])
	want := r.unetTensor(t, unetOut).floats(t)
	d := maxDiff(t, "unet", got, want)
	t.Logf("unet: ORT vs torch max |diff| %.3g (scale %.3g)", d, maxAbs(want))
	if d > 1e-5*max(1, maxAbs(want)) {
		t.Errorf("unet: ORT vs torch: %.3g", d)
	}

	if err := g.ae.open(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s         *ort.Session
		in, out   string
		inT, out_ refTensor
	}{
		{g.ae.enc, vaeEncIn, vaeEncParams, r.VAEEnc["sample"], r.VAEEnc["latent_parameters"]},
		{g.ae.dec, vaeDecIn, vaeDecOut, r.VAEDec["latent_sample"], r.VAEDec["sample"]},
	} {
		res, err := c.s.Run(map[string]ort.Tensor{c.in: c.inT.tensor(t)})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := ort.Data[float32](res[c.out])
		want := c.out_.floats(t)
		if d := maxDiff(t, c.out, got, want); d > 1e-5*max(1, maxAbs(want)) {
			t.Errorf("%s: ORT vs torch: %.3g", c.s.Path(), d)
		}
	}
}

// The digest that stage fingerprints include is stable and changes with any file of the export.
func TestDigest(t *testing.T) {
	dir := copyFixture(t)
	a, err := Digest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := Digest(dir); a != b || len(a) != 64 {
		t.Fatalf("digest %q then %q", a, b)
	}
	// The same export through a symlink (a COCOFLOW_MODELS farm) has the same digest.
	link := filepath.Join(t.TempDir(), "sdxl")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if b, err := Digest(link); err != nil || b != a {
		t.Fatalf("digest through a symlink: %q, %v; want %q", b, err, a)
	}
	f, err := os.OpenFile(filepath.Join(dir, "unet", "model.onnx_data"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{1, 2, 3, 4}, 600000); err != nil { // inside the weights
		t.Fatal(err)
	}
	f.Close()
	if c, _ := Digest(dir); c == a {
		t.Error("changing the UNet's weights did not change the digest")
	}
	if _, err := Digest(t.TempDir()); err == nil {
		t.Error("Digest of an empty folder succeeded")
	}
}
