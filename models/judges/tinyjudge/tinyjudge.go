// Package tinyjudge registers the tiny world's own encoders as judges (models/judges): the
// tinyface identity encoder in ArcFace's role (kind "tinyface"), the tiny CLIP in CLIP's role
// (kind "tinyclip") and, in DreamSim's role, the tiny CLIP's embedding of a portrait's subject
// region (kind "tinyclip-subject"). A spec's path is a saved model folder, or "" for the
// committed weights; the tiny kinds take no options.
package tinyjudge

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"maps"
	"slices"
	"strings"

	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
)

// The kinds this package registers.
const (
	FaceKind    = "tinyface"
	CLIPKind    = "tinyclip"
	SubjectKind = "tinyclip-subject"
)

func init() {
	judges.Faces.Register(FaceKind, judges.Opener[judges.Face]{
		Open: func(s judges.Spec) (judges.Face, error) {
			m, err := open(s, tinyface.Load, tinyface.LoadDefault)
			if err != nil {
				return nil, err
			}
			return face{m}, nil
		},
		Digest: func(s judges.Spec) (string, error) { return tinyface.WeightsDigest(s.Path) },
		Doc:    "the tiny world's identity encoder (models/judges/tinyface); every image has a face",
	})
	judges.ImageTexts.Register(CLIPKind, judges.Opener[judges.ImageText]{
		Open: func(s judges.Spec) (judges.ImageText, error) {
			m, err := open(s, tinyclip.Load, tinyclip.LoadDefault)
			if err != nil {
				return nil, err
			}
			return clip{m}, nil
		},
		Digest: func(s judges.Spec) (string, error) { return tinyclip.WeightsDigest(s.Path) },
		Doc:    "the tiny CLIP (models/judges/tinyclip), raw cosine",
	})
	judges.ImageSims.Register(SubjectKind, judges.Opener[judges.ImageSim]{
		Open: func(s judges.Spec) (judges.ImageSim, error) {
			m, err := open(s, tinyclip.Load, tinyclip.LoadDefault)
			if err != nil {
				return nil, err
			}
			return subject{m}, nil
		},
		Digest: func(s judges.Spec) (string, error) { return tinyclip.WeightsDigest(s.Path) },
		Doc:    "DreamSim's stand-in: the tiny CLIP's embedding of the subject region (SubjectRegion)",
	})
}

// open checks that s has no options and loads the model in s.Path, or the committed one.
func open[M any](s judges.Spec, load func(dir string) (M, error), committed func() (M, error)) (M, error) {
	if len(s.Options) > 0 {
		var zero M
		return zero, fmt.Errorf("%s judge takes no options, got %s", s.Kind, strings.Join(slices.Sorted(maps.Keys(s.Options)), ", "))
	}
	if s.Path == "" {
		return committed()
	}
	return load(s.Path)
}

type face struct{ m *tinyface.Model }

// Embed embeds every image: the tiny encoder reads the whole portrait, so each has a face.
func (f face) Embed(imgs []image.Image) ([][]float32, []bool, error) {
	emb, err := f.m.Embed(imgs)
	if err != nil {
		return nil, nil, err
	}
	found := make([]bool, len(emb))
	for i := range found {
		found[i] = true
	}
	return emb, found, nil
}

func (face) Close() error { return nil }

type clip struct{ m *tinyclip.Model }

func (c clip) EmbedImages(imgs []image.Image) ([][]float32, error) { return c.m.EmbedImages(imgs) }
func (c clip) EmbedTexts(texts []string) ([][]float32, error)      { return c.m.EmbedTexts(texts) }
func (clip) Close() error                                          { return nil }

type subject struct{ m *tinyclip.Model }

func (s subject) EmbedImages(imgs []image.Image) ([][]float32, error) {
	sub := make([]image.Image, len(imgs))
	for i, img := range imgs {
		sub[i] = SubjectRegion(img)
	}
	return s.m.EmbedImages(sub)
}

func (subject) Close() error { return nil }

// SubjectRegion keeps the subject's region of a synthfaces-like portrait, the central
// three quarters where the renderer always places head and shoulders (the bottom edge
// included), and paints the rest mid-grey: the tiny world's stand-in for DreamSim on a
// Grounded-SAM subject mask, which generated images do not come with.
func SubjectRegion(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(b)
	draw.Draw(out, b, image.NewUniform(color.Gray{Y: 128}), image.Point{}, draw.Src)
	mx, my := b.Dx()/8, b.Dy()/8
	inner := image.Rect(b.Min.X+mx, b.Min.Y+my, b.Max.X-mx, b.Max.Y)
	draw.Draw(out, inner, img, inner.Min, draw.Src)
	return out
}
