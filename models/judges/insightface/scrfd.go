package insightface

import (
	"fmt"
	"strings"

	"github.com/cocoflow/cocoflow/models/judges/facedet"
	"github.com/cocoflow/cocoflow/models/judges/onnxjudge"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// SCRFD's settings in insightface (model_zoo/scrfd.py, buffalo_l's det_10g.onnx).
const (
	// DetSize is the detector input side insightface's FaceAnalysis prepares a dynamic-size
	// export with (det_size=(640, 640)).
	DetSize = 640
	// DetThreshold is the score an anchor needs (scores >= threshold).
	DetThreshold = 0.5
	// NMSThreshold is the overlap above which a lower-scoring box is dropped.
	NMSThreshold = 0.4
	// detMean and detScale are blobFromImage's (x − 127.5)·(1/128).
	detMean, detScale = 127.5, 1.0 / 128
	numAnchors        = 2
)

// strides are the three feature levels of the nine-output export, in output order.
var strides = [3]int{8, 16, 32}

// SCRFD is insightface's SCRFD face detector with keypoints (det_10g.onnx and the other
// nine-output exports: scores, boxes, keypoints for strides 8, 16, 32).
type SCRFD struct {
	sess    *ort.Session
	input   string
	outputs []string // scores×3, boxes×3, keypoints×3, in the model's order
	// w, h are the detector input size: the export's own when it is fixed, else DetSize.
	w, h      int
	Threshold float32
	NMS       float32
	runs      onnxjudge.Timer
}

// OpenSCRFD loads an SCRFD export and checks its signature: one float32 input [1,3,H,W]
// (H and W fixed or dynamic) and nine float32 outputs of rank 2 ([anchors, 1|4|10], or rank 3
// with a leading 1). Errors name the file and what differs.
func OpenSCRFD(path string, opt ort.Options) (*SCRFD, error) {
	s, err := ort.Open(path, opt)
	if err != nil {
		return nil, err
	}
	d, err := newSCRFD(s)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("scrfd %s: %w", path, err)
	}
	return d, nil
}

func newSCRFD(s *ort.Session) (*SCRFD, error) {
	ins, outs := s.Inputs(), s.Outputs()
	if len(ins) != 1 {
		return nil, fmt.Errorf("want one input [1,3,H,W], the model has %d (%s)", len(ins), infoList(ins))
	}
	in := ins[0]
	if in.DType != "float32" || len(in.Shape) != 4 || in.Shape[1] != 3 || (in.Shape[0] != 1 && in.Shape[0] != -1) {
		return nil, fmt.Errorf("input %s: want float32 [1,3,H,W], got %s%v", in.Name, in.DType, in.Shape)
	}
	if len(outs) != 9 {
		return nil, fmt.Errorf("want the nine outputs of a keypoint SCRFD export (scores, boxes, keypoints for strides 8, 16, 32), the model has %d (%s)", len(outs), infoList(outs))
	}
	d := &SCRFD{sess: s, input: in.Name, w: DetSize, h: DetSize, Threshold: DetThreshold, NMS: NMSThreshold}
	if in.Shape[2] > 0 && in.Shape[3] > 0 {
		d.h, d.w = int(in.Shape[2]), int(in.Shape[3])
		if d.h%32 != 0 || d.w%32 != 0 {
			return nil, fmt.Errorf("input %s%v: height and width must be multiples of the largest stride 32", in.Name, in.Shape)
		}
	}
	for i, o := range outs {
		want := int64([3]int{1, 4, 10}[i/3])
		r := len(o.Shape)
		if o.DType != "float32" || (r != 2 && r != 3) || (o.Shape[r-1] != want && o.Shape[r-1] != -1) || (r == 3 && o.Shape[0] > 1) {
			return nil, fmt.Errorf("output %d %s: want float32 [anchors,%d] (%s of stride %d), got %s%v",
				i, o.Name, want, [3]string{"scores", "boxes", "keypoints"}[i/3], strides[i%3], o.DType, o.Shape)
		}
		d.outputs = append(d.outputs, o.Name)
	}
	return d, nil
}

func infoList(infos []ort.TensorInfo) string {
	parts := make([]string, len(infos))
	for i, t := range infos {
		parts[i] = fmt.Sprintf("%s %s%v", t.Name, t.DType, t.Shape)
	}
	return strings.Join(parts, ", ")
}

// SetInputSize sets the input images are fitted into for a dynamic-size export (insightface's
// det_size); it returns an error for a fixed-size export or a side that is not a positive
// multiple of 32.
func (d *SCRFD) SetInputSize(w, h int) error {
	if in := d.sess.Inputs()[0]; in.Shape[2] > 0 || in.Shape[3] > 0 {
		return fmt.Errorf("scrfd %s: the export's input is fixed at %v; a detector size cannot be set", d.sess.Path(), in.Shape)
	}
	if w <= 0 || h <= 0 || w%32 != 0 || h%32 != 0 {
		return fmt.Errorf("scrfd %s: detector size %dx%d: want positive multiples of 32", d.sess.Path(), w, h)
	}
	d.w, d.h = w, h
	return nil
}

