package stages

// The pretrain stage's CLIP: models/judges/tinyclip on the images and their captions.

import (
	"context"
	"fmt"
	"strings"

	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/pipeline"
)

// clipOptions returns tinyclip.DefaultOptions with this stage's architecture, steps, batch,
// learning rate, warm-up and seed, validated.
func (p *pretrainParams) clipOptions(seed uint64) (tinyclip.Options, error) {
	o, err := tinyclip.DefaultOptions()
	if err != nil {
		return o, err
	}
	if err := overlayJSON(&o.Config, p.CLIPConfig, "clip_config"); err != nil {
		return o, err
	}
	o.Steps, o.BatchSize, o.LearningRate, o.WarmupSteps, o.Seed = p.CLIPSteps, p.CLIPBatch, p.CLIPLR, p.CLIPWarmup, seed
	o.CheckpointEvery = p.CheckpointEvery
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("clip: %w", err)
	}
	return o, nil
}

func pretrainCLIPModel(ctx context.Context, job *pipeline.Job, p *pretrainParams, in *pretrainInputs) (PretrainedModelRow, []PretrainLogRow, error) {
	opt, err := p.clipOptions(job.Seed)
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	settings := opt
	settings.CheckpointEvery = 0 // not part of what the model is
	captions := map[string][]string{}
	err = eachRow(job.Input("captions"), func(where string, c CaptionRow) error {
		if _, ok := in.split[c.ID]; !ok {
			return fmt.Errorf("%s (image %s, caption %d): no such image in %s (inputs from different preps?)", where, c.ID, c.K, in.images.Dir)
		}
		if c.Error == "" && strings.TrimSpace(c.Text) != "" {
			captions[c.ID] = append(captions[c.ID], c.Text)
		}
		return nil
	})
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	var train tinyclip.Data
	var held tinyclip.EvalData
	uncaptioned := 0
	for _, r := range in.rows {
		caps := captions[r.ID]
		switch {
		case len(caps) == 0:
			uncaptioned++
		case in.held(p, r.ID):
			held.Images, held.Captions, held.Classes = append(held.Images, in.decoded[r.ID]), append(held.Captions, caps[0]), append(held.Classes, r.Class)
		default:
			train.Images, train.Captions = append(train.Images, in.decoded[r.ID]), append(train.Captions, caps)
		}
	}
	job.Record("clip_data", map[string]int{"train": len(train.Images), "held_out": len(held.Images), "without_caption": uncaptioned})
	return pretrainModel(job, p, modelSpec[*tinyclip.Model]{
		name: pretrainCLIP, metric: "accuracy", steps: opt.Steps, settings: settings, ports: []string{"images", "captions"},
		load: tinyclip.Load, config: func(m *tinyclip.Model) any { return m.Config() },
		train: func(dir string, report stepReport) (*tinyclip.Model, func(string) error, error) {
			job.Log.Info("training the tiny CLIP", "images", len(train.Images), "steps", opt.Steps, "batch", opt.BatchSize)
			opt.CheckpointDir = dir
			m, err := tinyclip.Train(ctx, train, opt, func(pr tinyclip.Progress) { report(pr.Step-1, pr.Loss, pr.Accuracy, pr.Elapsed) })
			if err != nil {
				return nil, nil, err
			}
			opt.CheckpointDir, opt.CheckpointEvery = "", 0 // the saved options must not depend on the workdir
			m.Meta, err = withOptionsMeta(m.Meta, opt)
			return m, m.Save, err
		},
		evaluate: func(m *tinyclip.Model) (any, error) {
			if len(held.Images) < 2 {
				return nil, nil
			}
			rep, err := tinyclip.Evaluate(m, held, nil, 0)
			if err != nil {
				return nil, err
			}
			job.Log.Info("tiny CLIP on held-out images", "class_acc", rep.ClassAcc, "retrieval_top1", rep.RetrievalTop1, "clip_t", rep.CLIPT)
			return rep, nil
		},
	})
}
