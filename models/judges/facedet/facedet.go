// Package facedet holds what the face judges' detectors share: a float RGB image buffer with
// OpenCV's bilinear resize and affine warp (the operations insightface and UltraFace run
// through cv2), the Face a detector returns, the Detector interface, greedy NMS, and the
// choice of one face per image, and the timer of ONNX Runtime calls the benchmarks report.
//
// Coordinates follow OpenCV: pixel (x, y) has its centre at (x, y), so a box from x1 to x2
// covers the pixels whose centres lie between them.
package facedet

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Face is one detected face in the pixel coordinates of the image it was found in.
type Face struct {
	Box   [4]float32 // x1, y1, x2, y2
	Score float32
	// Landmarks are the five points insightface's detectors return (left eye, right eye,
	// nose tip, left and right mouth corner, as the image shows them), or nil for a detector
	// without landmarks.
	Landmarks [][2]float32
}

// Area is the box's (x2−x1)·(y2−y1).
func (f Face) Area() float32 { return (f.Box[2] - f.Box[0]) * (f.Box[3] - f.Box[1]) }

// Detector finds the faces of an image.
type Detector interface {
	// Detect returns the faces of img after thresholding and NMS, highest score first. An
	// error is for a broken model, never for an image without faces.
	Detect(img *RGB) ([]Face, error)
	// RunTime is the time spent inside ONNX Runtime's Run so far.
	RunTime() time.Duration
	Close() error
}

// Overlap is how a detector's NMS measures the intersection over union of two boxes.
type Overlap struct {
	// Offset is added to every width and height (pixel-inclusive boxes).
	Offset float32
	// Eps is added to the union.
	Eps float32
}

// The two references' overlaps: insightface's SCRFD.nms and UltraFace's hard_nms (iou_of).
// UltraFace also clamps box sides at 0 before taking areas; that changes no decision here: a
// box with a negative side intersects nothing, so its IoU is 0 with or without the clamp (its
// eps keeps the union from vanishing).
var (
	InsightFaceOverlap = Overlap{Offset: 1}
	UltraFaceOverlap   = Overlap{Eps: 1e-5}
)

// IoU is the intersection over union of boxes a and b measured as o says.
func (o Overlap) IoU(a, b [4]float32) float32 {
	return o.iou(a, b, o.area(a), o.area(b))
}

func (o Overlap) area(b [4]float32) float32 {
	return (b[2] - b[0] + o.Offset) * (b[3] - b[1] + o.Offset)
}

func (o Overlap) iou(a, b [4]float32, areaA, areaB float32) float32 {
	w := max(0, min(a[2], b[2])-max(a[0], b[0])+o.Offset)
	h := max(0, min(a[3], b[3])-max(a[1], b[1])+o.Offset)
	inter := w * h
	return inter / (areaA + areaB - inter + o.Eps)
}

// NMS is greedy non-maximum suppression over faces sorted by descending score: a face is kept
// unless its IoU (measured as o says) with a kept face exceeds thresh. As in both references a
// face is kept only when its IoU is <= thresh: exactly thresh is kept, NaN (a zero union)
// dropped. It panics on unsorted faces.
func NMS(faces []Face, thresh float32, o Overlap) []Face {
	if !sort.SliceIsSorted(faces, func(i, j int) bool { return faces[i].Score > faces[j].Score }) {
		panic("facedet.NMS: faces not sorted by descending score")
	}
	areas := make([]float32, len(faces))
	for i, f := range faces {
		areas[i] = o.area(f.Box)
	}
	var keep []Face
	// rest holds the indices still in play, in score order, as insightface's order array.
	rest := make([]int, len(faces))
	for i := range rest {
		rest[i] = i
	}
	for len(rest) > 0 {
		i := rest[0]
		keep = append(keep, faces[i])
		next := rest[:0]
		for _, j := range rest[1:] {
			if o.iou(faces[i].Box, faces[j].Box, areas[i], areas[j]) <= thresh { // NaN drops, as in numpy
				next = append(next, j)
			}
		}
		rest = next
	}
	return keep
}

// SortByScore sorts faces by descending score; equal scores keep their order (insightface's
// SCRFD sorts twice with argsort()[::-1], which for a stable sort leaves ties in order).
func SortByScore(faces []Face) {
	slices.SortStableFunc(faces, func(a, b Face) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return 0
	})
}

// Selection names how a judge picks the one face of an image it scores.
type Selection string

const (
	// Largest picks the face of largest box area (insightface's metric "max").
	Largest Selection = "largest"
	// Central picks by insightface's default metric: area − 2·(squared distance of the box
	// centre from the image centre), favouring large faces near the middle.
	Central Selection = "central"
)

// ParseSelection reads a selection as a config writes it; "" is Largest.
func ParseSelection(s string) (Selection, error) {
	switch Selection(s) {
	case "", Largest:
		return Largest, nil
	case Central:
		return Central, nil
	}
	return "", fmt.Errorf("face selection %q: want %q or %q", s, Largest, Central)
}

// Select returns the index of the face sel picks among faces of a w×h image, or −1 when there
// are none. Ties go to the earlier (higher-scoring) face.
func Select(faces []Face, w, h int, sel Selection) int {
	best, bestV := -1, math.Inf(-1)
	// insightface: img_center = img.shape[0] // 2, img.shape[1] // 2 (integer halves).
	cx, cy := float64(w/2), float64(h/2)
	for i, f := range faces {
		v := float64(f.Area())
		if sel == Central {
			dx := float64(f.Box[0]+f.Box[2])/2 - cx
			dy := float64(f.Box[1]+f.Box[3])/2 - cy
			v -= 2 * (dx*dx + dy*dy)
		}
		if v > bestV {
			best, bestV = i, v
		}
	}
	return best
}
