package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/judges/tinyclip"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
	"github.com/cocoflow/cocoflow/models/text"
	"github.com/cocoflow/cocoflow/pipeline"
	"github.com/cocoflow/cocoflow/pipeline/chart"
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

// generatorConfig returns the generator's architecture: tiny.DefaultConfig overridden by
// generator_config. It returns an error naming the parameter when the JSON or the result is
// invalid.
func (p *pretrainParams) generatorConfig() (tiny.Config, error) {
	tok, err := tiny.Tokenizer()
	if err != nil {
		return tiny.Config{}, err
	}
	cfg := tiny.DefaultConfig(tok.VocabSize())
	if err := overlayJSON(&cfg, p.GeneratorConfig, "generator_config"); err != nil {
		return tiny.Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return tiny.Config{}, fmt.Errorf("generator_config: %w", err)
	}
	return cfg, nil
}

// generatorOptions returns tiny.DefaultPretrainOptions with this stage's steps, batch,
// learning rate, warm-up, SNR floor, subject weight and seed (without the checkpoint folder),
// validated.
func (p *pretrainParams) generatorOptions(seed uint64) (tiny.PretrainOptions, error) {
	o := tiny.DefaultPretrainOptions()
	o.Steps, o.BatchSize, o.LearningRate, o.WarmupSteps = p.GeneratorSteps, p.GeneratorBatch, p.GeneratorLR, p.GeneratorWarmup
	o.SNRFloor, o.SubjectWeight, o.Seed = p.GeneratorSNRFloor, p.GeneratorSubjectWeight, seed
	o.CheckpointEvery = p.CheckpointEvery
	if err := o.Validate(); err != nil {
		return o, fmt.Errorf("generator: %w", err)
	}
	return o, nil
}

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

