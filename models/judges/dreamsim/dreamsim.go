// Package dreamsim is the paper's subject-similarity judge for the Scenes table (§4.2): the
// DreamSim ensemble (DINO ViT-B/16, CLIP ViT-B/16 and OpenCLIP ViT-B/16, LoRA-tuned) exported
// to ONNX, run through ONNX Runtime. It registers the image-similarity judge kind
// "dreamsim-onnx".
//
// dreamsim has no exporter of its own; users export PerceptualModel.embed with
// torch.onnx.export. Such an export is recognised by its signature: one float32 image input
// [batch, 3, H, W] (any name) and one float32 embedding output [batch, dim] (or, among several,
// the one named embedding or embed). Preprocessing is dreamsim's own preprocess function
// exactly: PIL's convert("RGB"), torchvision's Resize((224, 224), BICUBIC) — both sides, the
// aspect ratio is not kept — and ToTensor, values in [0, 1]. The model normalises for each
// backbone itself (ImageNet mean/std for DINO, CLIP's for the two CLIP branches), so no mean or
// std is applied here.
//
// DreamSim's distance is 1 − cosine of embeddings that normalize_embedding made (divided by
// their norm, minus their mean over dimensions). That step is applied here to every output:
// it is idempotent up to scale, so an export that includes it (dreamsim(normalize_embeds=True),
// the default) gives the same embedding as one of the raw features. The embeddings returned
// are unit-norm, so their cosine is DreamSim's similarity, the direction the tables report.
package dreamsim

import (
	"fmt"
	"image"
	"os"
	"path/filepath"

	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/imageprep"
	"github.com/cocoflow/cocoflow/models/judges/onnxjudge"
	"github.com/cocoflow/cocoflow/models/metrics"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// Kind is the judge kind this package registers in judges.ImageSims.
const Kind = "dreamsim-onnx"

// ModelFile is the export's file name when the path is a folder.
const ModelFile = "model.onnx"

// DefaultImageSize is dreamsim_args["img_size"], used when the export's size is dynamic.
const DefaultImageSize = 224

func init() {
	judges.ImageSims.Register(Kind, judges.Opener[judges.ImageSim]{
		Open: func(s judges.Spec) (judges.ImageSim, error) {
			o, err := onnxjudge.ParseOptions(Kind, s.Options)
			if err != nil {
				return nil, err
			}
			return Open(s.Path, o)
		},
		Digest: func(s judges.Spec) (string, error) {
			if _, err := onnxjudge.ParseOptions(Kind, s.Options); err != nil {
				return "", err
			}
			return Digest(s.Path)
		},
		Doc: "DreamSim (ensemble) as ONNX: path is the export of PerceptualModel.embed, [N,3,224,224] in [0,1] -> " +
			"[N,dim], or a folder holding it as model.onnx; similarity = cosine, distance 1 − cosine; " +
			"options: image_size, batch, threads, provider (cpu, cuda[:N])",
	})
}

// Model is an opened DreamSim judge. It is safe for concurrent use.
type Model struct {
	sess        *ort.Session
	input       string
	output      string
	size, batch int
	timer       onnxjudge.Timer
}

var _ judges.ImageSim = (*Model)(nil)

// modelPath resolves a spec path: the file itself, or ModelFile in a folder.
func modelPath(path string) (string, error) {
	if path == "" {
		return "", fmt.Errorf("%s judge: no model given (path): want a DreamSim ONNX export", Kind)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%s judge: %w", Kind, err)
	}
	if fi.IsDir() {
		p := filepath.Join(path, ModelFile)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s judge: %s: no %s in the folder", Kind, path, ModelFile)
		}
		return p, nil
	}
	return path, nil
}

// Digest returns the digest of the model file (and its external data, if any) Open would load.
func Digest(path string) (string, error) {
	p, err := modelPath(path)
	if err != nil {
		return "", err
	}
	files := []string{p}
	for _, ext := range []string{"_data", ".data"} {
		if _, err := os.Stat(p + ext); err == nil {
			files = append(files, p+ext)
		}
	}
	return ort.FileDigest(files...)
}

