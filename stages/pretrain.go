package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"slices"
	"strings"
	"time"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/pipeline"
)

// The models the pretrain stage trains, by the names used in its params and outputs.
const (
	pretrainGenerator = "generator" // models/family/tiny: the tiny latent diffusion generator
	pretrainFace      = "face"      // models/judges/tinyface: the tiny identity encoder
	pretrainCLIP      = "clip"      // models/judges/tinyclip: the tiny CLIP
)

// pretrainParams are the pretrain stage's parameters. Step, batch, learning-rate and warm-up
// defaults are the packages' own defaults (TestPretrainDefaultsAreThePackagesDefaults).
type pretrainParams struct {
	Models    []string `param:"models" default:"generator,face,clip" enum:"generator,face,clip" min:"1" doc:"models to train, in this order: generator (models/family/tiny), face (models/judges/tinyface), clip (models/judges/tinyclip)"`
	EvalSplit string   `param:"eval_split" default:"test" doc:"image split held out from training and evaluated on (\"\": train on every image, evaluate nothing)"`

	GeneratorConfig        string   `param:"generator_config" doc:"JSON object overriding fields of tiny.DefaultConfig, e.g. {\"width\": 64} (\"\": the default architecture)"`
	GeneratorSteps         int      `param:"generator_steps" default:"2000" min:"1" doc:"generator: optimizer steps"`
	GeneratorBatch         int      `param:"generator_batch" default:"32" min:"1" doc:"generator: latents per step"`
	GeneratorLR            float64  `param:"generator_lr" default:"0.002" min:"0" doc:"generator: peak learning rate (AdamW, warm-up then cosine decay)"`
	GeneratorWarmup        int      `param:"generator_warmup" default:"100" min:"1" doc:"generator: linear warm-up steps"`
	GeneratorSNRFloor      float64  `param:"generator_snr_floor" default:"1" min:"0" doc:"generator: lower bound of the x̂₀ loss weight under Min-SNR-5 (tiny.PretrainOptions.SNRFloor; 0: plain Min-SNR)"`
	GeneratorSubjectWeight float64  `param:"generator_subject_weight" default:"1" min:"0" doc:"generator: ε-MSE weight of latent cells on the subject (encode's latent-resolution mask) relative to the background, scaled to mean 1 per latent (> 0; 1: uniform; tiny.PretrainOptions.SubjectWeight)"`
	GeneratorInit          string   `param:"generator_init" doc:"generator: folder of a saved generator (a pretrain run's generator/final, or models/family/tiny/weights) to fine-tune: the weights under generator_init_scopes start from it (\"\": random initialisation)"`
	GeneratorInitScopes    []string `param:"generator_init_scopes" default:"dit" enum:"text,dit" doc:"generator: which parts start from generator_init: text (the text encoder), dit (the denoiser)"`
	GeneratorEvalSamples   int      `param:"generator_eval_samples" default:"256" min:"0" doc:"generator: held-out latents of the ε-MSE evaluation (0: none)"`

	FaceConfig string  `param:"face_config" doc:"JSON object overriding fields of tinyface.DefaultConfig, e.g. {\"dim\": 32}"`
	FaceSteps  int     `param:"face_steps" default:"1500" min:"1" doc:"face: optimizer steps"`
	FaceBatch  int     `param:"face_batch" default:"64" min:"2" doc:"face: images per step"`
	FaceLR     float64 `param:"face_lr" default:"0.002" min:"0" doc:"face: peak Adam learning rate"`
	FaceWarmup int     `param:"face_warmup" default:"50" min:"0" doc:"face: linear warm-up steps"`

	CLIPConfig string  `param:"clip_config" doc:"JSON object overriding fields of tinyclip.DefaultConfig, e.g. {\"dim\": 32}"`
	CLIPSteps  int     `param:"clip_steps" default:"800" min:"1" doc:"clip: optimizer steps"`
	CLIPBatch  int     `param:"clip_batch" default:"64" min:"2" doc:"clip: images per step"`
	CLIPLR     float64 `param:"clip_lr" default:"0.003" min:"0" doc:"clip: peak Adam learning rate"`
	CLIPWarmup int     `param:"clip_warmup" default:"50" min:"0" doc:"clip: linear warm-up steps"`

	CheckpointEvery int `param:"checkpoint_every" default:"100" min:"1" fingerprint:"-" doc:"steps between checkpoints of each model"`
}