// GeneratorEval is the held-out evaluation of the tiny generator: the ε-prediction MSE on
// held-out latents at uniform timesteps, with each latent's caption and with the empty caption.
type GeneratorEval struct {
	Samples       int     `json:"samples"`
	EpsMSECaption float64 `json:"eps_mse_caption"`
	EpsMSEEmpty   float64 `json:"eps_mse_empty"`
	// CaptionGain is EpsMSEEmpty − EpsMSECaption: how much the caption helps the denoiser.
	CaptionGain float64 `json:"caption_gain"`
	// ConceptSwap[c][d] is how much the ε-MSE of held-out latents whose caption names concept
	// word c ("boy") rises, on average, when that word is replaced by d ("girl"): how much the
	// denoiser draws on what tells c from d. ConceptSamples[c] counts those latents, ConceptGain
	// averages the rise over all of them and all d ≠ c. Absent with fewer than two concept words.
	ConceptSwap    map[string]map[string]float64 `json:"concept_swap,omitempty"`
	ConceptSamples map[string]int                `json:"concept_samples,omitempty"`
	ConceptGain    float64                       `json:"concept_gain,omitempty"`
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
			row, rows, err = pretrainTheGenerator(ctx, job, p, in)
		case pretrainFace:
			row, rows, err = pretrainTheFace(ctx, job, p, in)
		case pretrainCLIP:
			row, rows, err = pretrainTheCLIP(ctx, job, p, in)
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

// pretrainRun is the bookkeeping of one model's training in job.Dir: its folder <name>/ (with
// checkpoints/, final/, fingerprint and eval.json) and its log <name>_log.csv / <name>_loss.png.
type pretrainRun struct {
	job         *pipeline.Job
	name        string
	metric      string // name of the extra metric
	steps       int
	every       int // checkpoint interval: the CSV is written at every checkpoint
	fingerprint string
	rows        []PretrainLogRow
	prog        *pipeline.Progress
	csvErr      error
}

func (r *pretrainRun) dir() string         { return filepath.Join(r.job.Dir, r.name) }
func (r *pretrainRun) checkpoints() string { return filepath.Join(r.dir(), "checkpoints") }
func (r *pretrainRun) final() string       { return filepath.Join(r.dir(), "final") }
func (r *pretrainRun) csvPath() string     { return filepath.Join(r.job.Dir, r.name+"_log.csv") }
func (r *pretrainRun) pngPath() string     { return filepath.Join(r.job.Dir, r.name+"_loss.png") }

// start prepares the model's folder and reports whether its final folder is complete for this
// fingerprint (then it is not retrained). Checkpoints, final folder and log made with another
// fingerprint are removed, so a run never resumes from another configuration's checkpoint.
func (r *pretrainRun) start() (done bool, err error) {
	fpPath := filepath.Join(r.dir(), "fingerprint")
	old, _ := os.ReadFile(fpPath)
	if strings.TrimSpace(string(old)) != r.fingerprint {
		if len(old) > 0 {
			r.job.Log.Info("model settings or inputs changed: training from scratch", "model", r.name)
		}
		for _, path := range []string{r.dir(), r.csvPath(), r.pngPath()} {
			if err := os.RemoveAll(path); err != nil {
				return false, err
			}
		}
		if err := os.MkdirAll(r.dir(), 0o755); err != nil {
			return false, err
		}
		if err := pipeline.WriteFileAtomic(fpPath, []byte(r.fingerprint+"\n")); err != nil {
			return false, err
		}
	}
	r.rows, err = readPretrainLog(r.csvPath(), r.name, r.metric)
	if err != nil {
		return false, err
	}
	done = true
	for _, f := range []string{tiny.ConfigFile, engine.CheckpointFile} { // every model package's Save writes these two
		if _, err := os.Stat(filepath.Join(r.final(), f)); err != nil {
			done = false
		}
	}
	if done {
		r.job.Log.Info("final model exists for these settings: not retrained", "model", r.name, "dir", r.final())
	}
	return done, nil
}

// report records step (0-based) of the model's training.
func (r *pretrainRun) report(step int, loss, metric float64, elapsed time.Duration) {
	if r.prog == nil {
		r.prog = r.job.Progress(r.name, r.steps-step, "steps")
	}
	for len(r.rows) > 0 && int(r.rows[len(r.rows)-1].Step) >= step {
		r.rows = r.rows[:len(r.rows)-1]
	}
	r.rows = append(r.rows, PretrainLogRow{Model: r.name, Step: int32(step), Loss: float32(loss), Metric: float32(metric),
		MetricName: r.metric, Seconds: float32(elapsed.Seconds())})
	if step%10 == 0 || (step+1)%r.every == 0 || step == r.steps-1 {
		if err := writePretrainLog(r.csvPath(), r.metric, r.rows); err != nil && r.csvErr == nil {
			r.csvErr = err
		}
	}
	if step%50 == 0 {
		_ = r.plot() // a figure that could not be drawn now is drawn again at the end
	}
	r.prog.Add(1)
	if pretrainStepHook != nil {
		pretrainStepHook(r.name, step)
	}
}

// finish writes the log and its figure; trainErr is the training's result, returned first.
func (r *pretrainRun) finish(trainErr error) error {
	r.prog.Done()
	err := errors.Join(r.csvErr, writePretrainLog(r.csvPath(), r.metric, r.rows), r.plot())
	if trainErr != nil {
		return trainErr
	}
	return err
}

func (r *pretrainRun) plot() error {
	var x, loss, metric []float64
	for _, row := range r.rows {
		x = append(x, float64(row.Step))
		loss = append(loss, float64(row.Loss))
		metric = append(metric, float64(row.Metric))
	}
	img := chart.Plot{Title: "pretrain " + r.name, XLabel: "step", LogY: r.name == pretrainGenerator, Smooth: 10, Series: []chart.Series{
		{Name: "loss", X: x, Y: loss}, {Name: r.metric, X: x, Y: metric},
	}}.Draw()
	data, err := imageio.PNG(img)
	if err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(r.pngPath(), data)
}

// saveFinal writes the final folder with save, under a temporary name renamed into place.
func (r *pretrainRun) saveFinal(save func(dir string) error) error {
	tmp := r.final() + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := save(tmp); err != nil {
		return err
	}
	if err := os.RemoveAll(r.final()); err != nil {
		return err
	}
	return os.Rename(tmp, r.final())
}

// row makes the model's output row from its final folder and evaluation, and records the
// evaluation (in the run manifest and <name>/eval.json).
func (r *pretrainRun) row(config any, eval any) (PretrainedModelRow, error) {
	cfg, err := json.Marshal(config)
	if err != nil {
		return PretrainedModelRow{}, err
	}
	ev := []byte("{}")
	if eval != nil {
		if ev, err = json.Marshal(eval); err != nil {
			return PretrainedModelRow{}, err
		}
		r.job.Record(r.name, eval)
	}
	if err := pipeline.WriteFileAtomic(filepath.Join(r.dir(), "eval.json"), append(ev, '\n')); err != nil {
		return PretrainedModelRow{}, err
	}
	entries, err := os.ReadDir(r.final())
	if err != nil {
		return PretrainedModelRow{}, err
	}
	row := PretrainedModelRow{Name: r.name, Config: string(cfg), Eval: string(ev), Steps: int32(r.steps), Fingerprint: r.fingerprint}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(r.final(), e.Name()))
		if err != nil {
			return PretrainedModelRow{}, err
		}
		sum := sha256.Sum256(data)
		row.Files = append(row.Files, PretrainFileItem{Name: e.Name(), Data: data, SHA256: hex.EncodeToString(sum[:])})
	}
	if n := len(r.rows); n > 0 {
		r.job.Record(r.name+"_final_loss", r.rows[n-1].Loss)
	}
	return row, nil
}

