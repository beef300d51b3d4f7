// Package insightface is the paper's face judge (§4.2): insightface's buffalo_l pack as users
// have it, a folder holding det_10g.onnx (SCRFD-10GF with keypoints) and w600k_r50.onnx
// (ArcFace ResNet-50 trained on WebFace600K), run through ONNX Runtime with insightface's own
// pre- and post-processing:
//
//   - detection (SCRFD): the image fitted into 640×640 keeping its aspect (top-left, black
//     padding), (x − 127.5)/128 RGB, strides 8/16/32 with two anchors a cell, distance-to-box
//     and distance-to-keypoint decoding, score ≥ 0.5, NMS at 0.4;
//   - one face per image: the largest box (or insightface's centre-weighted metric);
//   - alignment: the least-squares similarity (Umeyama) of its five keypoints onto ArcFace's
//     112×112 template, bilinear warp with a black border (face_align.norm_crop);
//   - identity: ArcFace on the crop, (x − 127.5)/127.5 RGB, the 512-d feature L2-normalised.
//
// The judge registers as kind "insightface" in judges.Faces. Options: "detector" is "scrfd"
// (default) or "ultraface" (UltraFace RFB-320, a detector without landmarks: the face is then
// a square box crop, see BoxCrop); "detector_model" names the detector file (default
// det_10g.onnx, or version-RFB-320.onnx, in the pack folder); "select" is "largest" (default)
// or "central"; "det_size" the input side for a dynamic-size SCRFD export (default 640; an
// error for a fixed-size one). Resized and warped images are rounded to 8-bit values, as the
// references' cv2 calls on uint8 images return them.
package insightface

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/facedet"
	"github.com/cocoflow/cocoflow/models/judges/ultraface"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// Kind is the judge's name in judges.Faces.
const Kind = "insightface"

// The files of the buffalo_l pack the judge reads.
const (
	DetectorFile    = "det_10g.onnx"
	RecognitionFile = "w600k_r50.onnx"
)

// Detector names accepted by Options["detector"].
const (
	DetectorSCRFD     = "scrfd"
	DetectorUltraFace = "ultraface"
)

var optionKeys = []string{"detector", "detector_model", "select", "det_size"}

func init() {
	judges.Faces.Register(Kind, judges.Opener[judges.Face]{
		Open: func(s judges.Spec) (judges.Face, error) {
			j, err := Open(s, ort.Options{})
			if err != nil {
				return nil, err
			}
			return j, nil
		},
		Digest: Digest,
		Doc: "insightface buffalo_l (paper §4.2): SCRFD det_10g.onnx detection, 5-point alignment onto ArcFace's 112x112 template, " +
			"w600k_r50.onnx embeddings, L2-normalised. Path: the buffalo_l folder. Options: detector (scrfd | ultraface), " +
			"detector_model (file; default det_10g.onnx or version-RFB-320.onnx in the folder), select (largest | central), det_size (640)",
	})
}

// config is a Spec read and checked.
type config struct {
	detector, detPath, recPath string
	sel                        facedet.Selection
	detSize                    int // 0: the export's own size, or DetSize for a dynamic one
}

func parseSpec(s judges.Spec) (config, error) {
	if s.Path == "" {
		return config{}, fmt.Errorf("insightface judge: path: want the buffalo_l folder (holding %s and %s), got none", DetectorFile, RecognitionFile)
	}
	for k := range s.Options {
		if !slices.Contains(optionKeys, k) {
			return config{}, fmt.Errorf("insightface judge: unknown option %q (known: %v)", k, optionKeys)
		}
	}
	c := config{detector: s.Options["detector"], recPath: filepath.Join(s.Path, RecognitionFile)}
	switch c.detector {
	case "", DetectorSCRFD:
		c.detector = DetectorSCRFD
		c.detPath = filepath.Join(s.Path, DetectorFile)
	case DetectorUltraFace:
		c.detPath = filepath.Join(s.Path, ultraface.File)
	default:
		return config{}, fmt.Errorf("insightface judge: option detector %q: want %q or %q", c.detector, DetectorSCRFD, DetectorUltraFace)
	}
	if p := s.Options["detector_model"]; p != "" {
		c.detPath = p
	}
	var err error
	if c.sel, err = facedet.ParseSelection(s.Options["select"]); err != nil {
		return config{}, fmt.Errorf("insightface judge: option select: %w", err)
	}
	if v := s.Options["det_size"]; v != "" {
		if c.detector != DetectorSCRFD {
			return config{}, fmt.Errorf("insightface judge: option det_size applies to the scrfd detector only (UltraFace's input is fixed)")
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n%32 != 0 {
			return config{}, fmt.Errorf("insightface judge: option det_size %q: want a positive multiple of 32", v)
		}
		c.detSize = n
	}
	for _, f := range []struct{ role, path string }{{c.detector + " detector", c.detPath}, {"ArcFace recognition", c.recPath}} {
		if _, err := os.Stat(f.path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return config{}, fmt.Errorf("insightface judge: the %s model %s is missing (the buffalo_l pack folder holds %s and %s)", f.role, f.path, DetectorFile, RecognitionFile)
			}
			return config{}, fmt.Errorf("insightface judge: %s model: %w", f.role, err)
		}
	}
	return c, nil
}