// Open loads the DreamSim export at path (a file, or a folder holding model.onnx). Errors name
// the file: missing, not loadable, or without DreamSim's signature (listing what it has).
func Open(path string, o onnxjudge.Options) (*Model, error) {
	p, err := modelPath(path)
	if err != nil {
		return nil, err
	}
	s, err := ort.Open(p, o.ORT)
	if err != nil {
		return nil, fmt.Errorf("%s judge: %w", Kind, err)
	}
	m := &Model{sess: s, batch: o.BatchOr()}
	if err := m.check(o.ImageSize); err != nil {
		s.Close()
		return nil, err
	}
	return m, nil
}

const signature = "one image input float32 [batch, 3, 224, 224] in [0, 1] -> one embedding output float32 [batch, dim]"

// check verifies the signature and settles the input, output and image size.
func (m *Model) check(imageSize int) error {
	bad := func(why string) error {
		return fmt.Errorf("%s judge: %s is not a DreamSim export: %s; want %s; the model has inputs %s, outputs %s",
			Kind, m.sess.Path(), why, signature, onnxjudge.Describe(m.sess.Inputs()), onnxjudge.Describe(m.sess.Outputs()))
	}
	ins := m.sess.Inputs()
	if len(ins) != 1 {
		return bad(fmt.Sprintf("%d inputs", len(ins)))
	}
	in := ins[0]
	if in.DType != "float32" || len(in.Shape) != 4 || (in.Shape[1] != 3 && in.Shape[1] >= 0) {
		return bad(fmt.Sprintf("input %s is not float32 [batch, 3, H, W]", in.Name))
	}
	m.input = in.Name
	h, w := in.Shape[2], in.Shape[3]
	if h >= 0 && w >= 0 && h != w {
		return bad(fmt.Sprintf("input %s is %dx%d, want square", in.Name, h, w))
	}
	var err error
	if m.size, err = onnxjudge.SquareSize(Kind, m.sess.Path(), h, w, imageSize, DefaultImageSize); err != nil {
		return err
	}
	outs := m.sess.Outputs()
	var emb []ort.TensorInfo
	for _, out := range outs {
		if len(outs) == 1 || out.Name == "embedding" || out.Name == "embed" {
			emb = append(emb, out)
		}
	}
	if len(emb) != 1 {
		return bad("no single embedding output (with several outputs, name it embedding)")
	}
	if emb[0].DType != "float32" || len(emb[0].Shape) != 2 {
		return bad(fmt.Sprintf("output %s is not float32 [batch, dim]", emb[0].Name))
	}
	m.output = emb[0].Name
	return nil
}

// ImageSize is the side of the square images the model takes.
func (m *Model) ImageSize() int { return m.size }

// EmbedImages returns the unit-norm DreamSim embedding of each image.
func (m *Model) EmbedImages(imgs []image.Image) ([][]float32, error) {
	out := make([][]float32, 0, len(imgs))
	for start := 0; start < len(imgs); start += m.batch {
		chunk := imgs[start:min(start+m.batch, len(imgs))]
		prepped, err := imageprep.Batch(chunk, func(p imageprep.RGB) (imageprep.RGB, error) { return imageprep.Square(p, m.size) })
		if err != nil {
			return nil, fmt.Errorf("%s judge: images from %d: %w", Kind, start, err)
		}
		px, err := imageprep.Tensor(prepped, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s judge: %w", Kind, err)
		}
		s := int64(m.size)
		res, err := m.timer.Run(m.sess, map[string]ort.Tensor{m.input: ort.NewTensor([]int64{int64(len(chunk)), 3, s, s}, px)})
		if err != nil {
			return nil, fmt.Errorf("%s judge: %w", Kind, err)
		}
		rows, err := onnxjudge.UnitRows(res, m.sess.Path(), m.output, len(chunk))
		if err != nil {
			return nil, fmt.Errorf("%s judge: %w", Kind, err)
		}
		for _, r := range rows {
			out = append(out, Center(r))
		}
	}
	return out, nil
}

// Center is dreamsim's normalize_embedding followed by scaling to unit norm: v divided by its
// norm, minus its mean over dimensions, then unit norm again. It works in place and returns v.
func Center(v []float32) []float32 {
	metrics.Unit(v)
	var mean float64
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	for i, x := range v {
		v[i] = float32(float64(x) - mean)
	}
	return metrics.Unit(v)
}

// Distance is DreamSim's perceptual distance between two embeddings from EmbedImages,
// 1 − cosine.
func Distance(a, b []float32) float64 { return 1 - metrics.Cosine(a, b) }

// Close releases the session.
func (m *Model) Close() error { return m.sess.Close() }