// ---- generator ----

// heldLatent is a held-out latent with its first caption, for the generator's evaluation.
type heldLatent struct {
	latent []float32
	captionTokens
}

// captionTokens is one caption's token ids (BOS … EOS, unpadded) with its concept word and the
// token index of that word as the encode stage found it (-1 when it found none); conceptToken
// says whether the two agree.
type captionTokens struct {
	caption    []int32
	concept    string
	conceptPos int
}

// generatorData joins latents with their usable captions: the training set (images outside the
// held-out split, with their latent-resolution subject masks when masks is set) and the
// held-out latents. Errors name the dataset, row and image.
func generatorData(in *pretrainInputs, p *pretrainParams, latents *pipeline.Dataset, tokens *pipeline.Dataset, cfg tiny.Config, masks bool) (tiny.Data, []heldLatent, int, error) {
	tok, err := tiny.Tokenizer()
	if err != nil {
		return tiny.Data{}, nil, 0, err
	}
	captions, err := generatorCaptions(in, tokens, tok, cfg)
	if err != nil {
		return tiny.Data{}, nil, 0, err
	}
	var data tiny.Data
	var held []heldLatent
	skipped := 0
	err = eachRow(latents, func(where string, r LatentRow) error {
		where = fmt.Sprintf("%s (image %s)", where, r.ID)
		if _, ok := in.split[r.ID]; !ok {
			return fmt.Errorf("%s: no such image in %s (inputs from different preps?)", where, in.images.Dir)
		}
		if !equalInts(r.Shape, cfg.LatentShape) || len(r.Latent) != cfg.LatentSize() {
			return fmt.Errorf("%s: latent of shape %v with %d values, the generator wants shape %v (%d values): encode with the tiny family",
				where, r.Shape, len(r.Latent), cfg.LatentShape, cfg.LatentSize())
		}
		caps := captions[r.ID]
		switch {
		case len(caps) == 0:
			skipped++
		case in.held(p, r.ID):
			held = append(held, heldLatent{latent: r.Latent, captionTokens: caps[0]})
		default:
			if masks {
				h, w := cfg.LatentShape[0], cfg.LatentShape[1]
				if len(r.MaskShape) != 2 || int(r.MaskShape[0]) != h || int(r.MaskShape[1]) != w || len(r.Mask) != h*w {
					return fmt.Errorf("%s: mask of shape %v with %d values, generator_subject_weight wants one value per latent cell (%d x %d)",
						where, r.MaskShape, len(r.Mask), h, w)
				}
				data.Masks = append(data.Masks, r.Mask)
			}
			ids := make([][]int32, len(caps))
			for k, c := range caps {
				ids[k] = c.caption
			}
			data.Latents = append(data.Latents, r.Latent)
			data.Captions = append(data.Captions, ids)
		}
		return nil
	})
	if err != nil {
		return tiny.Data{}, nil, 0, err
	}
	if len(data.Latents) == 0 {
		return tiny.Data{}, nil, 0, fmt.Errorf("%s: no captioned latent outside split %q to train on", latents.Dir, p.EvalSplit)
	}
	return data, held, skipped, nil
}

