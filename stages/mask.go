package stages

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"math"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/pipeline"
)

type maskParams struct {
	Backend        string  `param:"backend" default:"groundtruth" enum:"groundtruth,landmarks,grounded-sam2" doc:"where masks come from"`
	HeadScale      float64 `param:"head_scale" default:"1" min:"0.2" max:"4" doc:"landmarks: scale of the head ellipse around the 5 points"`
	GroundingModel string  `param:"grounding_model" doc:"grounded-sam2: Grounding DINO ONNX export (img, input_ids, attention_mask, position_ids, token_type_ids, text_token_mask -> logits, boxes): the .onnx file with BERT's vocab.txt beside it, or a folder holding one .onnx and vocab.txt"`
	SAMModel       string  `param:"sam_model" doc:"grounded-sam2: SAM 2 ONNX export: a folder holding one *encoder*.onnx and one *decoder*.onnx (as samexporter writes them), or \"encoder.onnx,decoder.onnx\""`
	GroundingText  string  `param:"grounding_text" doc:"grounded-sam2: what Grounding DINO looks for, e.g. face or person; empty: the image's concept word (its class)"`
	BoxThreshold   float64 `param:"box_threshold" default:"0.35" min:"0" max:"1" doc:"grounded-sam2: a box passes when the sigmoid of its best text token is above this; no box passing -> the row records the failure"`
	TextThreshold  float64 `param:"text_threshold" default:"0.25" min:"0" max:"1" doc:"grounded-sam2: tokens above this name the box's phrase"`
}

func init() {
	pipeline.Register(pipeline.Spec[maskParams]{
		Name:    "mask",
		Version: "1",
		Doc: "Writes a subject mask per image, the region CoCoIns' losses compare (eq. 7) and " +
			"preserve outside (eq. 8). Backends: groundtruth (the renderer's exact masks of synthfaces), " +
			"landmarks (a head ellipse from CelebA's 5 points), grounded-sam2 (referring segmentation " +
			"of the concept word with ONNX models).",
		Inputs:  []pipeline.Port{{Name: "images", Doc: "ingest output"}},
		Models:  (*maskParams).models,
		Outputs: []pipeline.Port{{Name: "masks", Doc: "one row per image", Schema: MaskRow{}}},
		Sharded: true,
		Check: func(p *maskParams) error {
			if p.Backend == "grounded-sam2" && (p.GroundingModel == "" || p.SAMModel == "") {
				return fmt.Errorf("mask backend grounded-sam2 needs grounding_model and sam_model (ONNX exports; see README, Grounded SAM 2 masks)")
			}
			return nil
		},
		New: func(p *maskParams) (pipeline.Stage, error) {
			seg, err := newSegmenter(p)
			if err != nil {
				return nil, err
			}
			return pipeline.StageFunc(func(ctx context.Context, job *pipeline.Job) error {
				if c, ok := seg.(io.Closer); ok { // the ONNX sessions: gigabytes the later stages need
					defer c.Close()
				}
				in := job.Input("images")
				return pipeline.MapShards(ctx, job, job.Output("masks"), in.NumShards(), func(ctx context.Context, shard int) ([]MaskRow, error) {
					images, err := pipeline.ReadShard[ImageRow](in, shard)
					if err != nil {
						return nil, err
					}
					rows := make([]MaskRow, len(images))
					for i, im := range images {
						if err := ctx.Err(); err != nil {
							return nil, err
						}
						rows[i], err = maskRow(ctx, seg, p.Backend, im)
						if err != nil {
							return nil, err
						}
					}
					return rows, nil
				})
			}), nil
		},
	})
}

// Segmenter makes the subject mask of one image. The grounded-sam2 ONNX adapter implements it:
// boxes for the concept word from Grounding DINO, then a SAM 2 mask inside the best box.
type Segmenter interface {
	Segment(ctx context.Context, img ImageRow) (*image.Gray, error)
}

