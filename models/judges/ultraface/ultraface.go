// Package ultraface is the UltraFace face detector (Ultra-Light-Fast-Generic-Face-Detector-1MB,
// version-RFB-320.onnx, MIT) behind facedet.Detector: a second, real detector for the face
// judge, an SSD with priors at strides 8/16/32/64 and no landmarks.
//
// Preprocessing and post-processing follow the project's ONNX demo (detect_imgs_onnx.py): the
// image resized to the input (320×240, aspect not kept), (x − 127)/128 RGB; faces are the
// priors whose face probability exceeds 0.7, the 200 best kept for hard NMS at IoU 0.5, boxes
// scaled from [0,1] to the image's pixels. The published export decodes its boxes itself
// (softmax, priors, centre variance 0.1, size variance 0.2, corner form); an export without
// that post-processing is decoded here with the same priors (Priors, Decode).
package ultraface

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/cocoflow/cocoflow/models/judges/facedet"
	"github.com/cocoflow/cocoflow/models/judges/onnxjudge"
	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// File is the published export's file name.
const File = "version-RFB-320.onnx"

// UltraFace's settings (vision/ssd/config/fd_config.py and detect_imgs_onnx.py).
const (
	Threshold      = 0.7
	IoUThreshold   = 0.5
	CandidateSize  = 200
	CenterVariance = 0.1
	SizeVariance   = 0.2
	mean, scale    = 127, 1.0 / 128
)

// Strides and MinBoxes are the feature levels and the prior sides (input pixels) of each.
var (
	Strides  = []int{8, 16, 32, 64}
	MinBoxes = [][]float64{{10, 16, 24}, {32, 48}, {64, 96}, {128, 192, 256}}
)

// Prior is one prior box in [0,1] image units, centre form.
type Prior struct{ CX, CY, W, H float64 }

// Priors returns the priors of a w×h input as define_img_size and generate_priors make them:
// per level, per feature-map row j and column i (a W×H = ceil(w/stride) × ceil(h/stride) map),
// per min box, the centre ((i + 0.5)/W, (j + 0.5)/H) and size (min/w, min/h), each value clamped
// to [0,1]. (The shrinkage is w/W, not the stride, where the stride does not divide the size:
// 240/32 gives 8 rows of 30 pixels.)
func Priors(w, h int) []Prior {
	var ps []Prior
	clamp := func(v float64) float64 { return min(max(v, 0), 1) }
	for l, stride := range Strides {
		fw := int(math.Ceil(float64(w) / float64(stride)))
		fh := int(math.Ceil(float64(h) / float64(stride)))
		for j := range fh {
			for i := range fw {
				for _, m := range MinBoxes[l] {
					ps = append(ps, Prior{clamp((float64(i) + 0.5) / float64(fw)), clamp((float64(j) + 0.5) / float64(fh)), clamp(m / float64(w)), clamp(m / float64(h))})
				}
			}
		}
	}
	return ps
}

// Decode turns a raw location (the regression head's 4 values) at prior p into a corner-form
// box (x1, y1, x2, y2) in [0,1] units: centre loc[0:2]·0.1·size + prior centre, size
// exp(loc[2:4]·0.2)·prior size (convert_locations_to_boxes, center_form_to_corner_form).
func Decode(loc []float32, p Prior) [4]float32 {
	cx := float64(loc[0])*CenterVariance*p.W + p.CX
	cy := float64(loc[1])*CenterVariance*p.H + p.CY
	w := math.Exp(float64(loc[2])*SizeVariance) * p.W
	h := math.Exp(float64(loc[3])*SizeVariance) * p.H
	return [4]float32{float32(cx - w/2), float32(cy - h/2), float32(cx + w/2), float32(cy + h/2)}
}

// Detector runs an UltraFace export; it implements facedet.Detector.
type Detector struct {
	sess          *ort.Session
	input         string
	scores, boxes string
	w, h          int
	priors        []Prior // nil when the export decodes its boxes itself
	Threshold     float32
	IoU           float32
	runs          onnxjudge.Timer
}

// Open loads an UltraFace export and checks its signature: one float32 input [1,3,H,W] of fixed
// size and two float32 outputs, scores [1,N,2] and boxes [1,N,4], N the number of priors of
// the input size. Errors name the file and what differs.
func Open(path string, opt ort.Options) (*Detector, error) {
	m, err := onnxgraph.Read(path)
	if err != nil {
		return nil, fmt.Errorf("ultraface: %w", err)
	}
	s, err := ort.Open(path, opt)
	if err != nil {
		return nil, fmt.Errorf("ultraface: %w", err)
	}
	d, err := newDetector(s, m)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("ultraface %s: %w", path, err)
	}
	return d, nil
}

