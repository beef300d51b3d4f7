// Package sam2 runs SAM 2's image encoder and prompt decoder as the common public ONNX exports
// (samexporter's export_sam2.py and the exports after it) to turn a box into a mask:
//
//	encoder image [1,3,1024,1024] (the image stretched to the square, ImageNet-normalised)
//	        -> high_res_feats_0 [1,32,256,256], high_res_feats_1 [1,64,128,128],
//	           image_embed [1,256,64,64]
//	decoder image_embed, high_res_feats_0, high_res_feats_1,
//	        point_coords [1,N,2] (pixels of the 1024 square), point_labels [1,N],
//	        mask_input [1,1,256,256], has_mask_input [1], and in some exports orig_im_size [2]
//	        -> masks [1,M,h,w] (logits), iou_predictions [1,M]
//
// A box is two points labelled 2 (top-left) and 3 (bottom-right), as SAM2ImagePredictor
// prompts it. Of the M masks the one with the best predicted IoU is kept; masks the decoder
// does not return at image size (the 256x256 logits over the square of samexporter's export) are
// resized bilinearly to it (SAM2Transforms.postprocess_masks), and a pixel is subject where the
// logit is above 0. The encoder's input is resized in float, as SAM2Transforms resizes the
// ToTensor output (see segment.FloatTensor).
package sam2

import (
	"fmt"
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/segment"
)

// MaskThreshold is SAM's mask_threshold: a pixel is subject where the mask logit is above it.
const MaskThreshold = 0.0

// Box prompt labels of SAM's prompt encoder.
const (
	LabelTopLeft     = 2
	LabelBottomRight = 3
)

// Input and output names of the exports.
var (
	EncoderInputs   = []string{"image"}
	EncoderOutputs  = []string{"high_res_feats_0", "high_res_feats_1", "image_embed"}
	DecoderInputs   = []string{"image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels", "mask_input", "has_mask_input"}
	DecoderOptional = "orig_im_size"
	DecoderOutputs  = []string{"masks", "iou_predictions"}
)

// Predictor is an opened SAM 2 encoder and decoder. Mask may be called from many goroutines
// at once.
type Predictor struct {
	enc, dec *ort.Session
	size     int // the encoder's square input side
	lowRes   []int64
	decIn    map[string]ort.TensorInfo
}

// Files resolves path to the encoder and decoder files: a folder holding one *encoder*.onnx
// and one *decoder*.onnx (samexporter writes sam2_hiera_tiny.encoder.onnx and
// sam2_hiera_tiny.decoder.onnx), or the two files as "encoder.onnx,decoder.onnx".
func Files(path string) (encoder, decoder string, err error) {
	if e, d, ok := strings.Cut(path, ","); ok {
		encoder, decoder = strings.TrimSpace(e), strings.TrimSpace(d)
		for _, f := range []string{encoder, decoder} {
			if _, err := os.Stat(f); err != nil {
				return "", "", fmt.Errorf("sam 2 model: %w", err)
			}
		}
		return encoder, decoder, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", "", fmt.Errorf("sam 2 model: %w", err)
	}
	if !fi.IsDir() {
		return "", "", fmt.Errorf("sam 2 model %s: want a folder with the encoder and decoder .onnx files, or \"encoder.onnx,decoder.onnx\"", path)
	}
	pick := func(part string) (string, error) {
		found, _ := filepath.Glob(filepath.Join(path, "*"+part+"*.onnx"))
		if len(found) != 1 {
			return "", fmt.Errorf("sam 2 model %s: want exactly one *%s*.onnx file in the folder, found %d", path, part, len(found))
		}
		return found[0], nil
	}
	if encoder, err = pick("encoder"); err != nil {
		return "", "", err
	}
	if decoder, err = pick("decoder"); err != nil {
		return "", "", err
	}
	return encoder, decoder, nil
}

