package stages

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/cocoins"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/pipeline"
	"github.com/cocoflow/cocoflow/pipeline/chart"
)

type trainParams struct {
	Family   string `param:"family" default:"tiny" doc:"model family of the frozen generator"`
	ModelDir string `param:"model_dir" doc:"the family's model folder (\"\" for its built-in default)"`

	CodeDim    int     `param:"code_dim" default:"64" min:"1" doc:"c, the size of the latent code z"`
	Layers     int     `param:"layers" default:"3" min:"1" doc:"n, dense layers of the mapping network"`
	Width      int     `param:"width" default:"256" min:"1" doc:"hidden width of the mapping network"`
	Activation string  `param:"activation" default:"gelu" enum:"relu,gelu,silu,leaky_relu,tanh" doc:"hidden activation"`
	Rescale    string  `param:"rescale" default:"vocab" enum:"vocab,none" doc:"rescale pseudo-words to the vocabulary's embedding statistics"`
	StdScale   float64 `param:"std_scale" default:"1" min:"0" doc:"rescale vocab: multiply the vocabulary's standard deviation given to pseudo-words (below 1: nearer the mean word; 0: the mean word)"`

	Negative   string  `param:"negative" default:"reciprocal" enum:"reciprocal,subtract,none" doc:"negative term of L_con: λ/D− (eq. 7), max(0, D+ − λD− + margin), or none (positive only)"`
	Margin     float64 `param:"margin" default:"0.1" min:"0" doc:"subtract: triplet margin"`
	Gamma      float64 `param:"gamma" default:"0.002" min:"0" doc:"γ of λ_neg = γ (k/K)^β"`
	Beta       float64 `param:"beta" default:"2" min:"0" doc:"β of λ_neg = γ (k/K)^β"`
	Schedule   bool    `param:"schedule" default:"true" doc:"grow λ_neg over training (false: λ_neg = γ throughout)"`
	Distance   string  `param:"distance" default:"mse" enum:"mse,l1,cosine" doc:"L_dis"`
	Mask       bool    `param:"mask" default:"true" doc:"compare subjects only (D^m); false: whole latents"`
	Background bool    `param:"background" default:"true" doc:"add the background preservation loss L_back (eq. 8)"`
	LambdaCon  float64 `param:"lambda_con" default:"1" min:"0" doc:"λ_con of eq. 9"`
	LambdaBack float64 `param:"lambda_back" default:"1" min:"0" doc:"λ_back of eq. 9"`
	SamePrompt bool    `param:"same_prompt" default:"false" doc:"positive uses the anchor's caption P1 (Table 5)"`
	SameNoise  bool    `param:"same_noise" default:"false" doc:"positive uses the anchor's noise ε1 (Table 5)"`
	TMin       int     `param:"t_min" default:"100" min:"0" doc:"smallest training timestep"`
	TMax       int     `param:"t_max" default:"900" min:"0" doc:"largest training timestep"`

	Steps           int     `param:"steps" default:"300" min:"1" doc:"optimizer steps K"`
	Batch           int     `param:"batch" default:"8" min:"1" doc:"triplets per step"`
	LR              float64 `param:"lr" default:"0.001" min:"0" doc:"Adam learning rate"`
	GradClip        float64 `param:"grad_clip" default:"1" min:"0" doc:"clip the global gradient norm (0: off)"`
	CheckpointEvery int     `param:"checkpoint_every" default:"25" min:"1" fingerprint:"-" doc:"steps between checkpoints"`
}

// options returns the trainer's options: every parameter of the stage, as given.
func (p *trainParams) options() cocoins.TrainOptions {
	return cocoins.TrainOptions{
		Loss: cocoins.Options{
			Negative: p.Negative, Margin: p.Margin, Distance: p.Distance, UseMask: p.Mask, Background: p.Background,
			LambdaCon: p.LambdaCon, LambdaBack: p.LambdaBack, SamePrompt: p.SamePrompt, SameNoise: p.SameNoise,
			Gamma: p.Gamma, Beta: p.Beta, Schedule: p.Schedule,
		},
		Mapper: cocoins.MapperConfig{CodeDim: p.CodeDim, Layers: p.Layers, Width: p.Width, Activation: p.Activation,
			Rescale: p.Rescale, StdScale: p.StdScale},
		Steps: p.Steps, Batch: p.Batch, LearningRate: p.LR, GradClip: p.GradClip, TMin: p.TMin, TMax: p.TMax,
		CheckpointEvery: p.CheckpointEvery,
	}
}

