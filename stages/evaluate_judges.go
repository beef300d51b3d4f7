package stages

// The evaluate stage's judges (models/judges): which judge scores which measure, how its YAML
// parameter reads, and how a table names it.

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cocoflow/cocoflow/models/judges"
	"github.com/cocoflow/cocoflow/models/judges/tinyjudge"

	// The paper's judges register their kinds (insightface, clip-onnx, dreamsim-onnx) when linked.
	_ "github.com/cocoflow/cocoflow/models/judges/clipvit"
	_ "github.com/cocoflow/cocoflow/models/judges/dreamsim"
	_ "github.com/cocoflow/cocoflow/models/judges/insightface"
)

// The judges a table is scored with when its config names none: the tiny world's own.
const (
	defaultFaceJudge     = tinyjudge.FaceKind
	defaultCLIPJudge     = tinyjudge.CLIPKind
	defaultDreamSimJudge = tinyjudge.SubjectKind
)

// judgeSpec reads a judge parameter ({kind: K, path: P, option: value...}) into a spec: kind
// defaults to defKind; legacyPath (face_model, clip_model: the parameters from before judges had
// kinds) is the path of the tiny kind legacyKind when the mapping gives none.
func judgeSpec(param string, m map[string]string, defKind, legacy, legacyKind, legacyPath string) (judges.Spec, error) {
	s := judges.Spec{Kind: m["kind"], Path: m["path"]}
	if s.Kind == "" {
		s.Kind = defKind
	}
	if legacyPath != "" {
		switch {
		case s.Kind != legacyKind:
			return s, fmt.Errorf("%s: %s is the folder of the %s judge; give %s.path for kind %s", param, legacy, legacyKind, param, s.Kind)
		case s.Path != "" && s.Path != legacyPath:
			return s, fmt.Errorf("%s: both %s.path (%s) and %s (%s) given", param, param, s.Path, legacy, legacyPath)
		}
		s.Path = legacyPath
	}
	for k, v := range m {
		if k == "kind" || k == "path" {
			continue
		}
		if s.Options == nil {
			s.Options = map[string]string{}
		}
		s.Options[k] = v
	}
	return s, nil
}

// evalJudges are the judge specs of one evaluation.
type evalJudges struct {
	face, clip, sim judges.Spec
}

func (p *evaluateParams) judges() (evalJudges, error) {
	var j evalJudges
	var err error
	if j.face, err = judgeSpec("face_judge", p.FaceJudge, defaultFaceJudge, "face_model", tinyjudge.FaceKind, p.FaceModel); err != nil {
		return j, err
	}
	if j.clip, err = judgeSpec("clip_judge", p.CLIPJudge, defaultCLIPJudge, "clip_model", tinyjudge.CLIPKind, p.CLIPModel); err != nil {
		return j, err
	}
	simLegacy := ""
	if p.DreamSimJudge["kind"] == "" || p.DreamSimJudge["kind"] == tinyjudge.SubjectKind {
		simLegacy = p.CLIPModel // the stand-in is the tiny CLIP's own embedding
	}
	if j.sim, err = judgeSpec("dreamsim_judge", p.DreamSimJudge, defaultDreamSimJudge, "clip_model", tinyjudge.SubjectKind, simLegacy); err != nil {
		return j, err
	}
	return j, nil
}

// check looks every kind up in its registry.
func (j evalJudges) check() error {
	if _, err := judges.Faces.Lookup(j.face.Kind); err != nil {
		return fmt.Errorf("face_judge: %w", err)
	}
	if _, err := judges.ImageTexts.Lookup(j.clip.Kind); err != nil {
		return fmt.Errorf("clip_judge: %w", err)
	}
	if _, err := judges.ImageSims.Lookup(j.sim.Kind); err != nil {
		return fmt.Errorf("dreamsim_judge: %w", err)
	}
	return nil
}

// needs says which judges the measures of p use.
func (p *evaluateParams) needs() (face, clip, sim bool) {
	face = slices.Contains(p.Metrics, "face_sim") || slices.Contains(p.Metrics, "face_div")
	clip = slices.Contains(p.Metrics, "clip_t") || p.ClassTable != ""
	sim = slices.Contains(p.Metrics, "dreamsim")
	return face, clip, sim
}

// judgeLabel names a judge in a table header: its kind, the model folder's name and its
// options ("insightface buffalo_l detector=scrfd").
func judgeLabel(s judges.Spec) string {
	parts := []string{s.Kind}
	if s.Path != "" {
		parts = append(parts, filepath.Base(filepath.Clean(s.Path)))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Options)) {
		parts = append(parts, k+"="+s.Options[k])
	}
	return strings.Join(parts, " ")
}

// metricJudge is what a metric row says computed it: the judge, and how its number is read.
func (j evalJudges) metricJudge(metric string) string {
	switch metric {
	case "face_sim", "face_div", "no_face":
		return judgeLabel(j.face)
	case "clip_t":
		return judgeLabel(j.clip) + ", raw cosine"
	case "class_acc":
		return judgeLabel(j.clip)
	case "dreamsim":
		return judgeLabel(j.sim) + ", cosine = 1 − distance"
	}
	return ""
}