func newDetector(s *ort.Session, m *onnxgraph.Model) (*Detector, error) {
	ins, outs := s.Inputs(), s.Outputs()
	if len(ins) != 1 || len(outs) != 2 {
		return nil, fmt.Errorf("want one input [1,3,H,W] and two outputs (scores [1,N,2], boxes [1,N,4]), the model has %d inputs and %d outputs", len(ins), len(outs))
	}
	in := ins[0]
	if in.DType != "float32" || len(in.Shape) != 4 || in.Shape[0] != 1 || in.Shape[1] != 3 || in.Shape[2] <= 0 || in.Shape[3] <= 0 {
		return nil, fmt.Errorf("input %s: want float32 [1,3,H,W] with H and W fixed, got %s%v", in.Name, in.DType, in.Shape)
	}
	d := &Detector{sess: s, input: in.Name, w: int(in.Shape[3]), h: int(in.Shape[2]), Threshold: Threshold, IoU: IoUThreshold}
	n := int64(len(Priors(d.w, d.h)))
	for _, o := range outs {
		if o.DType != "float32" || len(o.Shape) != 3 || o.Shape[0] != 1 || o.Shape[1] != n {
			return nil, fmt.Errorf("output %s: want float32 [1,%d,2|4] (the priors of a %dx%d input), got %s%v", o.Name, n, d.w, d.h, o.DType, o.Shape)
		}
		switch o.Shape[2] {
		case 2:
			d.scores = o.Name
		case 4:
			d.boxes = o.Name
		}
	}
	if d.scores == "" || d.boxes == "" {
		return nil, fmt.Errorf("want a scores output [1,%d,2] and a boxes output [1,%d,4], got %s", n, n, outList(outs))
	}
	if !producedBy(m, d.scores, "Softmax") {
		d.priors = Priors(d.w, d.h)
	}
	return d, nil
}

// producedBy reports whether the graph computes output name with an op of type op (the
// published export ends its score head with Softmax; a raw export ends it with a Reshape/Concat).
func producedBy(m *onnxgraph.Model, name, op string) bool {
	n := m.Graph.Producer(name)
	return n != nil && n.OpType == op
}

func outList(outs []ort.TensorInfo) string {
	s := ""
	for i, o := range outs {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %s%v", o.Name, o.DType, o.Shape)
	}
	return s
}

// InputSize is the model's input (width, height).
func (d *Detector) InputSize() (w, h int) { return d.w, d.h }

// Decodes reports whether the export decodes its boxes itself (the published one does).
func (d *Detector) Decodes() bool { return d.priors == nil }

// Detect implements facedet.Detector. Faces carry no landmarks.
func (d *Detector) Detect(img *facedet.RGB) ([]facedet.Face, error) {
	if img.W == 0 || img.H == 0 {
		return nil, nil
	}
	blob := make([]float32, 3*d.w*d.h)
	img.Resize(d.w, d.h).Quantize().Planar(blob, mean, scale) // cv2.resize of a uint8 image
	out, err := d.runs.Run(d.sess, map[string]ort.Tensor{d.input: ort.NewTensor([]int64{1, 3, int64(d.h), int64(d.w)}, blob)})
	if err != nil {
		return nil, err
	}
	conf, err := ort.Data[float32](out[d.scores])
	if err != nil {
		return nil, fmt.Errorf("ultraface %s: output %s: %w", d.sess.Path(), d.scores, err)
	}
	loc, err := ort.Data[float32](out[d.boxes])
	if err != nil {
		return nil, fmt.Errorf("ultraface %s: output %s: %w", d.sess.Path(), d.boxes, err)
	}
	var faces []facedet.Face
	for k := range len(conf) / 2 {
		p := conf[2*k+1]
		if d.priors != nil {
			// softmax over (background, face)
			p = float32(1 / (1 + math.Exp(float64(conf[2*k]-conf[2*k+1]))))
		}
		if !(p > d.Threshold) {
			continue
		}
		var b [4]float32
		if d.priors != nil {
			b = Decode(loc[4*k:4*k+4], d.priors[k])
		} else {
			copy(b[:], loc[4*k:4*k+4])
		}
		faces = append(faces, facedet.Face{Box: b, Score: p})
	}
	// hard_nms takes candidates from the end of an ascending argsort: the later of two equal
	// scores first.
	slices.Reverse(faces)
	facedet.SortByScore(faces)
	faces = faces[:min(len(faces), CandidateSize)]
	faces = facedet.NMS(faces, d.IoU, facedet.UltraFaceOverlap)
	fw, fh := float32(img.W), float32(img.H)
	for i := range faces {
		b := &faces[i].Box
		b[0], b[1], b[2], b[3] = b[0]*fw, b[1]*fh, b[2]*fw, b[3]*fh
	}
	return faces, nil
}

// RunTime is the time spent in the session's Run.
func (d *Detector) RunTime() time.Duration { return d.runs.Spent() }

// Close releases the session.
func (d *Detector) Close() error { return d.sess.Close() }