// Judge is the insightface face judge; it implements judges.Face. Embed is safe for
// concurrent use (ONNX Runtime sessions are; the judge keeps no other mutable state).
type Judge struct {
	det facedet.Detector
	rec *ArcFace
	sel facedet.Selection
}

// Open opens the judge s names with ONNX Runtime options opt. Errors name the missing file,
// the bad option or the model whose signature is not the expected one.
func Open(s judges.Spec, opt ort.Options) (*Judge, error) {
	c, err := parseSpec(s)
	if err != nil {
		return nil, err
	}
	var det facedet.Detector
	switch c.detector {
	case DetectorSCRFD:
		d, err := OpenSCRFD(c.detPath, opt)
		if err != nil {
			return nil, fmt.Errorf("insightface judge: %w", err)
		}
		if c.detSize != 0 {
			if err := d.SetInputSize(c.detSize, c.detSize); err != nil {
				d.Close()
				return nil, fmt.Errorf("insightface judge: option det_size: %w", err)
			}
		}
		det = d
	case DetectorUltraFace:
		d, err := ultraface.Open(c.detPath, opt)
		if err != nil {
			return nil, fmt.Errorf("insightface judge: %w", err)
		}
		det = d
	}
	rec, err := OpenArcFace(c.recPath, opt)
	if err != nil {
		det.Close()
		return nil, fmt.Errorf("insightface judge: %w", err)
	}
	return &Judge{det: det, rec: rec, sel: c.sel}, nil
}

// Embed implements judges.Face: per image, detect, pick one face, align it and embed all the
// found faces in one ArcFace run.
func (j *Judge) Embed(imgs []image.Image) ([][]float32, []bool, error) {
	emb := make([][]float32, len(imgs))
	found := make([]bool, len(imgs))
	var crops []*facedet.RGB
	var at []int
	for i, img := range imgs {
		if img == nil {
			return nil, nil, fmt.Errorf("insightface judge: image %d is nil", i)
		}
		if b := img.Bounds(); b.Empty() {
			return nil, nil, fmt.Errorf("insightface judge: image %d is empty (%v)", i, b)
		}
		crop, ok, err := j.Align(facedet.FromImage(img))
		if err != nil {
			return nil, nil, fmt.Errorf("insightface judge: image %d: %w", i, err)
		}
		if ok {
			crops = append(crops, crop)
			at = append(at, i)
		}
	}
	if len(crops) == 0 {
		return emb, found, nil
	}
	feats, err := j.rec.Embed(crops)
	if err != nil {
		return nil, nil, fmt.Errorf("insightface judge: %w", err)
	}
	for k, i := range at {
		emb[i], found[i] = feats[k], true
	}
	return emb, found, nil
}

// Align detects the faces of img and returns the chosen one's aligned crop, or ok false when
// there is none.
func (j *Judge) Align(img *facedet.RGB) (crop *facedet.RGB, ok bool, err error) {
	faces, err := j.det.Detect(img)
	if err != nil {
		return nil, false, err
	}
	k := facedet.Select(faces, img.W, img.H, j.sel)
	if k < 0 {
		return nil, false, nil
	}
	f := faces[k]
	if f.Landmarks == nil {
		return BoxCrop(img, f.Box, j.rec.Size()), true, nil
	}
	crop, err = NormCrop(img, f.Landmarks, j.rec.Size())
	return crop, err == nil, err
}

// RunTime is the time spent inside ONNX Runtime sessions' Run (the detector's and ArcFace's)
// since the judge opened: what the face chain's benchmark sets against its wall time.
func (j *Judge) RunTime() time.Duration {
	return j.det.RunTime() + j.rec.runs.Spent()
}

// Close releases both models.
func (j *Judge) Close() error {
	return errors.Join(j.det.Close(), j.rec.Close())
}

// RunTime is the time the detector spent in its session's Run.
func (d *SCRFD) RunTime() time.Duration { return d.runs.Spent() }

// Digest is the SHA-256, in hex, of the detector and recognition files a spec names (each
// file's name and the SHA-256 of its contents) and of the options that change what the judge
// returns. Errors name the missing file or the bad option.
func Digest(s judges.Spec) (string, error) {
	c, err := parseSpec(s)
	if err != nil {
		return "", err
	}
	files, err := ort.FileDigest(c.detPath, c.recPath)
	if err != nil {
		return "", fmt.Errorf("insightface judge: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s detector=%s select=%s det_size=%d\n%s\n", Kind, c.detector, c.sel, c.detSize, files)
	return hex.EncodeToString(h.Sum(nil)), nil
}