// check validates what the tags cannot: distinct models, positive learning rates and the
// architecture overrides.
func (p *pretrainParams) check() error {
	for i, m := range p.Models {
		if slices.Contains(p.Models[:i], m) {
			return fmt.Errorf("models: %s is listed twice", m)
		}
	}
	for _, lr := range []struct {
		name string
		v    float64
	}{{"generator_lr", p.GeneratorLR}, {"face_lr", p.FaceLR}, {"clip_lr", p.CLIPLR}} {
		if !(lr.v > 0) {
			return fmt.Errorf("%s = %g, want > 0", lr.name, lr.v)
		}
	}
	if _, err := p.generatorConfig(); err != nil {
		return err
	}
	if _, err := p.generatorOptions(1); err != nil {
		return err
	}
	if _, err := p.faceOptions(1); err != nil {
		return err
	}
	_, err := p.clipOptions(1)
	return err
}

// overlayJSON decodes the JSON object text onto dst, so that the fields it names replace
// dst's and the others stay; unknown fields are errors naming param. Empty text changes nothing.
func overlayJSON(dst any, text, param string) error {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%s: %w", param, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: unexpected text after the JSON object", param)
	}
	return nil
}

func init() {
	pipeline.Register(pipeline.Spec[pretrainParams]{
		Name:    "pretrain",
		Version: "1",
		Doc: "Trains the tiny world's models from scratch on prep's output: the tiny latent diffusion " +
			"generator (ε-prediction on latents with their captions, no identity labels), the tiny " +
			"identity encoder (ArcFace on identity labels) and the tiny CLIP (InfoNCE on image-caption " +
			"pairs). Images of eval_split are held out and evaluated on: generator ε-MSE with and " +
			"without caption, face same/different cosine and AUC, clip retrieval and class accuracy. " +
			"Each model checkpoints in <stage>/<model>/checkpoints and resumes; its final folder " +
			"<stage>/<model>/final is what tools/install-weights.sh commits, and is not retrained while " +
			"its fingerprint holds. Logs to <model>_log.csv and <model>_loss.png as training goes.",
		Inputs: []pipeline.Port{
			{Name: "images", Doc: "ingest output: images, identities, classes and splits"},
			{Name: "latents", Doc: "encode latents (generator)", Optional: true},
			{Name: "tokens", Doc: "encode tokens (generator)", Optional: true},
			{Name: "captions", Doc: "caption output (clip)", Optional: true},
		},
		Outputs: []pipeline.Port{
			{Name: "models", Doc: "one row per trained model", Schema: PretrainedModelRow{}},
			{Name: "log", Doc: "one row per model and step", Schema: PretrainLogRow{}},
		},
		Check: (*pretrainParams).check,
		Run:   runPretrain,
	})
}

// pretrainStepHook, when set by tests, is called after every training step of every model.
var pretrainStepHook func(model string, step int)

