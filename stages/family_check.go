package stages

import (
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/pipeline"
)

// checkFamily is the config-load check of a stage that loads a model family: an unknown family
// is reported at its family value, a model folder that is missing or does not fit the family
// (its Spec.Check: files, configs, graph signatures) at its model_dir value.
func checkFamily(name, dir string) error {
	if _, err := family.Lookup(name); err != nil {
		return pipeline.ParamErr("family", err)
	}
	return pipeline.ParamErr("model_dir", family.Check(name, dir))
}