// InputSize is the detector input (width, height) images are fitted into.
func (d *SCRFD) InputSize() (w, h int) { return d.w, d.h }

// Detect runs insightface's SCRFD.detect(img, threshold, max_num=0): the image is resized
// keeping its aspect to fit the input (rounded to 8-bit values, as cv2 resizes insightface's
// uint8 image), placed at the top-left of a black canvas, fed as
// (x − 127.5)/128 RGB planes (cv2.dnn.blobFromImage with swapRB on cv2's BGR image); anchors
// scoring at least Threshold are decoded, mapped back to image pixels and NMS'd at NMS.
func (d *SCRFD) Detect(img *facedet.RGB) ([]facedet.Face, error) {
	if img.W == 0 || img.H == 0 {
		return nil, nil
	}
	nw, nh, scale := fit(img.W, img.H, d.w, d.h)
	canvas := facedet.NewRGB(d.w, d.h)
	img.ResizeInto(canvas, nw, nh)
	canvas.Quantize() // cv2.resize of a uint8 image
	blob := make([]float32, 3*d.w*d.h)
	canvas.Planar(blob, detMean, detScale)
	out, err := d.runs.Run(d.sess, map[string]ort.Tensor{d.input: ort.NewTensor([]int64{1, 3, int64(d.h), int64(d.w)}, blob)})
	if err != nil {
		return nil, err
	}
	var levels [9][]float32
	for i, name := range d.outputs {
		if levels[i], err = ort.Data[float32](out[name]); err != nil {
			return nil, fmt.Errorf("scrfd %s: output %s: %w", d.sess.Path(), name, err)
		}
	}
	var faces []facedet.Face
	for l, stride := range strides {
		fs, err := DecodeLevel(levels[l], levels[l+3], levels[l+6], stride, d.w, d.h, d.Threshold)
		if err != nil {
			return nil, fmt.Errorf("scrfd %s: stride %d (outputs %s, %s, %s): %w", d.sess.Path(), stride, d.outputs[l], d.outputs[l+3], d.outputs[l+6], err)
		}
		faces = append(faces, fs...)
	}
	for i := range faces {
		f := &faces[i]
		for k := range f.Box {
			f.Box[k] /= scale
		}
		for k := range f.Landmarks {
			f.Landmarks[k][0] /= scale
			f.Landmarks[k][1] /= scale
		}
	}
	facedet.SortByScore(faces)
	return facedet.NMS(faces, d.NMS, facedet.InsightFaceOverlap), nil
}

// fit is SCRFD.detect's resize: the size a w×h image is scaled to so that it fits an inW×inH
// input keeping its aspect (the side that binds fills the input, the other is truncated), and
// the scale new height / h that maps detections back.
func fit(w, h, inW, inH int) (nw, nh int, scale float32) {
	imRatio := float64(h) / float64(w)
	if imRatio > float64(inH)/float64(inW) {
		nh = inH
		nw = int(float64(nh) / imRatio)
	} else {
		nw = inW
		nh = int(float64(nw) * imRatio)
	}
	nw, nh = max(nw, 1), max(nh, 1)
	return nw, nh, float32(nh) / float32(h)
}

// DecodeLevel decodes one stride's outputs for a w×h detector input, as insightface's
// SCRFD.forward: anchor a of cell (row, col) is row (row·W + col)·2 + a, W = w/stride, with
// centre (col·stride, row·stride); its box is centre ∓ distances·stride (left, top, right,
// bottom: distance2bbox) and its five keypoints centre + offsets·stride (distance2kps).
// Anchors scoring below thresh are skipped. It returns an error when the outputs' lengths do
// not match the anchors of the level.
func DecodeLevel(scores, boxes, kps []float32, stride, w, h int, thresh float32) ([]facedet.Face, error) {
	fw, fh := w/stride, h/stride
	n := fw * fh * numAnchors
	if len(scores) != n || len(boxes) != 4*n || len(kps) != 10*n {
		return nil, fmt.Errorf("a %dx%d input has %d anchors at stride %d: want %d scores, %d box and %d keypoint values, got %d, %d, %d",
			w, h, n, stride, n, 4*n, 10*n, len(scores), len(boxes), len(kps))
	}
	s := float32(stride)
	var faces []facedet.Face
	for k, sc := range scores {
		if !(sc >= thresh) {
			continue
		}
		cell := k / numAnchors
		cx, cy := float32(cell%fw)*s, float32(cell/fw)*s
		b := boxes[4*k : 4*k+4]
		f := facedet.Face{
			Box:       [4]float32{cx - b[0]*s, cy - b[1]*s, cx + b[2]*s, cy + b[3]*s},
			Score:     sc,
			Landmarks: make([][2]float32, 5),
		}
		p := kps[10*k : 10*k+10]
		for j := range 5 {
			f.Landmarks[j] = [2]float32{cx + p[2*j]*s, cy + p[2*j+1]*s}
		}
		faces = append(faces, f)
	}
	return faces, nil
}

// Close releases the session.
func (d *SCRFD) Close() error { return d.sess.Close() }
