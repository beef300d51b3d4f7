package sdxl

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/models/text/clip"
)

// FamilyName is the name the family is registered under.
const FamilyName = "sdxl"

// Names of the UNet export's inputs and output (optimum's UNetOnnxConfig).
const (
	unetSample   = "sample"
	unetTimestep = "timestep"
	unetStates   = "encoder_hidden_states"
	unetPooled   = "text_embeds"
	unetTimeIDs  = "time_ids"
	unetOut      = "out_sample"
	timeIDsLen   = 6 // original size (h, w), crop top-left (y, x), target size (h, w)
)

// textEncoder is one of SDXL's text encoders, rewritten as a function of token embeddings.
type textEncoder struct {
	name   string // component folder: text_encoder or text_encoder_2
	path   string // its model.onnx
	graph  []byte // the rewritten graph (surgery.go)
	inputs []string
	table  []float32 // token embeddings [vocab, dim], read from the export's initializer
	vocab  int
	dim    int
	pad    int32  // the id this encoder's tokenizer pads with
	states string // the output read as per-token states: hidden_states.{layers-1}, SDXL's penultimate
	pooled string // the pooled output (text_embeds of encoder 2), "" for none
}

// Generator is an SDXL export opened for cocoflow. It implements family.Generator (its graph
// methods import the ONNX graphs into GoMLX, for training) and family.HostSampler (sampling
// runs the same graphs in ONNX Runtime). Load it with Load; Close releases its sessions.
type Generator struct {
	l   *layout
	opt Options
	tok *clip.Tokenizer
	enc [2]*textEncoder
	ae  *Autoencoder
	// unetTime is the UNet export's timestep input: float32 scalar (optimum >= 1.24),
	// int64 [batch] (older), or another dtype.
	unetTime ort.TensorInfo

	sessOnce sync.Once
	sessErr  error
	te       [2]*ort.Session
	unet     *ort.Session

	statsOnce sync.Once
	stats     [2][2][]float32

	ctx       *context.Context
	gomlxOnce sync.Once
	gomlxErr  error
	imported  [3]*engine.Imported // text_encoder, text_encoder_2, unet
}

var (
	_ family.Generator   = (*Generator)(nil)
	_ family.HostSampler = (*Generator)(nil)
)

// Load opens the SDXL export in dir: it checks the folder and its configs, loads both
// tokenizers, rewrites the text encoders' graphs so that they take token embeddings and the
// EOS index (reading the token embedding tables from them), and checks the UNet's signature and
// external data. ONNX Runtime sessions open on first use; GoMLX imports the graphs on the first
// Context call. Errors name the file and say what was expected.
func Load(dir string, opt Options) (*Generator, error) {
	opt, err := opt.withEnv()
	if err != nil {
		return nil, err
	}
	l, err := readLayout(dir)
	if err != nil {
		return nil, err
	}
	tok, pad2, err := tokenizers(l)
	if err != nil {
		return nil, err
	}
	g := &Generator{l: l, opt: opt, tok: tok, ae: newAutoencoder(l, opt)}
	for k, d := range []string{dirTextEncoder, dirTextEncoder2} {
		pad := tok.Pad()
		if k == 1 {
			pad = pad2
		}
		if g.enc[k], err = loadTextEncoder(l, d, k, pad, tok.VocabSize()); err != nil {
			return nil, err
		}
	}
	if err := g.checkUNet(); err != nil {
		return nil, err
	}
	return g, nil
}