// errNoSubject marks an image the backend found no subject in; it becomes an error record, not a
// failed run.
var errNoSubject = errors.New("no subject found")

func newSegmenter(p *maskParams) (Segmenter, error) {
	switch p.Backend {
	case "groundtruth":
		return groundTruth{}, nil
	case "landmarks":
		return landmarkMask{scale: p.HeadScale}, nil
	case "grounded-sam2":
		return newGroundedSAM(p)
	}
	return nil, fmt.Errorf("unknown mask backend %q", p.Backend)
}

// RowFailure makes MaskRow a pipeline.FailedRow: an image the backend found no subject in
// (errNoSubject) fails the same way on a rerun, so it is never transient.
func (r MaskRow) RowFailure() (reason string, transient bool) { return r.Error, false }

func maskRow(ctx context.Context, seg Segmenter, backend string, im ImageRow) (MaskRow, error) {
	row := MaskRow{ID: im.ID, Backend: backend, Width: im.Width, Height: im.Height}
	m, err := seg.Segment(ctx, im)
	if errors.Is(err, errNoSubject) {
		row.Error = err.Error()
		return row, nil
	}
	if err != nil {
		return MaskRow{}, fmt.Errorf("image %s: %w", im.ID, err)
	}
	if b := m.Bounds(); b.Dx() != int(im.Width) || b.Dy() != int(im.Height) {
		return MaskRow{}, fmt.Errorf("image %s: mask is %dx%d, image %dx%d", im.ID, b.Dx(), b.Dy(), im.Width, im.Height)
	}
	row.Coverage = float32(imageio.Coverage(m))
	row.Mask, err = imageio.PNG(m)
	return row, err
}

type groundTruth struct{}

func (groundTruth) Segment(_ context.Context, im ImageRow) (*image.Gray, error) {
	if len(im.Mask) == 0 {
		return nil, fmt.Errorf("dataset %s has no ground-truth masks: use mask backend landmarks or grounded-sam2", im.Source)
	}
	return imageio.DecodeMask(im.Mask)
}

// landmarkMask covers the head with an ellipse fitted to the 5 facial landmarks (eyes, nose,
// mouth corners): centred near the eyes, as wide as 1.6 inter-ocular distances and as tall as
// 1.8 eye-to-mouth distances each way, which spans hair and chin on aligned CelebA faces.
type landmarkMask struct{ scale float64 }

func (l landmarkMask) Segment(_ context.Context, im ImageRow) (*image.Gray, error) {
	if len(im.Landmarks) != 10 {
		return nil, fmt.Errorf("mask backend landmarks needs 5 landmarks per image, image has %d values (dataset %s)", len(im.Landmarks), im.Source)
	}
	lm := im.Landmarks
	ex, ey := float64(lm[0]+lm[2])/2, float64(lm[1]+lm[3])/2 // eye centre
	mx, my := float64(lm[6]+lm[8])/2, float64(lm[7]+lm[9])/2 // mouth centre
	d := math.Hypot(float64(lm[2]-lm[0]), float64(lm[3]-lm[1]))
	h := math.Hypot(mx-ex, my-ey)
	if d < 1 || h < 1 {
		return nil, errNoSubject
	}
	angle := math.Atan2(mx-ex, my-ey) // head tilt: the eye-to-mouth axis against vertical
	cx, cy := ex+0.05*(mx-ex), ey+0.05*(my-ey)
	rx, ry := 1.6*d*l.scale, 1.8*h*l.scale
	m := image.NewGray(image.Rect(0, 0, int(im.Width), int(im.Height)))
	cos, sin := math.Cos(angle), math.Sin(angle)
	for y := 0; y < int(im.Height); y++ {
		for x := 0; x < int(im.Width); x++ {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			u := dx*cos - dy*sin
			v := dx*sin + dy*cos
			if (u*u)/(rx*rx)+(v*v)/(ry*ry) <= 1 {
				m.Pix[y*m.Stride+x] = 255
			}
		}
	}
	return m, nil
}
