package stages

import (
	"context"
	"errors"
	"fmt"
	"image"
	"os"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
	"github.com/cocoflow/cocoflow/models/segment/groundingdino"
	"github.com/cocoflow/cocoflow/models/segment/sam2"
)

// groundedSAM is the grounded-sam2 mask backend (paper §4.2): Grounding DINO finds the boxes of
// the concept word (or grounding_text), SAM 2 segments the best one.
type groundedSAM struct {
	det  *groundingdino.Detector
	sam  *sam2.Predictor
	text string
	th   groundingdino.Thresholds
}

// newGroundedSAM opens both models on the execution providers of ort.ProvidersEnv (CPU when
// unset).
func newGroundedSAM(p *maskParams) (*groundedSAM, error) {
	ps, err := ort.EnvProviders()
	if err != nil {
		return nil, fmt.Errorf("mask backend grounded-sam2: %w", err)
	}
	opt := ort.Options{Providers: ps}
	det, err := groundingdino.Open(p.GroundingModel, opt)
	if err != nil {
		return nil, fmt.Errorf("mask backend grounded-sam2: %w", err)
	}
	sam, err := sam2.Open(p.SAMModel, opt)
	if err != nil {
		det.Close()
		return nil, fmt.Errorf("mask backend grounded-sam2: %w", err)
	}
	return &groundedSAM{det: det, sam: sam, text: p.GroundingText, th: groundingdino.Thresholds{Box: p.BoxThreshold, Text: p.TextThreshold}}, nil
}

// Close releases both models' sessions.
func (g *groundedSAM) Close() error {
	return errors.Join(g.det.Close(), g.sam.Close())
}

// Segment masks the best box for the image's concept word (or the configured text); no box
// above the thresholds, or an empty mask in the box, is errNoSubject, which the row records.
func (g *groundedSAM) Segment(_ context.Context, im ImageRow) (*image.Gray, error) {
	text := g.text
	if text == "" {
		text = im.Class
	}
	if text == "" {
		return nil, fmt.Errorf("mask backend grounded-sam2: the image has no concept word (class); set grounding_text")
	}
	img, err := imageio.DecodeAs(im.Image, im.Format)
	if err != nil {
		return nil, err
	}
	det, err := g.det.Best(img, g.th, text)
	if errors.Is(err, groundingdino.ErrNoBox) {
		return nil, fmt.Errorf("%w: grounding dino: %v", errNoSubject, err)
	}
	if err != nil {
		return nil, err
	}
	return g.maskIn(img, det)
}

// maskIn is SAM 2's mask of the detection's box; an empty one is errNoSubject.
func (g *groundedSAM) maskIn(img image.Image, det groundingdino.Detection) (*image.Gray, error) {
	m, _, err := g.sam.Mask(img, det.Box)
	if err != nil {
		return nil, err
	}
	if imageio.Coverage(m) == 0 {
		return nil, fmt.Errorf("%w: sam 2 marks no pixel of the %q box %.0f,%.0f-%.0f,%.0f (score %.2f)",
			errNoSubject, det.Phrase, det.Box.X0, det.Box.Y0, det.Box.X1, det.Box.Y1, det.Score)
	}
	return m, nil
}

// models names the weights of the grounded-sam2 backend by role; the other backends load none.
func (p *maskParams) models() (map[string]string, error) {
	if p.Backend != "grounded-sam2" {
		return nil, nil
	}
	gd, vocab, err := groundingdino.Files(p.GroundingModel)
	if err != nil {
		return nil, err
	}
	enc, dec, err := sam2.Files(p.SAMModel)
	if err != nil {
		return nil, err
	}
	grounding := []string{gd}
	if _, err := os.Stat(vocab); err == nil { // without it Open says what is missing
		grounding = append(grounding, vocab)
	}
	out := map[string]string{}
	for role, files := range map[string][]string{"grounding": grounding, "sam": {enc, dec}} {
		if out[role], err = ort.FileDigest(files...); err != nil {
			return nil, err
		}
	}
	return out, nil
}