// Open loads the encoder and decoder at path (see Files) with ONNX Runtime options opt. Models
// whose input or output names are not the exports' are an error listing the expected and the
// found names.
func Open(path string, opt ort.Options) (*Predictor, error) {
	encPath, decPath, err := Files(path)
	if err != nil {
		return nil, err
	}
	enc, err := ort.Open(encPath, opt)
	if err != nil {
		return nil, err
	}
	p := &Predictor{enc: enc, decIn: map[string]ort.TensorInfo{}}
	if err := p.bindEncoder(); err != nil {
		enc.Close()
		return nil, err
	}
	dec, err := ort.Open(decPath, opt)
	if err != nil {
		enc.Close()
		return nil, err
	}
	p.dec = dec
	if err := p.bindDecoder(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func signature(what, path string, wantIn, wantOut []string, s *ort.Session) error {
	ins, outs := segment.Names(s.Inputs()), segment.Names(s.Outputs())
	return fmt.Errorf("sam 2 %s %s: expected inputs %s and outputs %s, found inputs %s and outputs %s",
		what, path, segment.List(wantIn), segment.List(wantOut), segment.List(ins), segment.List(outs))
}

func (p *Predictor) bindEncoder() error {
	s := p.enc
	if len(s.Inputs()) != 1 || len(segment.Missing(s.Inputs(), EncoderInputs...)) > 0 || len(segment.Missing(s.Outputs(), EncoderOutputs...)) > 0 {
		return signature("encoder", s.Path(), EncoderInputs, EncoderOutputs, s)
	}
	in := s.Inputs()[0]
	p.size = 1024
	if len(in.Shape) == 4 && in.Shape[2] > 0 {
		if in.Shape[2] != in.Shape[3] {
			return fmt.Errorf("sam 2 encoder %s: input image %v is not square", s.Path(), in.Shape)
		}
		p.size = int(in.Shape[2])
	}
	return nil
}

func (p *Predictor) bindDecoder() error {
	s := p.dec
	wantIn := append(slices.Clone(DecoderInputs), DecoderOptional+" (optional)")
	ins := s.Inputs()
	if len(segment.Missing(ins, DecoderInputs...)) > 0 || len(segment.Missing(s.Outputs(), DecoderOutputs...)) > 0 {
		return signature("decoder", s.Path(), wantIn, DecoderOutputs, s)
	}
	for _, in := range ins {
		if !slices.Contains(DecoderInputs, in.Name) && in.Name != DecoderOptional {
			return signature("decoder", s.Path(), wantIn, DecoderOutputs, s)
		}
		p.decIn[in.Name] = in
	}
	p.lowRes = []int64{1, 1, int64(p.size / 4), int64(p.size / 4)}
	if sh := p.decIn["mask_input"].Shape; len(sh) == 4 && sh[2] > 0 && sh[3] > 0 {
		p.lowRes = []int64{1, 1, sh[2], sh[3]}
	}
	return nil
}

// Paths returns the encoder and decoder files.
func (p *Predictor) Paths() (encoder, decoder string) { return p.enc.Path(), p.dec.Path() }

// Close releases both sessions.
func (p *Predictor) Close() error {
	err := p.enc.Close()
	if p.dec != nil {
		if e := p.dec.Close(); err == nil {
			err = e
		}
	}
	return err
}

// Mask returns the mask of the object in box (image pixels) at img's size: the pixels whose
// logit (see Logits) is above MaskThreshold, and the IoU the decoder predicts for it.
func (p *Predictor) Mask(img image.Image, box segment.Box) (*image.Gray, float64, error) {
	logits, iou, err := p.Logits(img, box)
	if err != nil {
		return nil, 0, err
	}
	b := img.Bounds()
	m := image.NewGray(image.Rect(0, 0, b.Dx(), b.Dy()))
	for i, v := range logits {
		if v > MaskThreshold {
			m.Pix[i] = 255
		}
	}
	return m, iou, nil
}

// Logits returns the mask logits of the object in box (image pixels), row-major at img's size,
// of the decoder's mask with the best predicted IoU, and that IoU. Errors name the model file.
func (p *Predictor) Logits(img image.Image, box segment.Box) ([]float32, float64, error) {
	b := img.Bounds()
	W, H := b.Dx(), b.Dy()
	if W == 0 || H == 0 {
		return nil, 0, fmt.Errorf("sam 2: empty image")
	}
	feats, err := p.enc.Run(map[string]ort.Tensor{"image": segment.FloatTensor(img, p.size, p.size)})
	if err != nil {
		return nil, 0, err
	}
	sx, sy := float64(p.size)/float64(W), float64(p.size)/float64(H)
	feeds := map[string]ort.Tensor{
		"image_embed":      feats["image_embed"],
		"high_res_feats_0": feats["high_res_feats_0"],
		"high_res_feats_1": feats["high_res_feats_1"],
	}
	vals := map[string]struct {
		shape []int64
		v     []float64
	}{
		"point_coords":   {[]int64{1, 2, 2}, []float64{box.X0 * sx, box.Y0 * sy, box.X1 * sx, box.Y1 * sy}},
		"point_labels":   {[]int64{1, 2}, []float64{LabelTopLeft, LabelBottomRight}},
		"mask_input":     {p.lowRes, make([]float64, p.lowRes[2]*p.lowRes[3])},
		"has_mask_input": {[]int64{1}, []float64{0}},
		DecoderOptional:  {[]int64{2}, []float64{float64(H), float64(W)}},
	}
	for name, in := range p.decIn {
		v, ok := vals[name]
		if !ok {
			continue
		}
		t, err := segment.Values(in.DType, v.shape, v.v)
		if err != nil {
			return nil, 0, fmt.Errorf("sam 2 decoder %s: input %s: %w", p.dec.Path(), name, err)
		}
		feeds[name] = t
	}
	out, err := p.dec.Run(feeds)
	if err != nil {
		return nil, 0, err
	}
	masks, err := ort.Data[float32](out["masks"])
	if err != nil {
		return nil, 0, fmt.Errorf("sam 2 decoder %s: masks: %w", p.dec.Path(), err)
	}
	ious, err := ort.Data[float32](out["iou_predictions"])
	if err != nil {
		return nil, 0, fmt.Errorf("sam 2 decoder %s: iou_predictions: %w", p.dec.Path(), err)
	}
	ms := out["masks"].Shape
	if len(ms) != 4 || ms[0] != 1 || int(ms[1]) != len(ious) || len(ious) == 0 {
		return nil, 0, fmt.Errorf("sam 2 decoder %s: masks %v and iou_predictions %v do not fit", p.dec.Path(), ms, out["iou_predictions"].Shape)
	}
	best := 0
	for i, v := range ious {
		if v > ious[best] {
			best = i
		}
	}
	h, w := int(ms[2]), int(ms[3])
	logits := masks[best*h*w : (best+1)*h*w]
	if w != W || h != H {
		logits = segment.Resize(logits, w, h, W, H)
	} else {
		logits = slices.Clone(logits)
	}
	return logits, float64(ious[best]), nil
}