// generatorCaptions returns the usable token ids of each image's captions, in caption order;
// token rows with an error are left out.
func generatorCaptions(in *pretrainInputs, tokens *pipeline.Dataset, tok *text.WordTokenizer, cfg tiny.Config) (map[string][]captionTokens, error) {
	out := map[string][]captionTokens{}
	err := eachRow(tokens, func(where string, r TokenRow) error {
		if r.Error != "" {
			return nil
		}
		where = fmt.Sprintf("%s (image %s, caption %d)", where, r.ID, r.K)
		if _, ok := in.split[r.ID]; !ok {
			return fmt.Errorf("%s: no such image in %s (inputs from different preps?)", where, in.images.Dir)
		}
		ids := r.IDs
		if len(ids) < 2 || ids[0] != tok.BOS() || ids[len(ids)-1] != tok.EOS() || len(ids) > cfg.MaxLength {
			return fmt.Errorf("%s: token ids %v: want BOS (%d) … EOS (%d), at most %d of them", where, ids, tok.BOS(), tok.EOS(), cfg.MaxLength)
		}
		for _, id := range ids {
			if id < 0 || int(id) >= cfg.VocabSize {
				return fmt.Errorf("%s: token id %d outside the vocabulary [0, %d): tokenize with the tiny family", where, id, cfg.VocabSize)
			}
		}
		out[r.ID] = append(out[r.ID], captionTokens{caption: ids, concept: r.Concept, conceptPos: int(r.ConceptPos)})
		return nil
	})
	return out, err
}

func pretrainTheGenerator(ctx context.Context, job *pipeline.Job, p *pretrainParams, in *pretrainInputs) (PretrainedModelRow, []PretrainLogRow, error) {
	cfg, err := p.generatorConfig()
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	opt, err := p.generatorOptions(job.Seed)
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	settings := map[string]any{"config": cfg, "steps": opt.Steps, "batch": opt.BatchSize, "lr": opt.LearningRate, "warmup": opt.WarmupSteps,
		"snr_floor": opt.SNRFloor}
	if opt.WeighsSubject() { // absent when uniform, so that earlier runs keep their fingerprints
		settings["subject_weight"] = opt.SubjectWeight
	}
	if p.GeneratorInit != "" {
		var sum [sha256.Size]byte
		if opt.InitFrom, sum, err = tiny.LoadSum(p.GeneratorInit); err != nil {
			return PretrainedModelRow{}, nil, fmt.Errorf("generator_init: %w", err)
		}
		for _, s := range p.GeneratorInitScopes {
			opt.InitScopes = append(opt.InitScopes, "/"+s)
		}
		settings["init"] = map[string]any{"checkpoint_sha256": hex.EncodeToString(sum[:]), "scopes": p.GeneratorInitScopes}
	}
	fp, err := modelFingerprint(job, pretrainGenerator, settings, p.EvalSplit, "images", "latents", "tokens")
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	data, held, skipped, err := generatorData(in, p, job.Input("latents"), job.Input("tokens"), cfg, opt.WeighsSubject())
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	job.Record("generator_data", map[string]int{"train": len(data.Latents), "held_out": len(held), "without_caption": skipped})
	r := &pretrainRun{job: job, name: pretrainGenerator, metric: "eps_mse", steps: opt.Steps, every: p.CheckpointEvery, fingerprint: fp}
	g, err := trainOrLoad(r, tiny.Load, func() (*tiny.Generator, func(string) error, error) {
		job.Log.Info("pretraining the generator", "latents", len(data.Latents), "steps", opt.Steps, "batch", opt.BatchSize)
		opt.CheckpointDir = r.checkpoints()
		g, err := tiny.Pretrain(ctx, cfg, data, opt, func(step int, out []float64, el time.Duration) {
			r.report(step, out[0], out[2], el)
		})
		if err != nil {
			return nil, nil, err
		}
		return g, g.Save, nil
	})
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	var eval any
	if n := min(p.GeneratorEvalSamples, len(held)); n > 0 {
		ev, err := evaluateGenerator(g, evenlySpaced(held, n), job.Seed)
		if err != nil {
			return PretrainedModelRow{}, nil, fmt.Errorf("evaluation: %w", err)
		}
		job.Log.Info("generator held-out ε-MSE", "caption", ev.EpsMSECaption, "empty", ev.EpsMSEEmpty, "concept_gain", ev.ConceptGain, "samples", ev.Samples)
		eval = ev
	}
	row, err := r.row(g.Config(), eval)
	return row, r.rows, err
}