// loadTextEncoder reads and rewrites text encoder k of the folder.
func loadTextEncoder(l *layout, d string, k int, pad int32, vocab int) (*textEncoder, error) {
	path := l.path(d, ModelFile)
	m, err := onnxgraph.Read(path)
	if err != nil {
		return nil, fmt.Errorf("sdxl: %w", err)
	}
	if err := checkExternalData(path, m); err != nil {
		return nil, fmt.Errorf("sdxl: %w", err)
	}
	cfg := l.text[k]
	e := &textEncoder{name: d, path: path, pad: pad, states: fmt.Sprintf("hidden_states.%d", cfg.Layers-1)}
	keep := []string{e.states}
	if k == 1 {
		e.pooled = "text_embeds"
		keep = append(keep, e.pooled)
	}
	table, err := embeddingsInputs(m, keep)
	if err != nil {
		return nil, fmt.Errorf("sdxl: %s: %w", path, err)
	}
	if e.table, err = readTable(path, table); err != nil {
		return nil, fmt.Errorf("sdxl: %w", err)
	}
	e.vocab, e.dim = int(table.Dims[0]), int(table.Dims[1])
	if e.vocab != vocab {
		return nil, fmt.Errorf("sdxl: %s: token embedding has %d rows, but %s has %d tokens", path, e.vocab, filepath.Join(l.root, dirTokenizer), vocab)
	}
	if e.dim != cfg.HiddenSize {
		return nil, fmt.Errorf("sdxl: %s: token embedding width %d, but %s says hidden_size %d", path, e.dim, l.path(d, ConfigFile), cfg.HiddenSize)
	}
	for _, in := range m.Graph.Inputs {
		e.inputs = append(e.inputs, in.Name)
	}
	if e.graph, err = m.Encode(); err != nil {
		return nil, fmt.Errorf("sdxl: %s: %w", path, err)
	}
	return e, nil
}

// tensorInfo describes a graph input or output as models/runtime/ort does.
func tensorInfo(v *onnxgraph.ValueInfo) ort.TensorInfo {
	t := ort.TensorInfo{Name: v.Name, DType: v.ElemType().String()}
	if dims, ok := v.Shape(); ok {
		t.Shape = make([]int64, len(dims))
		for i, d := range dims {
			t.Shape[i] = d.Value
			if d.Value <= 0 {
				t.Shape[i] = -1
			}
		}
	}
	return t
}

// checkUNet reads the UNet graph's signature (not its weights) and checks it against the text
// encoders and the VAE, and that its external data is complete.
func (g *Generator) checkUNet() error {
	t, err := checkUNet(g.l, g.enc[0].dim+g.enc[1].dim)
	g.unetTime = t
	return err
}

// checkUNet checks the UNet graph's signature against text states of width d and the layout's
// VAE and pooled projection, and its external data; it returns the timestep input.
func checkUNet(l *layout, d int) (ort.TensorInfo, error) {
	path := l.path(dirUNet, ModelFile)
	m, err := onnxgraph.Read(path)
	if err != nil {
		return ort.TensorInfo{}, fmt.Errorf("sdxl: %w", err)
	}
	if err := checkExternalData(path, m); err != nil {
		return ort.TensorInfo{}, fmt.Errorf("sdxl: %w", err)
	}
	wants := []want{
		{unetSample, "float32", 4, 1, int64(l.vae.LatentChannels)},
		{unetStates, "float32", 3, 2, int64(d)},
		{unetPooled, "float32", 2, 1, int64(l.text[1].ProjectionDim)},
		{unetTimeIDs, "float32", 2, 1, timeIDsLen},
	}
	for _, w := range wants {
		v := findValue(m.Graph.Inputs, w.name)
		if v == nil {
			return ort.TensorInfo{}, fmt.Errorf("sdxl: %s: no input %s (inputs: %s): not an SDXL UNet export", path, w.name, valueNames(m.Graph.Inputs))
		}
		if err := checkTensor(path, "input", tensorInfo(v), w); err != nil {
			return ort.TensorInfo{}, fmt.Errorf("sdxl: %w", err)
		}
	}
	tv := findValue(m.Graph.Inputs, unetTimestep)
	if tv == nil {
		return ort.TensorInfo{}, fmt.Errorf("sdxl: %s: no input %s (inputs: %s): not an SDXL UNet export", path, unetTimestep, valueNames(m.Graph.Inputs))
	}
	t := tensorInfo(tv)
	switch t.DType {
	case "float32", "int64", "int32":
	case "float16", "bfloat16":
		return t, fmt.Errorf("sdxl: %s: timestep is %s: cocoflow runs SDXL in float32; export with --dtype fp32", path, t.DType)
	default:
		return t, fmt.Errorf("sdxl: %s: timestep is %s, want float32 or int64", path, t.DType)
	}
	if len(t.Shape) > 1 {
		return t, fmt.Errorf("sdxl: %s: timestep has shape %v, want a scalar or [batch]", path, t.Shape)
	}
	out := findValue(m.Graph.Outputs, unetOut)
	if out == nil {
		return t, fmt.Errorf("sdxl: %s: no output %s (outputs: %s)", path, unetOut, valueNames(m.Graph.Outputs))
	}
	if err := checkTensor(path, "output", tensorInfo(out), want{unetOut, "float32", 4, 1, int64(l.vae.LatentChannels)}); err != nil {
		return t, fmt.Errorf("sdxl: %w", err)
	}
	return t, nil
}

