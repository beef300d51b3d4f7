package stages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/cocoflow/cocoflow/datasets/imageio"
	"github.com/cocoflow/cocoflow/models/cocoins"
	"github.com/cocoflow/cocoflow/models/diffusion"
	"github.com/cocoflow/cocoflow/models/family"
	"github.com/cocoflow/cocoflow/models/mapper"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
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
	StdScale   float64 `param:"std_scale" default:"1" min:"0" doc:"rescale vocab: multiply the vocabulary's standard deviation given to pseudo-words (below 1: nearer the mean word)"`

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

func (p *trainParams) options() cocoins.Options {
	o := cocoins.DefaultOptions()
	o.Negative, o.Margin, o.Distance = p.Negative, p.Margin, p.Distance
	o.UseMask, o.Background = p.Mask, p.Background
	o.LambdaCon, o.LambdaBack = p.LambdaCon, p.LambdaBack
	o.SamePrompt, o.SameNoise = p.SamePrompt, p.SameNoise
	return o
}

func init() {
	pipeline.Register(pipeline.Spec[trainParams]{
		Name:    "train",
		Version: "2", // 2: L_back of a same_prompt positive against P1; the log gained d_plain
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
			return p.options().Validate()
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
	info := g.Info()
	if p.TMax >= info.TrainSteps {
		return fmt.Errorf("t_max %d must be below the generator's %d training timesteps", p.TMax, info.TrainSteps)
	}
	data, err := loadTriplets(job.Input("triplets"), info)
	if err != nil {
		return err
	}
	job.Log.Info("training the mapping network", "triplets", len(data.rows), "steps", p.Steps, "batch", p.Batch)

	mcfg := mapper.Config{CodeDim: p.CodeDim, Layers: p.Layers, Width: p.Width, Activation: p.Activation, Rescale: p.Rescale, StdScale: p.StdScale}
	for k, enc := range info.Encoders {
		mcfg.OutDims = append(mcfg.OutDims, enc.Dim)
		if p.Rescale == "vocab" {
			mean, std := g.VocabStats(k)
			mcfg.VocabMean = append(mcfg.VocabMean, mean)
			mcfg.VocabStd = append(mcfg.VocabStd, std)
		}
	}
	if err := mcfg.Validate(); err != nil {
		return err
	}
	sched, err := diffusion.NewSchedule(info.Schedule, info.TrainSteps)
	if err != nil {
		return err
	}

	ctx := g.Context()
	generatorVars := variableNames(ctx)
	if err := ctx.SetRNGStateFromSeed(int64(job.Seed)); err != nil {
		return err
	}
	frozenBefore, err := frozenDigest(ctx, generatorVars)
	if err != nil {
		return err
	}
	b := &tripletBatcher{data: data, p: p, seed: job.Seed, sched: sched, codeDim: p.CodeDim, maxLen: info.Encoders[0].MaxLength, pad: g.Tokenizer().Pad()}
	opts := p.options()
	graphFn := func(ctx *mlctx.Context, in []*Node) []*Node {
		terms := cocoins.Loss(ctx, g, mcfg, b.graphBatch(in), opts)
		grads := ctx.BuildTrainableVariablesGradientsGraph(terms.Loss)
		norm := globalNorm(grads)
		if p.GradClip > 0 {
			scale := Min(ScalarOne(norm.Graph(), norm.DType()), Div(Scalar(norm.Graph(), norm.DType(), p.GradClip), AddScalar(norm, 1e-12)))
			for i := range grads {
				grads[i] = Mul(grads[i], scale)
			}
		}
		adam := optimizers.Adam().LearningRate(p.LR).Done()
		adam.(interface {
			UpdateGraphWithGradients(*mlctx.Context, []*Node, dtypes.DType)
		}).UpdateGraphWithGradients(ctx, grads, terms.Loss.DType())
		return []*Node{terms.Loss, terms.Con, terms.Pos, terms.Neg, terms.Back, norm, terms.Plain}
	}

	ckptDir := filepath.Join(job.Dir, "checkpoints")
	if job.Force { // --force: train from scratch, not from where the last run stopped
		if err := os.RemoveAll(ckptDir); err != nil {
			return err
		}
	}
	csvPath := filepath.Join(job.Dir, "train_log.csv")
	logRows, err := readTrainLog(csvPath)
	if err != nil {
		return err
	}
	prog := job.Progress("steps", p.Steps, "steps")
	defer prog.Done()
	var csvErr error
	err = engine.Fit(runCtx, ctx, graphFn, b.inputs, engine.FitOptions{
		Steps: p.Steps, CheckpointDir: ckptDir, CheckpointEvery: p.CheckpointEvery,
		Meta: map[string]string{"fingerprint": job.Fingerprint()},
	}, func(step int, out []float64, elapsed time.Duration) {
		row := TrainLogRow{Step: int32(step), Loss: float32(out[0]), Con: float32(out[1]), Pos: float32(out[2]), Neg: float32(out[3]), Plain: float32(out[6]),
			Back: float32(out[4]), GradNorm: float32(out[5]), LambdaNeg: float32(b.lambda(step)), Seconds: float32(elapsed.Seconds())}
		logRows = keepBefore(logRows, step)
		logRows = append(logRows, row)
		if step%10 == 0 || step == p.Steps-1 {
			csvErr = writeTrainLog(csvPath, logRows)
			job.Log.Debug("step", "step", step, "loss", row.Loss, "d_pos", row.Pos, "d_neg", row.Neg, "l_back", row.Back)
		}
		prog.Add(1)
	})
	if err != nil {
		return err
	}
	if csvErr != nil {
		return csvErr
	}
	if err := writeTrainLog(csvPath, logRows); err != nil {
		return err
	}
	frozenAfter, err := frozenDigest(ctx, generatorVars)
	if err != nil {
		return err
	}
	if frozenAfter != frozenBefore {
		return fmt.Errorf("the generator's weights changed during training: only the mapping network may train")
	}
	job.Record("frozen_generator_sha256", frozenAfter)
	if n := len(logRows); n > 0 {
		last := logRows[n-1]
		job.Record("final", map[string]float32{"loss": last.Loss, "d_pos": last.Pos, "d_neg": last.Neg, "d_plain": last.Plain, "l_back": last.Back})
	}
	if err := plotTrainLog(filepath.Join(job.Dir, "train_loss.png"), logRows); err != nil {
		return err
	}
	row, err := mapperRow(ctx, mcfg, p.Family, p.Steps)
	if err != nil {
		return err
	}
	if err := pipeline.WriteRows(job, job.Output("mapper"), []MapperRow{row}, 1); err != nil {
		return err
	}
	return pipeline.WriteRows(job, job.Output("log"), logRows, 1000)
}

// tripletData is the training split of the triplets, ready for batching.
type tripletData struct {
	rows      []TripletRow
	latent    []int // latent shape
	maskShape []int // broadcastable mask shape per sample
}

func loadTriplets(ds *pipeline.Dataset, info family.Info) (*tripletData, error) {
	all, err := pipeline.ReadAll[TripletRow](ds)
	if err != nil {
		return nil, err
	}
	d := &tripletData{latent: info.LatentShape}
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
			return nil, fmt.Errorf("%s: latent shape %v (%d values), the generator wants %v: encode with the same family", where, r.Shape, len(r.Latent), info.LatentShape)
		}
		ms, err := maskBroadcast(info.LatentShape, r.MaskShape)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if d.maskShape == nil {
			d.maskShape = ms
		}
		if len(r.Mask) != int(r.MaskShape[0]*r.MaskShape[1]) {
			return nil, fmt.Errorf("%s: mask has %d values for shape %v", where, len(r.Mask), r.MaskShape)
		}
		for _, c := range []struct {
			name string
			ids  []int32
			pos  int32
		}{{"p1", r.P1IDs, r.I}, {"p2", r.P2IDs, r.J}} {
			if c.pos < 1 || int(c.pos) >= len(c.ids)-1 {
				return nil, fmt.Errorf("%s: concept position %d of %s is outside its %d tokens", where, c.pos, c.name, len(c.ids))
			}
			if len(c.ids)+1 > info.Encoders[0].MaxLength {
				return nil, fmt.Errorf("%s: %s has %d tokens: no room to insert a pseudo-word in %d positions", where, c.name, len(c.ids), info.Encoders[0].MaxLength)
			}
		}
		d.rows = append(d.rows, r)
	}
	if len(d.rows) == 0 {
		return nil, fmt.Errorf("%s: no triplets with split=train", ds.Dir)
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

// tripletBatcher makes the inputs of step k from (seed, k) alone, so a resumed run trains on
// exactly the batches an uninterrupted one would.
type tripletBatcher struct {
	data    *tripletData
	p       *trainParams
	seed    uint64
	sched   *diffusion.Schedule
	codeDim int
	maxLen  int
	pad     int32
}

func (b *tripletBatcher) lambda(step int) float64 {
	return cocoins.LambdaNeg(b.p.Gamma, b.p.Beta, step, b.p.Steps, b.p.Schedule)
}

// inputs returns, in order: x, mask, ids1, ids2, ins1, ins2, eos1, eos2, eos1w, eos2w, z1, z2,
// eps1, eps2, t, sqrtA, sqrtB, lambda.
func (b *tripletBatcher) inputs(step int) ([]any, error) {
	B, L := b.p.Batch, b.maxLen
	r := rand.New(rand.NewPCG(b.seed, uint64(step)))
	size := len(b.data.rows[0].Latent)
	x := make([]float32, 0, B*size)
	mask := make([]float32, 0, B*len(b.data.rows[0].Mask))
	caps := [2]*cocoins.Captions{cocoins.NewCaptions(L, b.pad), cocoins.NewCaptions(L, b.pad)}
	ts := make([]int32, B)
	sa, sb := make([]float32, B), make([]float32, B)
	for i := 0; i < B; i++ {
		row := b.data.rows[r.IntN(len(b.data.rows))]
		x = append(x, row.Latent...)
		mask = append(mask, row.Mask...)
		for k, c := range []struct {
			ids []int32
			pos int32
		}{{row.P1IDs, row.I}, {row.P2IDs, row.J}} {
			if err := caps[k].Add(c.ids, int(c.pos)); err != nil {
				return nil, fmt.Errorf("triplet %s: %w", row.ID, err)
			}
		}
		t := b.p.TMin + r.IntN(b.p.TMax-b.p.TMin+1)
		ts[i] = int32(t)
		abar := b.sched.AlphaBar(t)
		sa[i], sb[i] = float32(math.Sqrt(abar)), float32(math.Sqrt(1-abar))
	}
	normal := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	lat := append([]int{B}, b.data.latent...)
	ms := append([]int{B}, b.data.maskShape...)
	ids1, ins1, eos1, eos1w := caps[0].Tensors()
	ids2, ins2, eos2, eos2w := caps[1].Tensors()
	return []any{
		tensors.FromFlatDataAndDimensions(x, lat...),
		tensors.FromFlatDataAndDimensions(mask, ms...),
		ids1, ids2, ins1, ins2, eos1, eos2, eos1w, eos2w,
		tensors.FromFlatDataAndDimensions(normal(B*b.codeDim), B, b.codeDim),
		tensors.FromFlatDataAndDimensions(normal(B*b.codeDim), B, b.codeDim),
		tensors.FromFlatDataAndDimensions(normal(B*size), lat...),
		tensors.FromFlatDataAndDimensions(normal(B*size), lat...),
		ts, sa, sb, float32(b.lambda(step)),
	}, nil
}

func (b *tripletBatcher) graphBatch(in []*Node) cocoins.Batch {
	return cocoins.Batch{
		X: in[0], Mask: in[1], IDs1: in[2], IDs2: in[3], Ins1: in[4], Ins2: in[5],
		EOS1: in[6], EOS2: in[7], EOS1w: in[8], EOS2w: in[9], Z1: in[10], Z2: in[11],
		Eps1: in[12], Eps2: in[13], T: in[14], SqrtA: in[15], SqrtB: in[16], Lambda: in[17],
	}
}

func globalNorm(grads []*Node) *Node {
	var sum *Node
	for _, g := range grads {
		s := ReduceAllSum(Mul(g, g))
		if sum == nil {
			sum = s
		} else {
			sum = Add(sum, s)
		}
	}
	return Sqrt(sum)
}

// frozenDigest hashes the variables named in names (the generator's weights, listed before
// training added the mapper, optimizer and RNG state).
func frozenDigest(ctx *mlctx.Context, names []string) (string, error) {
	h := sha256.New()
	for _, name := range names {
		i := strings.LastIndex(name, mlctx.ScopeSeparator)
		scope := name[:i]
		if scope == "" {
			scope = mlctx.ScopeSeparator
		}
		v := ctx.InspectVariable(scope, name[i+1:])
		if v == nil {
			return "", fmt.Errorf("generator variable %s disappeared", name)
		}
		t, err := v.Value()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\n", name)
		t.ConstBytes(func(b []byte) { h.Write(b) })
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// variableNames lists the scoped names of ctx's variables, sorted.
func variableNames(ctx *mlctx.Context) []string {
	var names []string
	for v := range ctx.IterVariables() {
		names = append(names, v.ScopeAndName())
	}
	sort.Strings(names)
	return names
}

func mapperRow(ctx *mlctx.Context, cfg mapper.Config, fam string, steps int) (MapperRow, error) {
	conf, weights, err := mapper.Marshal(ctx, cfg)
	if err != nil {
		return MapperRow{}, err
	}
	return MapperRow{Family: fam, Config: string(conf), Weights: weights, Steps: int32(steps)}, nil
}

func keepBefore(rows []TrainLogRow, step int) []TrainLogRow {
	for len(rows) > 0 && int(rows[len(rows)-1].Step) >= step {
		rows = rows[:len(rows)-1]
	}
	return rows
}

const trainLogHeader = "step,loss,l_con,d_pos,d_neg,d_plain,l_back,lambda_neg,grad_norm,seconds"

func writeTrainLog(path string, rows []TrainLogRow) error {
	var b strings.Builder
	b.WriteString(trainLogHeader + "\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%d,%g,%g,%g,%g,%g,%g,%g,%g,%.2f\n", r.Step, r.Loss, r.Con, r.Pos, r.Neg, r.Plain, r.Back, r.LambdaNeg, r.GradNorm, r.Seconds)
	}
	return pipeline.WriteFileAtomic(path, []byte(b.String()))
}

// readTrainLog reads the CSV a previous (interrupted) run left, so a resumed run keeps its rows.
func readTrainLog(path string) ([]TrainLogRow, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) == 0 || lines[0] != trainLogHeader {
		return nil, nil // not ours or from an older format: start the log afresh
	}
	var rows []TrainLogRow
	for n, l := range lines[1:] {
		var r TrainLogRow
		if _, err := fmt.Sscanf(l, "%d,%g,%g,%g,%g,%g,%g,%g,%g,%g", &r.Step, &r.Loss, &r.Con, &r.Pos, &r.Neg, &r.Plain, &r.Back, &r.LambdaNeg, &r.GradNorm, &r.Seconds); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n+2, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
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