func init() {
	pipeline.Register(pipeline.Spec[trainParams]{
		Name:    "train",
		Version: "3", // 2: L_back of a same_prompt positive against P1; the log gained d_plain. 3: std_scale 0 means 0 (it meant 1)
		Doc: "Trains the CoCoIns mapping network f contrastively through the frozen generator (paper " +
			"§3.2-3.3): per triplet it samples codes z1, z2, noises ε1, ε2 and a timestep, builds " +
			"e*, e+, e− (eq. 5) and x_t*, x_t+, x_t− (eq. 6), and minimises L = λ_con L_con + λ_back " +
			"L_back (eqs. 7-9). Only f trains: the generator's weights are checked bit-identical " +
			"afterwards. Checkpoints and resumes; logs every loss term, λ_neg and the gradient norm " +
			"to log/, train_log.csv and train_loss.png.",
		Inputs:  []pipeline.Port{{Name: "triplets", Doc: "triplets output (split=train rows are used)"}},
		Outputs: []pipeline.Port{{Name: "mapper", Doc: "the trained mapping network (one row)", Schema: MapperRow{}}, {Name: "log", Doc: "one row per step", Schema: TrainLogRow{}}},
		Models:  func(p *trainParams) (map[string]string, error) { return family.Models(p.Family, p.ModelDir) },
		Check: func(p *trainParams) error {
			if p.TMin > p.TMax {
				return fmt.Errorf("t_min %d is above t_max %d", p.TMin, p.TMax)
			}
			if err := p.options().Loss.Validate(); err != nil {
				return err
			}
			return checkFamily(p.Family, p.ModelDir)
		},
		Run: runTrain,
	})
}

func runTrain(runCtx context.Context, job *pipeline.Job, p *trainParams) error {
	spec, err := family.Lookup(p.Family)
	if err != nil {
		return err
	}
	g, err := spec.Generator(p.ModelDir)
	if err != nil {
		return err
	}
	data, err := loadTriplets(job.Input("triplets"), g.Info())
	if err != nil {
		return err
	}
	job.Log.Info("training the mapping network", "triplets", len(data.Triplets), "steps", p.Steps, "batch", p.Batch)

	opt := p.options()
	opt.Seed = job.Seed
	opt.CheckpointDir = filepath.Join(job.Dir, "checkpoints")
	opt.CheckpointMeta = map[string]string{"fingerprint": job.Fingerprint()}
	if job.Force { // --force: train from scratch, not from where the last run stopped
		if err := os.RemoveAll(opt.CheckpointDir); err != nil {
			return err
		}
	}
	tlog, err := openTrainLog(filepath.Join(job.Dir, "train_log.csv"), p.CheckpointEvery)
	if err != nil {
		return err
	}
	defer tlog.close()
	prog := job.Progress("steps", p.Steps, "steps")
	defer prog.Done()
	var logErr error
	trained, err := cocoins.Train(runCtx, g, data, opt, func(s cocoins.StepLog) {
		if !tlog.started() {
			// The first step of this run: where the checkpoint left off (0 for a new run).
			prog.Resume(s.Step)
			if hole := tlog.begin(s.Step); hole != "" {
				job.Log.Warn("train_log.csv lacks steps before the checkpoint (an older version wrote it); the log and plot will have a hole; --force trains again from step 0", "missing", hole)
			}
		}
		row := TrainLogRow{Step: int32(s.Step), Loss: float32(s.Loss), Con: float32(s.Con), Pos: float32(s.Pos), Neg: float32(s.Neg),
			Plain: float32(s.Plain), Back: float32(s.Back), GradNorm: float32(s.GradNorm), LambdaNeg: float32(s.LambdaNeg),
			Seconds: tlog.seconds(s.Elapsed)}
		if err := tlog.add(row); err != nil && logErr == nil {
			logErr = err
		}
		job.Log.Debug("step", "step", s.Step, "loss", row.Loss, "d_pos", row.Pos, "d_neg", row.Neg, "l_back", row.Back)
		prog.Add(1)
	})
	if err != nil {
		return err
	}
	if logErr != nil {
		return logErr
	}
	if err := tlog.close(); err != nil {
		return err
	}
	logRows := tlog.rows
	job.Record("frozen_generator_sha256", trained.FrozenDigest)
	if n := len(logRows); n > 0 {
		last := logRows[n-1]
		job.Record("final", map[string]float32{"loss": last.Loss, "d_pos": last.Pos, "d_neg": last.Neg, "d_plain": last.Plain, "l_back": last.Back})
	}
	if err := plotTrainLog(filepath.Join(job.Dir, "train_loss.png"), logRows); err != nil {
		return err
	}
	row := MapperRow{Family: p.Family, Config: string(trained.Config), Weights: trained.Weights, Steps: int32(p.Steps)}
	if err := pipeline.WriteRows(job, job.Output("mapper"), []MapperRow{row}, 1); err != nil {
		return err
	}
	return pipeline.WriteRows(job, job.Output("log"), logRows, 1000)
}

