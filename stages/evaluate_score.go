package stages

// The evaluate stage's scoring: the judges (evaluate_judges.go), the per-image embeddings and
// the aggregate measures with bootstrap intervals.

import (
	"errors"
	"fmt"
	"image"
	"math"
	"slices"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/models/metrics"
)

// scorer holds the judges a table needs (models/judges): the identity judge (ArcFace's role),
// the image-text judge (CLIP's) and the image-similarity judge (DreamSim's); a judge the
// table's measures do not use is nil.
type scorer struct {
	face judges.Face
	clip judges.ImageText
	sim  judges.ImageSim
}

// newScorer opens the judges p's measures use.
func newScorer(p *evaluateParams) (*scorer, error) {
	j, err := p.judges()
	if err != nil {
		return nil, err
	}
	needFace, needCLIP, needSim := p.needs()
	s := &scorer{}
	if needFace {
		if s.face, err = judges.Faces.Open(j.face); err != nil {
			return nil, fmt.Errorf("face_judge %s: %w", judgeLabel(j.face), err)
		}
	}
	if needCLIP {
		if s.clip, err = judges.ImageTexts.Open(j.clip); err != nil {
			s.close()
			return nil, fmt.Errorf("clip_judge %s: %w", judgeLabel(j.clip), err)
		}
	}
	if needSim {
		if s.sim, err = judges.ImageSims.Open(j.sim); err != nil {
			s.close()
			return nil, fmt.Errorf("dreamsim_judge %s: %w", judgeLabel(j.sim), err)
		}
	}
	return s, nil
}

// close closes the judges, returning the first error.
func (s *scorer) close() error {
	var errs []error
	if s.face != nil {
		errs = append(errs, s.face.Close())
	}
	if s.clip != nil {
		errs = append(errs, s.clip.Close())
	}
	if s.sim != nil {
		errs = append(errs, s.sim.Close())
	}
	return errors.Join(errs...)
}

// scoreChunk is how many images score decodes and hands the judges at a time: paper-scale
// images (1024² RGBA, 4 MB each) stay bounded in memory; the judges' results do not depend on
// how images are batched.
const scoreChunk = 256

