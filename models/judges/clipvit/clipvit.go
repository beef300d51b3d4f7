// Package clipvit is the paper's CLIP-T judge: CLIP ViT-L/14 exported to ONNX as users get it
// from Hugging Face, run through ONNX Runtime, with OpenAI's preprocessing and the CLIP BPE
// tokenizer. It registers the image-text judge kind "clip-onnx".
//
// Two export layouts are recognised in the model folder, by their tensor names:
//
//   - separate towers, text_model.onnx (input_ids [+ attention_mask] -> text_embeds) and
//     vision_model.onnx (pixel_values -> image_embeds), in the folder or its onnx/ subfolder:
//     the layout of transformers.js / Xenova exports and of optimum's CLIPTextModelWithProjection
//     and CLIPVisionModelWithProjection configs;
//   - one joint model.onnx (input_ids, pixel_values, attention_mask -> logits_per_image,
//     logits_per_text, text_embeds, image_embeds), what `optimum-cli export onnx` writes for a
//     CLIPModel. Each call runs both towers, so texts are embedded beside one blank image and
//     images beside one empty text; the towers layout avoids that cost.
//
// The tokenizer is read from the folder (vocab.json + merges.txt, as both layouts ship, or
// OpenAI's bpe_simple_vocab_16e6.txt.gz), or from the "tokenizer" option. Texts become 77 ids,
// BOS … EOS padded with the tokenizer's pad id (a longer text is cut keeping EOS last), and an
// attention mask of ones up to EOS when the model takes one. Hugging Face's CLIP text model
// pools the hidden state at the EOS itself (argmax of input_ids: EOS has CLIP's largest id), so
// the padding id does not change the embedding: the text tower's attention is causal.
//
// Images get OpenAI's preprocessing exactly (imageprep.CLIP: PIL bicubic resize of the short
// side, centre crop, CLIP mean/std), at the vision input's fixed size or 224. Embeddings are the
// projected ones (text_embeds, image_embeds), L2-normalised here whether or not the export
// normalised them; CLIP-T is their raw cosine, with no ×2.5 or ×100.
package clipvit

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"

	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/imageprep"
	"github.com/cocoflow/cocoflow/models/judges/onnxjudge"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/models/text/clip"
)

// Kind is the judge kind this package registers in judges.ImageTexts.
const Kind = "clip-onnx"

// File names of the two layouts.
const (
	TextFile   = "text_model.onnx"
	VisionFile = "vision_model.onnx"
	JointFile  = "model.onnx"
)

// Defaults.
const (
	DefaultImageSize = 224 // CLIP ViT-L/14's input, used when the export's height and width are dynamic
)

func init() {
	judges.ImageTexts.Register(Kind, judges.Opener[judges.ImageText]{
		Open: func(s judges.Spec) (judges.ImageText, error) {
			o, err := parseOptions(s)
			if err != nil {
				return nil, err
			}
			return Open(s.Path, o)
		},
		Digest: func(s judges.Spec) (string, error) {
			o, err := parseOptions(s)
			if err != nil {
				return "", err
			}
			return Digest(s.Path, o)
		},
		Doc: "CLIP (ViT-L/14) as ONNX: path is a Hugging Face export folder, either text_model.onnx + " +
			"vision_model.onnx (also under onnx/) or optimum's joint model.onnx, with vocab.json and merges.txt; " +
			"options: tokenizer (a vocabulary path), image_size, batch, threads, provider (cpu, cuda[:N])",
	})
}

// Options configure Open: the ONNX judges' common options, and Tokenizer, a CLIP vocabulary
// path as clip.Load takes it ("" reads the model folder).
type Options struct {
	onnxjudge.Options
	Tokenizer string
}

// parseOptions reads a spec's options: tokenizer and the common ones.
func parseOptions(s judges.Spec) (Options, error) {
	o, err := onnxjudge.ParseOptions(Kind, s.Options, "tokenizer")
	return Options{Options: o, Tokenizer: o.Extra["tokenizer"]}, err
}

// Model is an opened CLIP judge. It is safe for concurrent use.
type Model struct {
	tok          *clip.Tokenizer
	text, vision *ort.Session // the same session for a joint export
	joint        bool
	ids          idsKind
	textMask     bool // the text session takes attention_mask
	size, batch  int

	timer onnxjudge.Timer // time spent inside ONNX Runtime, for the benchmark's share
}