// loadTriplets reads the training split of the triplets and checks every row against the
// generator: latent shape, mask shape, concept positions and room for a pseudo-word. Errors
// name the dataset, the row and the image.
func loadTriplets(ds *pipeline.Dataset, info family.Info) (cocoins.TrainData, error) {
	all, err := pipeline.ReadAll[TripletRow](ds)
	if err != nil {
		return cocoins.TrainData{}, err
	}
	var d cocoins.TrainData
	size := 1
	for _, s := range info.LatentShape {
		size *= s
	}
	for n, r := range all {
		if r.Split != "train" {
			continue
		}
		where := fmt.Sprintf("%s: triplet %d (image %s)", ds.Dir, n, r.ID)
		if len(r.Latent) != size || !equalInts(r.Shape, info.LatentShape) {
			return cocoins.TrainData{}, fmt.Errorf("%s: latent shape %v (%d values), the generator wants %v: encode with the same family", where, r.Shape, len(r.Latent), info.LatentShape)
		}
		ms, err := maskBroadcast(info.LatentShape, r.MaskShape)
		if err != nil {
			return cocoins.TrainData{}, fmt.Errorf("%s: %w", where, err)
		}
		if d.MaskShape == nil {
			d.MaskShape = ms
		}
		if len(r.Mask) != int(r.MaskShape[0]*r.MaskShape[1]) {
			return cocoins.TrainData{}, fmt.Errorf("%s: mask has %d values for shape %v", where, len(r.Mask), r.MaskShape)
		}
		for _, c := range []struct {
			name string
			ids  []int32
			pos  int32
		}{{"p1", r.P1IDs, r.I}, {"p2", r.P2IDs, r.J}} {
			if c.pos < 1 || int(c.pos) >= len(c.ids)-1 {
				return cocoins.TrainData{}, fmt.Errorf("%s: concept position %d of %s is outside its %d tokens", where, c.pos, c.name, len(c.ids))
			}
			if len(c.ids)+1 > info.Encoders[0].MaxLength {
				return cocoins.TrainData{}, fmt.Errorf("%s: %s has %d tokens: no room to insert a pseudo-word in %d positions", where, c.name, len(c.ids), info.Encoders[0].MaxLength)
			}
		}
		d.Triplets = append(d.Triplets, cocoins.Triplet{ID: r.ID, Latent: r.Latent, Mask: r.Mask, P1: r.P1IDs, P2: r.P2IDs, I: int(r.I), J: int(r.J)})
	}
	if len(d.Triplets) == 0 {
		return cocoins.TrainData{}, fmt.Errorf("%s: no triplets with split=train", ds.Dir)
	}
	return d, nil
}

// maskBroadcast returns the per-sample shape that makes a [h, w] latent-resolution mask
// broadcast over a latent: [h, w, 1] for HWC latents (tiny), [1, h, w] for CHW (SDXL).
func maskBroadcast(latent []int, mask []int32) ([]int, error) {
	if len(mask) != 2 || len(latent) != 3 {
		return nil, fmt.Errorf("mask shape %v does not fit latent shape %v", mask, latent)
	}
	h, w := int(mask[0]), int(mask[1])
	switch {
	case latent[0] == h && latent[1] == w:
		return []int{h, w, 1}, nil
	case latent[1] == h && latent[2] == w:
		return []int{1, h, w}, nil
	}
	return nil, fmt.Errorf("mask shape %v matches neither the spatial axes of latent shape %v", mask, latent)
}

func equalInts(a []int32, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if int(a[i]) != b[i] {
			return false
		}
	}
	return true
}

func plotTrainLog(path string, rows []TrainLogRow) error {
	var x, pos, neg, plain, back, loss, ratio, one []float64
	for _, r := range rows {
		x = append(x, float64(r.Step))
		pos = append(pos, float64(r.Pos))
		neg = append(neg, float64(r.Neg))
		plain = append(plain, float64(r.Plain))
		back = append(back, float64(r.Back))
		loss = append(loss, float64(r.Loss))
		ratio = append(ratio, float64(r.Pos)/math.Max(float64(r.Plain), 1e-12))
		one = append(one, 1)
	}
	distances := chart.Plot{Title: "CoCoIns training: distances between x̂ predictions", XLabel: "step", LogY: true, Smooth: 10, Series: []chart.Series{
		{Name: "D(x*, x+) positive", X: x, Y: pos}, {Name: "D(x1, x2) positive without codes", X: x, Y: plain},
		{Name: "D(x*, x-) negative", X: x, Y: neg},
		{Name: "L_back", X: x, Y: back}, {Name: "loss", X: x, Y: loss},
	}}.Draw()
	consistency := chart.Plot{Title: "D(x*, x+) / D(x1, x2): below 1 when a code makes the subject more consistent", XLabel: "step", Width: 720, Height: 260, Smooth: 25, Series: []chart.Series{
		{Name: "ratio", X: x, Y: ratio}, {Name: "1", X: x, Y: one},
	}}.Draw()
	data, err := imageio.PNG(chart.Stack(distances, consistency))
	if err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(path, data)
}
