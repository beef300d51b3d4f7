package stages

// The evaluate stage's scoring: the metric models (the identity encoder in ArcFace's role and
// CLIP), the per-image embeddings and the aggregate measures with bootstrap intervals.

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"slices"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/metrics"
)

// scorer holds the metric models: the identity encoder (ArcFace's role) and CLIP.
type scorer struct {
	face *tinyface.Model
	clip *tinyclip.Model
}

// newScorer loads the metric models named by p, or the committed tiny ones.
func newScorer(p *evaluateParams) (*scorer, error) {
	face, err := committedOr(p.FaceModel, tinyface.Load, tinyface.LoadDefault)
	if err != nil {
		return nil, err
	}
	clip, err := committedOr(p.CLIPModel, tinyclip.Load, tinyclip.LoadDefault)
	if err != nil {
		return nil, err
	}
	return &scorer{face: face, clip: clip}, nil
}

// score embeds every image with the identity encoder and CLIP, and its prompt with CLIP; with
// classes, it also picks the class whose CLIP prompt ("a photo of a <class>.") is nearest to
// each image.
func (s *scorer) score(rows []EvalImageRow, classes []string) ([]EvalScoreRow, error) {
	face, clip := s.face, s.clip
	imgs := make([]image.Image, len(rows))
	subj := make([]image.Image, len(rows))
	texts := make([]string, len(rows))
	for i, r := range rows {
		img, err := imageio.Decode(r.Image)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", r.ID, err)
		}
		imgs[i], subj[i], texts[i] = img, subjectRegion(img), r.Prompt
	}
	faces, err := face.Embed(imgs)
	if err != nil {
		return nil, err
	}
	ie, err := clip.EmbedImages(imgs)
	if err != nil {
		return nil, err
	}
	se, err := clip.EmbedImages(subj)
	if err != nil {
		return nil, err
	}
	te, err := clip.EmbedTexts(texts)
	if err != nil {
		return nil, err
	}
	var ce [][]float32
	if len(classes) > 0 {
		cp := make([]string, len(classes))
		for i, c := range classes {
			cp[i] = tinyclip.ClassPrompt(c)
		}
		if ce, err = clip.EmbedTexts(cp); err != nil {
			return nil, err
		}
	}
	out := make([]EvalScoreRow, len(rows))
	for i, r := range rows {
		out[i] = EvalScoreRow{ID: r.ID, Method: r.Method, Group: r.Group, Face: faces[i], Image: ie[i], Subject: se[i],
			ClipT: float32(metrics.Cosine(te[i], ie[i]))}
		best := math.Inf(-1)
		for k, c := range ce {
			if v := metrics.Cosine(ie[i], c); v > best {
				best, out[i].Class = v, classes[k]
			}
		}
	}
	return out, nil
}

// subjectRegion keeps the subject's region of a synthfaces-like portrait, the central
// three quarters where the renderer always places head and shoulders, and paints the rest
// mid-grey: the tiny world's stand-in for DreamSim on a Grounded-SAM subject mask, which
// generated images do not come with.
func subjectRegion(img image.Image) image.Image {
	b := img.Bounds()
	out := image.NewRGBA(b)
	draw.Draw(out, b, image.NewUniform(color.Gray{Y: 128}), image.Point{}, draw.Src)
	mx, my := b.Dx()/8, b.Dy()/8
	inner := image.Rect(b.Min.X+mx, b.Min.Y+my, b.Max.X-mx, b.Max.Y)
	draw.Draw(out, inner, img, inner.Min, draw.Src)
	return out
}

// aggregate computes, per method, Face Sim, Face Div, CLIP-T and DreamSim-style similarity
// over the identities, with bootstrap intervals over identities.
func aggregate(rows []EvalImageRow, scores []EvalScoreRow, p *evaluateParams, seed uint64) ([]MetricRow, error) {
	type acc struct {
		groups                  []string
		face, subj, clip, class map[string]metrics.Group
		images                  int
	}
	var methods []string
	by := map[string]*acc{}
	for i, r := range rows {
		a, ok := by[r.Method]
		if !ok {
			a = &acc{face: map[string]metrics.Group{}, subj: map[string]metrics.Group{}, clip: map[string]metrics.Group{}, class: map[string]metrics.Group{}}
			by[r.Method] = a
			methods = append(methods, r.Method)
		}
		if _, ok := a.face[r.Group]; !ok {
			a.groups = append(a.groups, r.Group)
		}
		s := scores[i]
		a.face[r.Group] = append(a.face[r.Group], s.Face)
		a.subj[r.Group] = append(a.subj[r.Group], s.Subject)
		a.clip[r.Group] = append(a.clip[r.Group], []float32{s.ClipT})
		hit := float32(0)
		if s.Class == r.Subject {
			hit = 1
		}
		a.class[r.Group] = append(a.class[r.Group], []float32{hit})
		a.images++
	}
	var out []MetricRow
	for mi, m := range methods {
		a := by[m]
		list := func(g map[string]metrics.Group) []metrics.Group {
			out := make([]metrics.Group, len(a.groups))
			for i, name := range a.groups {
				out[i] = g[name]
			}
			return out
		}
		for k, st := range []struct {
			name   string
			groups []metrics.Group
			stat   func([]metrics.Group) float64
		}{
			{"face_sim", list(a.face), metrics.Similarity},
			{"face_div", list(a.face), metrics.Diversity},
			{"clip_t", list(a.clip), metrics.MeanOfGroups},
			{"dreamsim", list(a.subj), metrics.Similarity},
			{"class_acc", list(a.class), metrics.MeanOfGroups},
		} {
			table := p.Table
			if st.name == "class_acc" {
				if p.ClassTable == "" {
					continue
				}
				table = p.ClassTable
			} else if !slices.Contains(p.Metrics, st.name) {
				continue
			}
			v := st.stat(st.groups)
			if math.IsNaN(v) {
				return nil, fmt.Errorf("%s %s: not defined for %d identities", m, st.name, len(st.groups))
			}
			iv := metrics.Interval{Lo: math.NaN(), Hi: math.NaN()}
			if p.Bootstrap > 0 {
				iv = metrics.Bootstrap(st.groups, st.stat, p.Bootstrap, 0.95, seed+uint64(100*mi+k))
			}
			out = append(out, MetricRow{Table: table, Method: m, Metric: st.name, Value: v, Lo: iv.Lo, Hi: iv.Hi,
				Identities: int32(len(a.groups)), Images: int32(a.images)})
		}
	}
	return out, nil
}

// committedOr loads the model in dir with load, or the committed one when dir is "".
func committedOr[M any](dir string, load func(dir string) (M, error), committed func() (M, error)) (M, error) {
	if dir == "" {
		return committed()
	}
	return load(dir)
}