// evenlySpaced returns n items of xs (n <= len(xs)) evenly spaced over it.
func evenlySpaced[T any](xs []T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = xs[i*len(xs)/n]
	}
	return out
}

// genEvalBatch is the batch size of the generator's evaluation graph.
const genEvalBatch = 32

// evaluateGenerator measures g's ε-prediction MSE on held-out latents: each latent gets a
// timestep drawn uniformly and a noise from (seed, its index), and is denoised with its caption,
// with the empty caption (BOS EOS), and with its caption's concept word replaced by each other
// concept word of the held-out captions (conceptSwaps). The same x_t, t and ε go with every
// caption, so the differences between them are paired.
func evaluateGenerator(g *tiny.Generator, held []heldLatent, seed uint64) (GeneratorEval, error) {
	cfg := g.Config()
	sched, err := diffusion.NewSchedule(cfg.Schedule, cfg.TrainSteps)
	if err != nil {
		return GeneratorEval{}, err
	}
	tok, err := tiny.Tokenizer()
	if err != nil {
		return GeneratorEval{}, err
	}
	backend, err := engine.Backend()
	if err != nil {
		return GeneratorEval{}, err
	}
	exec, err := mlctx.NewExec(backend, g.Context().Reuse(), func(ctx *mlctx.Context, xt, t, ids, eos, eps *Node) *Node {
		pred := g.Denoise(ctx, xt, t, g.Encode(ctx, g.Embed(ctx, ids), eos))
		return ReduceMean(Square(Sub(pred, eps)), 1, 2, 3) // [B]
	})
	if err != nil {
		return GeneratorEval{}, fmt.Errorf("build the evaluation graph: %w", err)
	}
	defer exec.Finalize()
	named, concepts, conceptIDs := heldConcepts(held, tok)
	// captions(i) lists latent i's captions: its own, the empty one, then one per concept word.
	empty := []int32{tok.BOS(), tok.EOS()}
	captions := func(i int) [][]int32 {
		h := held[i]
		out := [][]int32{h.caption, empty}
		for _, id := range conceptIDs {
			c := h.caption
			if named[i] {
				c = slices.Clone(h.caption)
				c[h.conceptPos] = id
			}
			out = append(out, c)
		}
		return out
	}
	L, n, shape := cfg.MaxLength, cfg.LatentSize(), cfg.LatentShape
	mse := make([][]float64, 2+len(concepts)) // [caption variant][latent]
	for k := range mse {
		mse[k] = make([]float64, len(held))
	}
	for start := 0; start < len(held); start += genEvalBatch {
		xt, eps := make([]float32, genEvalBatch*n), make([]float32, genEvalBatch*n)
		ts := make([]int32, genEvalBatch)
		ids := make([][]int32, len(mse))
		eos := make([][]int32, len(mse))
		for b := range genEvalBatch {
			i := min(start+b, len(held)-1) // the last batch is padded with the last latent
			r := rand.New(rand.NewPCG(seed, uint64(i)))
			t := r.IntN(sched.T())
			ts[b] = int32(t)
			abar := sched.AlphaBar(t)
			sa, sb := math.Sqrt(abar), math.Sqrt(1-abar)
			for j, x0 := range held[i].latent {
				z := r.NormFloat64()
				eps[b*n+j] = float32(z)
				xt[b*n+j] = float32(sa*float64(x0) + sb*z)
			}
			for k, c := range captions(i) {
				fitted, e, _ := text.Fit(c, L, tok.EOS(), tok.Pad())
				ids[k] = append(ids[k], fitted...)
				eos[k] = append(eos[k], int32(e))
			}
		}
		for k := range mse {
			out, err := exec.Exec(tensors.FromFlatDataAndDimensions(xt, genEvalBatch, shape[0], shape[1], shape[2]), ts,
				tensors.FromFlatDataAndDimensions(ids[k], genEvalBatch, L), eos[k],
				tensors.FromFlatDataAndDimensions(eps, genEvalBatch, shape[0], shape[1], shape[2]))
			if err != nil {
				return GeneratorEval{}, err
			}
			v, err := tensors.CopyFlatData[float32](out[0])
			out[0].FinalizeAll()
			if err != nil {
				return GeneratorEval{}, err
			}
			for b := range min(genEvalBatch, len(held)-start) {
				mse[k][start+b] = float64(v[b])
			}
		}
	}
	ev := GeneratorEval{Samples: len(held), EpsMSECaption: mean(mse[0]), EpsMSEEmpty: mean(mse[1])}
	ev.CaptionGain = ev.EpsMSEEmpty - ev.EpsMSECaption
	ev.conceptSwaps(held, named, concepts, mse)
	return ev, nil
}