func runPretrain(ctx context.Context, job *pipeline.Job, p *pretrainParams) error {
	in, err := readPretrainInputs(job, p)
	if err != nil {
		return err
	}
	var models []PretrainedModelRow
	var logs []PretrainLogRow
	for _, name := range p.Models {
		var row PretrainedModelRow
		var rows []PretrainLogRow
		switch name {
		case pretrainGenerator:
			row, rows, err = pretrainGeneratorModel(ctx, job, p, in)
		case pretrainFace:
			row, rows, err = pretrainFaceModel(ctx, job, p, in)
		case pretrainCLIP:
			row, rows, err = pretrainCLIPModel(ctx, job, p, in)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		models = append(models, row)
		logs = append(logs, rows...)
	}
	if err := pipeline.WriteRows(job, job.Output("models"), models, 1); err != nil {
		return err
	}
	return pipeline.WriteRows(job, job.Output("log"), logs, 20000)
}

// pretrainInputs is what the stage read from its inputs.
type pretrainInputs struct {
	images  *pipeline.Dataset
	rows    []ImageRow
	split   map[string]string // image id → split
	decoded map[string]image.Image
}

func readPretrainInputs(job *pipeline.Job, p *pretrainParams) (*pretrainInputs, error) {
	need := map[string][]string{pretrainGenerator: {"latents", "tokens"}, pretrainCLIP: {"captions"}}
	for _, m := range p.Models {
		for _, port := range need[m] {
			if job.Input(port) == nil {
				return nil, fmt.Errorf("model %s needs input %q", m, port)
			}
		}
	}
	ds := job.Input("images")
	in := &pretrainInputs{images: ds, split: map[string]string{}, decoded: map[string]image.Image{}}
	decode := slices.Contains(p.Models, pretrainFace) || slices.Contains(p.Models, pretrainCLIP)
	splits := map[string]int{}
	err := eachRow(ds, func(where string, r ImageRow) error {
		if _, dup := in.split[r.ID]; dup {
			return fmt.Errorf("%s (image %s): the image id appears twice", where, r.ID)
		}
		in.split[r.ID] = r.Split
		splits[r.Split]++
		if decode {
			img, err := imageio.Decode(r.Image)
			if err != nil {
				return fmt.Errorf("%s (image %s): %w", where, r.ID, err)
			}
			in.decoded[r.ID] = img
		}
		r.Image, r.Mask = nil, nil // decoded above; the bytes are not needed again
		in.rows = append(in.rows, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if p.EvalSplit != "" && splits[p.EvalSplit] == 0 {
		return nil, fmt.Errorf("%s: no image has split %q to hold out (splits: %v); set eval_split to one of them, or \"\" for none", ds.Dir, p.EvalSplit, splits)
	}
	if p.EvalSplit != "" && len(splits) == 1 {
		return nil, fmt.Errorf("%s: every image has split %q: nothing is left to train on", ds.Dir, p.EvalSplit)
	}
	return in, nil
}

// eachRow calls fn with every row of ds, in order, and where the row is ("<shard file>: row
// <n>"); it stops at fn's first error.
func eachRow[T any](ds *pipeline.Dataset, fn func(where string, row T) error) error {
	for i := range ds.NumShards() {
		rows, err := pipeline.ReadShard[T](ds, i)
		if err != nil {
			return err
		}
		for n, r := range rows {
			if err := fn(fmt.Sprintf("%s: row %d", ds.ShardPath(i), n), r); err != nil {
				return err
			}
		}
	}
	return nil
}

// held reports whether image id is held out for evaluation.
func (in *pretrainInputs) held(p *pretrainParams, id string) bool {
	return p.EvalSplit != "" && in.split[id] == p.EvalSplit
}

// modelFingerprint hashes what determines a model: the stage version, the model's
// configuration and options, the seed, the held-out split and the contents of the inputs it reads.
func modelFingerprint(job *pipeline.Job, name string, settings any, evalSplit string, ports ...string) (string, error) {
	inputs := map[string]string{}
	for _, port := range ports {
		inputs[port] = job.Input(port).ContentHash()
	}
	b, err := json.Marshal(map[string]any{
		"kind": job.Kind.Name + "/" + job.Kind.Version, "model": name, "settings": settings,
		"seed": job.Seed, "eval_split": evalSplit, "inputs": inputs,
	})
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// stepReport records step (0-based) of a model's training: its loss and extra metric.
type stepReport func(step int, loss, metric float64, elapsed time.Duration)

// modelSpec is what differs between the stage's models for pretrainModel.
type modelSpec[M any] struct {
	name, metric string   // the model's name (pretrainGenerator, ...) and the log's extra metric
	steps        int      // optimizer steps
	settings     any      // what shapes the model besides the seed, the held-out split and its inputs
	ports        []string // the inputs it reads
	load         func(dir string) (M, error)
	config       func(M) any // the architecture, for the output row
	// train trains the model with its checkpoints in dir and returns it with the function
	// that saves it.
	train func(dir string, report stepReport) (M, func(dir string) error, error)
	// evaluate returns the model's held-out evaluation, nil when there is nothing to evaluate.
	evaluate func(M) (any, error)
}

// pretrainModel trains one model of the stage unless its final folder is up to date for its
// fingerprint (settings, seed, held-out split, input contents), saves it there and loads the
// final folder back (so a trained and a reused model are the same bytes), evaluates it on the
// held-out split, and returns its output row and log. A failed or cancelled training keeps its
// log and checkpoints.
func pretrainModel[M any](job *pipeline.Job, p *pretrainParams, m modelSpec[M]) (PretrainedModelRow, []PretrainLogRow, error) {
	fp, err := modelFingerprint(job, m.name, m.settings, p.EvalSplit, m.ports...)
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	r := &pretrainRun{job: job, name: m.name, metric: m.metric, steps: m.steps, every: p.CheckpointEvery, fingerprint: fp}
	done, err := r.start()
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	if !done {
		_, save, err := m.train(r.checkpoints(), r.report)
		if err := r.finish(err); err != nil {
			return PretrainedModelRow{}, nil, err
		}
		if err := r.saveFinal(save); err != nil {
			return PretrainedModelRow{}, nil, err
		}
	}
	model, err := m.load(r.final())
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	eval, err := m.evaluate(model)
	if err != nil {
		return PretrainedModelRow{}, nil, fmt.Errorf("evaluation on split %s: %w", p.EvalSplit, err)
	}
	row, err := r.row(m.config(model), eval)
	return row, r.rows, err
}

// withOptionsMeta returns a copy of meta with opt as "options", where the tinyface and tinyclip
// models keep their training options (Train puts the checkpoint folder there too; the stage
// leaves it out so that the saved files do not depend on where the run was).
func withOptionsMeta(meta map[string]string, opt any) (map[string]string, error) {
	b, err := json.Marshal(opt)
	if err != nil {
		return nil, err
	}
	out := map[string]string{"options": string(b)}
	for k, v := range meta {
		if k != "options" {
			out[k] = v
		}
	}
	return out, nil
}
