package stages

// The pretrain stage's identity encoder: models/judges/tinyface on the images' identities.

import (
	"context"
	"fmt"

	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/pipeline"
)

// faceOptions returns tinyface.DefaultOptions with this stage's architecture, steps, batch,
// learning rate, warm-up and seed, validated.
func (p *pretrainParams) faceOptions(seed uint64) (tinyface.Options, error) {
	o := tinyface.DefaultOptions()
	if err := overlayJSON(&o.Config, p.FaceConfig, "face_config"); err != nil {
		return o, err
	}
	o.Steps, o.BatchSize, o.LearningRate, o.WarmupSteps, o.Seed = p.FaceSteps, p.FaceBatch, p.FaceLR, p.FaceWarmup, seed
	o.CheckpointEvery = p.CheckpointEvery
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("face: %w", err)
	}
	return o, nil
}

func pretrainFaceModel(ctx context.Context, job *pipeline.Job, p *pretrainParams, in *pretrainInputs) (PretrainedModelRow, []PretrainLogRow, error) {
	opt, err := p.faceOptions(job.Seed)
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	settings := opt
	settings.CheckpointEvery = 0 // not part of what the model is
	var train, held tinyface.Data
	unknown := 0
	for _, r := range in.rows {
		switch {
		case r.Identity < 0:
			unknown++
		case in.held(p, r.ID):
			held.Images, held.Labels = append(held.Images, in.decoded[r.ID]), append(held.Labels, int(r.Identity))
		default:
			train.Images, train.Labels = append(train.Images, in.decoded[r.ID]), append(train.Labels, int(r.Identity))
		}
	}
	job.Record("face_data", map[string]int{"train": len(train.Images), "held_out": len(held.Images), "unknown_identity": unknown})
	return pretrainModel(job, p, modelSpec[*tinyface.Model]{
		name: pretrainFace, metric: "accuracy", steps: opt.Steps, settings: settings, ports: []string{"images"},
		load: tinyface.Load, config: func(m *tinyface.Model) any { return m.Config() },
		train: func(dir string, report stepReport) (*tinyface.Model, func(string) error, error) {
			job.Log.Info("training the identity encoder", "images", len(train.Images), "steps", opt.Steps, "batch", opt.BatchSize)
			opt.CheckpointDir = dir
			m, err := tinyface.Train(ctx, train, opt, func(pr tinyface.Progress) { report(pr.Step-1, pr.Loss, pr.Accuracy, pr.Elapsed) })
			if err != nil {
				return nil, nil, err
			}
			opt.CheckpointDir, opt.CheckpointEvery = "", 0 // the saved options must not depend on the workdir
			m.Meta, err = withOptionsMeta(m.Meta, opt)
			return m, m.Save, err
		},
		evaluate: func(m *tinyface.Model) (any, error) {
			if len(held.Images) == 0 {
				return nil, nil
			}
			rep, err := tinyface.Evaluate(m, held)
			if err != nil {
				return nil, err
			}
			job.Log.Info("identity encoder on held-out identities", "report", rep.String())
			return rep, nil
		},
	})
}