// score embeds every image with each open judge (an image without a face gets no face
// embedding) and its prompt with the image-text judge; with classes, it also picks the class
// whose prompt ("a photo of a <class>.") is nearest to each image.
func (s *scorer) score(rows []EvalImageRow, classes []string) ([]EvalScoreRow, error) {
	var ce [][]float32
	if s.clip != nil && len(classes) > 0 {
		cp := make([]string, len(classes))
		for i, c := range classes {
			cp[i] = tinyclip.ClassPrompt(c)
		}
		var err error
		if ce, err = s.clip.EmbedTexts(cp); err != nil {
			return nil, err
		}
		if err := judgeCount("image-text judge", "class prompts", len(ce), len(cp)); err != nil {
			return nil, err
		}
	}
	out := make([]EvalScoreRow, len(rows))
	for a := 0; a < len(rows); a += scoreChunk {
		b := min(a+scoreChunk, len(rows))
		if err := s.scoreChunk(rows[a:b], out[a:b], classes, ce); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *scorer) scoreChunk(rows []EvalImageRow, out []EvalScoreRow, classes []string, ce [][]float32) error {
	imgs := make([]image.Image, len(rows))
	texts := make([]string, len(rows))
	for i, r := range rows {
		img, err := imageio.Decode(r.Image)
		if err != nil {
			return fmt.Errorf("image %s: %w", r.ID, err)
		}
		imgs[i], texts[i] = img, r.Prompt
		out[i] = EvalScoreRow{ID: r.ID, Method: r.Method, Group: r.Group}
	}
	if s.face != nil {
		emb, found, err := s.face.Embed(imgs)
		if err != nil {
			return err
		}
		if len(emb) != len(rows) || len(found) != len(rows) {
			return fmt.Errorf("face judge: %d embeddings and %d found flags for %d images", len(emb), len(found), len(rows))
		}
		for i := range out {
			if found[i] {
				if len(emb[i]) == 0 {
					return fmt.Errorf("face judge: image %s: a face found with an empty embedding", rows[i].ID)
				}
				out[i].Face = emb[i]
			}
		}
	}
	if s.clip != nil {
		ie, err := s.clip.EmbedImages(imgs)
		if err != nil {
			return err
		}
		te, err := s.clip.EmbedTexts(texts)
		if err != nil {
			return err
		}
		if err := errors.Join(judgeCount("image-text judge", "images", len(ie), len(imgs)), judgeCount("image-text judge", "prompts", len(te), len(texts))); err != nil {
			return err
		}
		for i := range out {
			out[i].Image, out[i].ClipT = ie[i], float32(metrics.Cosine(te[i], ie[i]))
			best := math.Inf(-1)
			for k, c := range ce {
				if v := metrics.Cosine(ie[i], c); v > best {
					best, out[i].Class = v, classes[k]
				}
			}
		}
	}
	if s.sim != nil {
		se, err := s.sim.EmbedImages(imgs)
		if err != nil {
			return err
		}
		if err := judgeCount("image-similarity judge", "images", len(se), len(imgs)); err != nil {
			return err
		}
		for i := range out {
			out[i].Subject = se[i]
		}
	}
	return nil
}

// judgeCount checks that a judge returned one embedding per input.
func judgeCount(judge, what string, got, want int) error {
	if got != want {
		return fmt.Errorf("%s: %d embeddings for %d %s", judge, got, want, what)
	}
	return nil
}

// aggregate computes, per method, Face Sim, Face Div, CLIP-T and DreamSim-style similarity
// over the identities, with bootstrap intervals over identities. Images without a face are
// left out of Face Sim and Face Div and counted in a no_face row (Value of Images) whenever a
// face measure is asked.
func aggregate(rows []EvalImageRow, scores []EvalScoreRow, p *evaluateParams, seed uint64) ([]MetricRow, error) {
	j, err := p.judges()
	if err != nil {
		return nil, err
	}
	needFace, _, _ := p.needs()
	type acc struct {
		groups                  []string
		face, subj, clip, class map[string]metrics.Group
		images, noFace          int
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
		if _, ok := a.clip[r.Group]; !ok {
			a.groups = append(a.groups, r.Group)
		}
		s := scores[i]
		if len(s.Face) > 0 {
			a.face[r.Group] = append(a.face[r.Group], s.Face)
		} else {
			a.noFace++
		}
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
			ids, imgs := len(a.groups), a.images
			if st.name == "face_sim" || st.name == "face_div" {
				ids, imgs = len(a.face), a.images-a.noFace
			}
			v := st.stat(st.groups)
			if math.IsNaN(v) {
				if imgs < a.images {
					return nil, fmt.Errorf("%s %s: not defined: the face judge %s found a face in %d of %d images (%d identities with one)",
						m, st.name, judgeLabel(j.face), imgs, a.images, ids)
				}
				return nil, fmt.Errorf("%s %s: not defined for %d identities", m, st.name, len(st.groups))
			}
			iv := metrics.Interval{Lo: math.NaN(), Hi: math.NaN()}
			if p.Bootstrap > 0 {
				iv = metrics.Bootstrap(st.groups, st.stat, p.Bootstrap, 0.95, seed+uint64(100*mi+k))
			}
			out = append(out, MetricRow{Table: table, Method: m, Metric: st.name, Value: v, Lo: iv.Lo, Hi: iv.Hi,
				Identities: int32(ids), Images: int32(imgs), Judge: j.metricJudge(st.name)})
		}
		if needFace {
			out = append(out, MetricRow{Table: p.Table, Method: m, Metric: "no_face", Value: float64(a.noFace), Lo: float64(a.noFace), Hi: float64(a.noFace), // a count: exact
				Identities: int32(len(a.groups)), Images: int32(a.images), Judge: j.metricJudge("no_face")})
		}
	}
	return out, nil
}