// Check tells, without loading weights, whether dir is an export Load can open: the folder
// layout and configs, both tokenizers, every component's model.onnx present, and the UNet's
// signature (inputs, dtypes, widths against the text encoders' and VAE's configs) with its
// external data complete. It is the family's Spec.Check, run by `cocoflow validate` and at
// config load; the text encoders' graphs (about 1.7 GB inline in fp32) are read by Load only.
func Check(dir string) error {
	l, err := readLayout(dir)
	if err != nil {
		return err
	}
	if _, _, err := tokenizers(l); err != nil {
		return err
	}
	for _, d := range []string{dirTextEncoder, dirTextEncoder2, dirVAEEncoder, dirVAEDecoder, dirUNet} {
		if fi, err := os.Stat(l.path(d, ModelFile)); err != nil {
			return fmt.Errorf("sdxl: %s: missing %s/%s; %s", dir, d, ModelFile, exportHint)
		} else if fi.Size() == 0 {
			return fmt.Errorf("sdxl: %s is empty; %s", l.path(d, ModelFile), exportHint)
		}
	}
	_, err = checkUNet(l, l.text[0].HiddenSize+l.text[1].HiddenSize)
	return err
}

// Close releases the generator's ONNX Runtime sessions.
func (g *Generator) Close() error {
	var err error
	for _, s := range []*ort.Session{g.te[0], g.te[1], g.unet} {
		if s != nil {
			if e := s.Close(); e != nil && err == nil {
				err = e
			}
		}
	}
	if e := g.ae.Close(); e != nil && err == nil {
		err = e
	}
	return err
}

// Info describes the generator: two encoders (text_encoder, text_encoder_2) of the tables'
// widths and the tokenizer's length, CHW latents of the VAE, the scheduler's schedule.
func (g *Generator) Info() family.Info {
	encs := make([]family.TextEncoder, 2)
	for k, e := range g.enc {
		encs[k] = family.TextEncoder{Name: e.name, Dim: e.dim, MaxLength: g.tok.MaxLength()}
	}
	return family.Info{
		Name:        FamilyName,
		Encoders:    encs,
		LatentShape: slices.Clone(g.ae.latentShape()),
		ImageSize:   g.l.imageSize,
		Schedule:    g.l.schedule,
		TrainSteps:  g.l.sched.TrainSteps,
		Prediction:  g.l.predicts,
	}
}

// Tokenizer returns the CLIP tokenizer of tokenizer/ (encoder 2 shares its vocabulary).
func (g *Generator) Tokenizer() text.Tokenizer { return g.tok }

// Autoencoder returns the VAE.
func (g *Generator) Autoencoder() family.Autoencoder { return g.ae }

// VocabStats returns the per-dimension mean and standard deviation of encoder k's token
// embedding table over every token but BOS and EOS (nil for k outside 0, 1).
func (g *Generator) VocabStats(k int) (mean, std []float32) {
	if k < 0 || k > 1 {
		return nil, nil
	}
	g.statsOnce.Do(func() {
		for i, e := range g.enc {
			g.stats[i][0], g.stats[i][1] = vocabStats(e.table, e.dim, g.tok.BOS(), g.tok.EOS())
		}
	})
	return slices.Clone(g.stats[k][0]), slices.Clone(g.stats[k][1])
}

// timeIDs returns SDXL's micro-conditioning for n rows: original size (S, S), crop top-left
// (0, 0), target size (S, S), S the image size (diffusers' _get_add_time_ids with the
// defaults of StableDiffusionXLPipeline).
func (g *Generator) timeIDs(n int) []float32 {
	s := float32(g.l.imageSize)
	out := make([]float32, 0, n*timeIDsLen)
	for range n {
		out = append(out, s, s, 0, 0, s, s)
	}
	return out
}