// conceptToken returns the token id of h's concept word, and whether the caption holds that
// word, as one token, at h.conceptPos (only then can it be swapped for another).
func (h heldLatent) conceptToken(tok *text.WordTokenizer) (int32, bool) {
	id, ok := tok.ID(h.concept)
	return id, ok && h.conceptPos >= 0 && h.conceptPos < len(h.caption) && h.caption[h.conceptPos] == id
}

// heldConcepts returns which held-out captions name a concept word that can be swapped, and
// those words, sorted, with their token ids.
func heldConcepts(held []heldLatent, tok *text.WordTokenizer) (named []bool, words []string, ids []int32) {
	byWord := map[string]int32{}
	named = make([]bool, len(held))
	for i, h := range held {
		if id, ok := h.conceptToken(tok); ok {
			named[i], byWord[h.concept] = true, id
		}
	}
	words = slices.Sorted(maps.Keys(byWord))
	for _, w := range words {
		ids = append(ids, byWord[w])
	}
	return named, words, ids
}

// conceptSwaps fills ConceptSwap, ConceptSamples and ConceptGain from the ε-MSE of every
// latent under every caption variant (mse[0]: its caption; mse[2+k]: concept word concepts[k]).
func (ev *GeneratorEval) conceptSwaps(held []heldLatent, named []bool, concepts []string, mse [][]float64) {
	if len(concepts) < 2 {
		return
	}
	ev.ConceptSwap, ev.ConceptSamples = map[string]map[string]float64{}, map[string]int{}
	var gain float64
	var count int
	for i, h := range held {
		if !named[i] {
			continue
		}
		row := ev.ConceptSwap[h.concept]
		if row == nil {
			row = map[string]float64{}
			ev.ConceptSwap[h.concept] = row
		}
		ev.ConceptSamples[h.concept]++
		var sum float64
		for k, d := range concepts {
			if d != h.concept {
				row[d] += mse[2+k][i] - mse[0][i]
				sum += mse[2+k][i] - mse[0][i]
			}
		}
		gain += sum / float64(len(concepts)-1)
		count++
	}
	for c, row := range ev.ConceptSwap {
		for d := range row {
			row[d] /= float64(ev.ConceptSamples[c])
		}
	}
	ev.ConceptGain = gain / float64(count)
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// ---- face ----

func pretrainTheFace(ctx context.Context, job *pipeline.Job, p *pretrainParams, in *pretrainInputs) (PretrainedModelRow, []PretrainLogRow, error) {
	opt, err := p.faceOptions(job.Seed)
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	settings := opt
	settings.CheckpointEvery = 0 // not part of what the model is
	fp, err := modelFingerprint(job, pretrainFace, settings, p.EvalSplit, "images")
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
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
	r := &pretrainRun{job: job, name: pretrainFace, metric: "accuracy", steps: opt.Steps, every: p.CheckpointEvery, fingerprint: fp}
	m, err := trainOrLoad(r, tinyface.Load, func() (*tinyface.Model, func(string) error, error) {
		job.Log.Info("training the identity encoder", "images", len(train.Images), "steps", opt.Steps, "batch", opt.BatchSize)
		opt.CheckpointDir = r.checkpoints()
		m, err := tinyface.Train(ctx, train, opt, func(pr tinyface.Progress) {
			r.report(pr.Step-1, pr.Loss, pr.Accuracy, pr.Elapsed)
		})
		if err != nil {
			return nil, nil, err
		}
		opt.CheckpointDir, opt.CheckpointEvery = "", 0 // the saved options must not depend on the workdir
		m.Meta, err = withOptionsMeta(m.Meta, opt)
		return m, m.Save, err
	})
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	var eval any
	if len(held.Images) > 0 {
		rep, err := tinyface.Evaluate(m, held)
		if err != nil {
			return PretrainedModelRow{}, nil, fmt.Errorf("evaluation on split %s: %w", p.EvalSplit, err)
		}
		job.Log.Info("identity encoder on held-out identities", "report", rep.String())
		eval = rep
	}
	row, err := r.row(m.Config(), eval)
	return row, r.rows, err
}

// ---- clip ----

func pretrainTheCLIP(ctx context.Context, job *pipeline.Job, p *pretrainParams, in *pretrainInputs) (PretrainedModelRow, []PretrainLogRow, error) {
	opt, err := p.clipOptions(job.Seed)
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	settings := opt
	settings.CheckpointEvery = 0 // not part of what the model is
	fp, err := modelFingerprint(job, pretrainCLIP, settings, p.EvalSplit, "images", "captions")
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
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
	r := &pretrainRun{job: job, name: pretrainCLIP, metric: "accuracy", steps: opt.Steps, every: p.CheckpointEvery, fingerprint: fp}
	m, err := trainOrLoad(r, tinyclip.Load, func() (*tinyclip.Model, func(string) error, error) {
		job.Log.Info("training the tiny CLIP", "images", len(train.Images), "steps", opt.Steps, "batch", opt.BatchSize)
		opt.CheckpointDir = r.checkpoints()
		m, err := tinyclip.Train(ctx, train, opt, func(pr tinyclip.Progress) {
			r.report(pr.Step-1, pr.Loss, pr.Accuracy, pr.Elapsed)
		})
		if err != nil {
			return nil, nil, err
		}
		opt.CheckpointDir, opt.CheckpointEvery = "", 0 // the saved options must not depend on the workdir
		m.Meta, err = withOptionsMeta(m.Meta, opt)
		return m, m.Save, err
	})
	if err != nil {
		return PretrainedModelRow{}, nil, err
	}
	var eval any
	if len(held.Images) >= 2 {
		rep, err := tinyclip.Evaluate(m, held, nil, 0)
		if err != nil {
			return PretrainedModelRow{}, nil, fmt.Errorf("evaluation on split %s: %w", p.EvalSplit, err)
		}
		job.Log.Info("tiny CLIP on held-out images", "class_acc", rep.ClassAcc, "retrieval_top1", rep.RetrievalTop1, "clip_t", rep.CLIPT)
		eval = rep
	}
	row, err := r.row(m.Config(), eval)
	return row, r.rows, err
}

// trainOrLoad trains a model with train unless r's final folder is up to date, saves it there
// with the save function train returns, and loads the final folder back with load (so a trained
// and a reused model are the same bytes). A failed or cancelled training keeps its log and
// checkpoints (r.finish).
func trainOrLoad[M any](r *pretrainRun, load func(dir string) (M, error), train func() (M, func(dir string) error, error)) (M, error) {
	var zero M
	done, err := r.start()
	if err != nil {
		return zero, err
	}
	if !done {
		_, save, err := train()
		if err := r.finish(err); err != nil {
			return zero, err
		}
		if err := r.saveFinal(save); err != nil {
			return zero, err
		}
	}
	return load(r.final())
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

// ---- log files ----

func pretrainLogHeader(metric string) string { return "step,loss," + metric + ",seconds" }

func writePretrainLog(path, metric string, rows []PretrainLogRow) error {
	var b strings.Builder
	b.WriteString(pretrainLogHeader(metric) + "\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%g,%g,%.2f\n", r.Step, r.Loss, r.Metric, r.Seconds)
	}
	return pipeline.WriteFileAtomic(path, []byte(b.String()))
}

// readPretrainLog reads the CSV a previous (interrupted) run of the model left, so a resumed run
// keeps its rows; a missing file or another header starts the log afresh.
func readPretrainLog(path, model, metric string) ([]PretrainLogRow, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != pretrainLogHeader(metric) {
		return nil, nil
	}
	var rows []PretrainLogRow
	for n, l := range lines[1:] {
		r := PretrainLogRow{Model: model, MetricName: metric}
		if _, err := fmt.Sscanf(l, "%d,%g,%g,%g", &r.Step, &r.Loss, &r.Metric, &r.Seconds); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n+2, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}