var _ judges.ImageText = (*Model)(nil)

// idsKind is the dtype of input_ids (int64 for Hugging Face exports, int32 for some others).
type idsKind string

// layout is what Open found in a model folder.
type layout struct {
	text, vision, joint string // model files; joint set alone, or text and vision
	tokenizer           string
}

// find locates the model files of dir (see the package comment).
func find(dir string, o Options) (layout, error) {
	if dir == "" {
		return layout{}, fmt.Errorf("%s judge: no model folder given (path): want a CLIP ONNX export folder", Kind)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return layout{}, fmt.Errorf("%s judge: %w", Kind, err)
	}
	var l layout
	if !fi.IsDir() {
		l.joint = dir
		dir = filepath.Dir(dir)
	} else {
		for _, d := range []string{dir, filepath.Join(dir, "onnx")} {
			t, v, j := filepath.Join(d, TextFile), filepath.Join(d, VisionFile), filepath.Join(d, JointFile)
			switch {
			case isFile(t) && isFile(v):
				l.text, l.vision = t, v
			case isFile(j):
				l.joint = j
			default:
				continue
			}
			break
		}
		if l.text == "" && l.joint == "" {
			return layout{}, fmt.Errorf("%s judge: %s: no CLIP export: want %s and %s, or %s, in the folder or its onnx/ subfolder",
				Kind, dir, TextFile, VisionFile, JointFile)
		}
	}
	l.tokenizer = o.Tokenizer
	if l.tokenizer == "" {
		l.tokenizer = dir
	}
	return l, nil
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// files lists what a layout loads: the models, any external-data file beside them, and the
// tokenizer's files.
func (l layout) files() []string {
	var out []string
	for _, m := range []string{l.text, l.vision, l.joint} {
		if m == "" {
			continue
		}
		out = append(out, m)
		for _, ext := range []string{"_data", ".data"} {
			if isFile(m + ext) {
				out = append(out, m+ext)
			}
		}
	}
	if isFile(l.tokenizer) {
		return append(out, l.tokenizer)
	}
	for _, f := range []string{clip.VocabFile, clip.MergesFile, clip.SpecialsFile, clip.OpenAIVocabFile} {
		if p := filepath.Join(l.tokenizer, f); isFile(p) {
			out = append(out, p)
		}
	}
	return out
}

// Digest returns the digest of the model and tokenizer files Open(dir, o) would load.
func Digest(dir string, o Options) (string, error) {
	l, err := find(dir, o)
	if err != nil {
		return "", err
	}
	return ort.FileDigest(l.files()...)
}

// Open loads the CLIP export in dir (a folder, or a joint model.onnx file) and its tokenizer.
// Errors name the file: a missing export, an unreadable tokenizer, or a model whose inputs and
// outputs are not those of a CLIP export (listing what it has).
func Open(dir string, o Options) (*Model, error) {
	l, err := find(dir, o)
	if err != nil {
		return nil, err
	}
	tok, err := clip.Load(l.tokenizer)
	if err != nil {
		return nil, fmt.Errorf("%s judge: tokenizer: %w (set the tokenizer option to a CLIP vocabulary)", Kind, err)
	}
	m := &Model{tok: tok, batch: o.BatchOr(), joint: l.joint != ""}
	if m.joint {
		if m.text, err = ort.Open(l.joint, o.ORT); err != nil {
			return nil, fmt.Errorf("%s judge: %w", Kind, err)
		}
		m.vision = m.text
	} else {
		if m.text, err = ort.Open(l.text, o.ORT); err != nil {
			return nil, fmt.Errorf("%s judge: %w", Kind, err)
		}
		if m.vision, err = ort.Open(l.vision, o.ORT); err != nil {
			m.text.Close()
			return nil, fmt.Errorf("%s judge: %w", Kind, err)
		}
	}
	if err := m.check(o.ImageSize); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// signature is the CLIP export's tensors, for checks and error messages.
const (
	textSig   = "input_ids int64|int32 [batch, sequence] (and optionally attention_mask) -> text_embeds float32 [batch, dim]"
	visionSig = "pixel_values float32 [batch, 3, height, width] -> image_embeds float32 [batch, dim]"
	jointSig  = "input_ids, pixel_values, attention_mask -> text_embeds, image_embeds (optimum's CLIPModel export)"
)

// check verifies the sessions' signatures and settles the ids dtype, mask, size and width.
func (m *Model) check(imageSize int) error {
	ins := infos(m.text.Inputs())
	allowed := []string{"input_ids", "attention_mask"}
	want := textSig
	if m.joint {
		allowed = append(allowed, "pixel_values")
		want = jointSig
	}
	bad := func(s *ort.Session, why, want string) error {
		return fmt.Errorf("%s judge: %s is not a CLIP export: %s; want %s; the model has inputs %s, outputs %s",
			Kind, s.Path(), why, want, onnxjudge.Describe(s.Inputs()), onnxjudge.Describe(s.Outputs()))
	}
	for _, in := range m.text.Inputs() {
		if !slices.Contains(allowed, in.Name) {
			return bad(m.text, fmt.Sprintf("unexpected input %q", in.Name), want)
		}
	}
	ids, ok := ins["input_ids"]
	if !ok || (ids.DType != "int64" && ids.DType != "int32") || len(ids.Shape) != 2 {
		return bad(m.text, "no input_ids int64 or int32 of rank 2", want)
	}
	if n := ids.Shape[1]; n >= 0 && n != clip.MaxLength {
		return bad(m.text, fmt.Sprintf("input_ids has a fixed length %d, CLIP's is %d", n, clip.MaxLength), want)
	}
	m.ids = idsKind(ids.DType)
	if mask, ok := ins["attention_mask"]; ok {
		if mask.DType != "int64" && mask.DType != "int32" || len(mask.Shape) != 2 {
			return bad(m.text, "attention_mask is not int64 or int32 of rank 2", want)
		}
		m.textMask = true
	} else if m.joint {
		return bad(m.text, "no attention_mask", want)
	}
	tOut, ok := infos(m.text.Outputs())["text_embeds"]
	if !ok || tOut.DType != "float32" || len(tOut.Shape) != 2 {
		return bad(m.text, "no output text_embeds float32 of rank 2", want)
	}

	vIns := infos(m.vision.Inputs())
	if !m.joint {
		want = visionSig
		if len(vIns) != 1 {
			return bad(m.vision, "want the single input pixel_values", want)
		}
	}
	px, ok := vIns["pixel_values"]
	if !ok || px.DType != "float32" || len(px.Shape) != 4 || (px.Shape[1] != 3 && px.Shape[1] >= 0) {
		return bad(m.vision, "no input pixel_values float32 [batch, 3, height, width]", want)
	}
	h, w := px.Shape[2], px.Shape[3]
	if h >= 0 && w >= 0 && h != w {
		return bad(m.vision, fmt.Sprintf("pixel_values is %dx%d, want a square input", h, w), want)
	}
	var err error
	if m.size, err = onnxjudge.SquareSize(Kind, m.vision.Path(), h, w, imageSize, DefaultImageSize); err != nil {
		return err
	}
	vOut, ok := infos(m.vision.Outputs())["image_embeds"]
	if !ok || vOut.DType != "float32" || len(vOut.Shape) != 2 {
		return bad(m.vision, "no output image_embeds float32 of rank 2", want)
	}
	td, vd := tOut.Shape[1], vOut.Shape[1]
	if td >= 0 && vd >= 0 && td != vd {
		return fmt.Errorf("%s judge: %s gives text_embeds of width %d but %s image_embeds of width %d: not one CLIP",
			Kind, m.text.Path(), td, m.vision.Path(), vd)
	}
	return nil
}

func infos(ts []ort.TensorInfo) map[string]ort.TensorInfo {
	out := make(map[string]ort.TensorInfo, len(ts))
	for _, t := range ts {
		out[t.Name] = t
	}
	return out
}

// ImageSize is the side of the square images the vision tower takes.
func (m *Model) ImageSize() int { return m.size }

// Tokenizer is the model's tokenizer.
func (m *Model) Tokenizer() *clip.Tokenizer { return m.tok }

// EmbedImages returns the L2-normalised image embedding of each image.
func (m *Model) EmbedImages(imgs []image.Image) ([][]float32, error) {
	out := make([][]float32, 0, len(imgs))
	for start := 0; start < len(imgs); start += m.batch {
		chunk := imgs[start:min(start+m.batch, len(imgs))]
		px, err := m.pixels(chunk, start)
		if err != nil {
			return nil, err
		}
		emb, err := m.embedPixels(px, len(chunk))
		if err != nil {
			return nil, err
		}
		out = append(out, emb...)
	}
	return out, nil
}

// pixels preprocesses imgs into pixel_values data [len(imgs), 3, size, size]; errors number
// the images from first.
func (m *Model) pixels(imgs []image.Image, first int) ([]float32, error) {
	prepped, err := imageprep.Batch(imgs, func(p imageprep.RGB) (imageprep.RGB, error) { return imageprep.CLIP(p, m.size) })
	if err != nil {
		return nil, fmt.Errorf("%s judge: images from %d: %w", Kind, first, err)
	}
	return imageprep.Tensor(prepped, &imageprep.CLIPMean, &imageprep.CLIPStd)
}

// embedPixels runs the vision tower on n preprocessed images [n, 3, size, size].
func (m *Model) embedPixels(px []float32, n int) ([][]float32, error) {
	s := int64(m.size)
	in := map[string]ort.Tensor{"pixel_values": ort.NewTensor([]int64{int64(n), 3, s, s}, px)}
	if m.joint {
		ids, mask := m.idTensors([][]int32{{m.tok.BOS(), m.tok.EOS()}})
		in["input_ids"], in["attention_mask"] = ids, mask
	}
	return m.run(m.vision, in, "image_embeds", n)
}

// idTensors makes the input_ids and attention_mask tensors of unpadded id sequences.
func (m *Model) idTensors(seqs [][]int32) (ids, mask ort.Tensor) {
	n := len(seqs)
	shape := []int64{int64(n), clip.MaxLength}
	flat := make([]int32, 0, n*clip.MaxLength)
	ones := make([]int32, 0, n*clip.MaxLength)
	for _, s := range seqs {
		fitted, _, _ := text.Fit(s, clip.MaxLength, m.tok.EOS(), m.tok.Pad())
		flat = append(flat, fitted...)
		k := min(len(s), clip.MaxLength)
		for j := range clip.MaxLength {
			ones = append(ones, int32(min(1, max(0, k-j))))
		}
	}
	if m.ids == "int32" {
		return ort.NewTensor(shape, flat), ort.NewTensor(shape, ones)
	}
	return ort.NewTensor(shape, widen(flat)), ort.NewTensor(shape, widen(ones))
}

func widen(v []int32) []int64 {
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out
}

// EmbedTexts returns the L2-normalised text embedding of each text.
func (m *Model) EmbedTexts(texts []string) ([][]float32, error) {
	seqs := make([][]int32, len(texts))
	for i, t := range texts {
		seqs[i] = m.tok.Encode(t).IDs
	}
	return m.EmbedIDs(seqs)
}

// EmbedIDs embeds unpadded token id sequences (BOS … EOS, as the tokenizer's Encode gives
// them; longer than 77 is cut keeping EOS).
func (m *Model) EmbedIDs(seqs [][]int32) ([][]float32, error) {
	out := make([][]float32, 0, len(seqs))
	for start := 0; start < len(seqs); start += m.batch {
		chunk := seqs[start:min(start+m.batch, len(seqs))]
		ids, mask := m.idTensors(chunk)
		in := map[string]ort.Tensor{"input_ids": ids}
		if m.textMask {
			in["attention_mask"] = mask
		}
		if m.joint {
			s := int64(m.size)
			in["pixel_values"] = ort.NewTensor([]int64{1, 3, s, s}, make([]float32, 3*s*s))
		}
		emb, err := m.run(m.text, in, "text_embeds", len(chunk))
		if err != nil {
			return nil, err
		}
		out = append(out, emb...)
	}
	return out, nil
}

// run feeds in to s and returns output name as n L2-normalised rows.
func (m *Model) run(s *ort.Session, in map[string]ort.Tensor, name string, n int) ([][]float32, error) {
	res, err := m.timer.Run(s, in)
	if err != nil {
		return nil, fmt.Errorf("%s judge: %w", Kind, err)
	}
	rows, err := onnxjudge.UnitRows(res, s.Path(), name, n)
	if err != nil {
		return nil, fmt.Errorf("%s judge: %w", Kind, err)
	}
	return rows, nil
}

// Close releases the sessions.
func (m *Model) Close() error {
	err := m.text.Close()
	if !m.joint {
		if e := m.vision.Close(); err == nil {
			err = e
		}
	}
	return err
}
