package tinyclip

import (
	stdctx "context"
	"encoding/json"
	"fmt"
	"image"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/cocoflow/cocoflow/models/family/tiny"
	"github.com/cocoflow/cocoflow/models/judges/tinyface"
	"github.com/cocoflow/cocoflow/models/runtime/engine"
)

// InfoNCE is CLIP's symmetric contrastive loss (Radford et al., 2021) on unit-norm image
// embeddings img [B, D] and text embeddings txt [B, D], with logits exp(logScale)·⟨img_i, txt_j⟩:
//
//	loss = ½ (CE(logits, pos) + CE(logitsᵀ, posᵀ)),
//	CE(X, Q) = −mean_i Σ_j Q_ij/Σ_k Q_ik · log softmax(X_i)_j
//
// pos [B, B] is 1 where text j is a positive of image i and 0 elsewhere, with ones on the
// diagonal. With distinct captions pos is the identity and this is plain InfoNCE; identical
// captions in a batch ("a man.") are positives of each other's images instead of false
// negatives.
func InfoNCE(img, txt, logScale, pos *graph.Node) *graph.Node {
	logits := graph.DotGeneral(img, []int{1}, nil, txt, []int{1}, nil) // [B, B]
	logits = graph.Mul(logits, graph.Exp(logScale))
	ce := func(x, q *graph.Node) *graph.Node {
		q = graph.Div(q, graph.ReduceAndKeep(q, graph.ReduceSum, -1))
		return graph.Neg(graph.ReduceAllMean(graph.ReduceSum(graph.Mul(q, graph.LogSoftmax(x, -1)), -1)))
	}
	return graph.MulScalar(graph.Add(ce(logits, pos), ce(graph.Transpose(logits, 0, 1), graph.Transpose(pos, 0, 1))), 0.5)
}

// Data is a captioned image set: Captions[i] holds one or more captions of Images[i].
type Data struct {
	Images   []image.Image
	Captions [][]string
}

// Options configure Train. DefaultOptions gives the tiny world's values.
type Options struct {
	Config          Config           `json:"config"`           // architecture
	Steps           int              `json:"steps"`            // optimizer steps
	BatchSize       int              `json:"batch_size"`       // distinct images per step, one random caption each
	LearningRate    float64          `json:"learning_rate"`    // peak Adam learning rate
	WarmupSteps     int              `json:"warmup_steps"`     // linear warm-up, then cosine decay to 5% of the peak
	Augment         tinyface.Augment `json:"augment"`          // image augmentation (no flips: captions say "facing left")
	Seed            uint64           `json:"seed"`             // initialisation and batch draws
	CheckpointDir   string           `json:"checkpoint_dir"`   // training checkpoints (resume); "" for none
	CheckpointEvery int              `json:"checkpoint_every"` // steps between checkpoints (0: only at the end)
}

// DefaultOptions returns the options of the tiny world's CLIP. It returns an error if the tiny
// tokenizer cannot be loaded.
func DefaultOptions() (Options, error) {
	cfg, err := DefaultConfig()
	if err != nil {
		return Options{}, err
	}
	return Options{Config: cfg, Steps: 800, BatchSize: 64, LearningRate: 3e-3, WarmupSteps: 50,
		Augment: tinyface.Augment{Shift: 2}, Seed: 1}, nil
}

// Validate returns an error naming the first invalid option, or nil.
func (o Options) Validate() error {
	if err := o.Config.Validate(); err != nil {
		return err
	}
	switch {
	case o.Steps < 1:
		return fmt.Errorf("tinyclip options: steps %d: want at least 1", o.Steps)
	case o.BatchSize < 2:
		return fmt.Errorf("tinyclip options: batch_size %d: want at least 2", o.BatchSize)
	case !(o.LearningRate > 0):
		return fmt.Errorf("tinyclip options: learning_rate %g: want > 0", o.LearningRate)
	case o.WarmupSteps < 0:
		return fmt.Errorf("tinyclip options: warmup_steps %d: want at least 0", o.WarmupSteps)
	case o.Augment.Shift < 0 || o.Augment.Shift > tinyface.ImageSize/4:
		return fmt.Errorf("tinyclip options: augment.shift %d: want in [0, %d]", o.Augment.Shift, tinyface.ImageSize/4)
	case o.Augment.Brightness < 0 || o.Augment.Brightness >= 1:
		return fmt.Errorf("tinyclip options: augment.brightness %g: want in [0, 1)", o.Augment.Brightness)
	case o.Augment.Flip:
		return fmt.Errorf("tinyclip options: augment.flip: want false (captions name the pose's side)")
	case o.CheckpointEvery < 0:
		return fmt.Errorf("tinyclip options: checkpoint_every %d: want at least 0", o.CheckpointEvery)
	}
	return nil
}

// Progress is what Train reports after each step.
type Progress struct {
	Step, Steps int           // steps done (1-based) and the run's total
	Loss        float64       // InfoNCE loss of the step's batch
	Accuracy    float64       // share of the batch's images whose most similar caption is a positive
	Scale       float64       // exp(logit scale), the inverse temperature
	Elapsed     time.Duration // since this call started training (resumed steps excluded)
}

// Train trains a tiny CLIP on data with InfoNCE and returns it. Each step draws BatchSize
// distinct images and one of each image's captions at random. With CheckpointDir set it resumes
// from a checkpoint there and checkpoints every CheckpointEvery steps; cancelling ctx
// checkpoints and returns ctx's error. report, when not nil, is called after every step. It
// returns an error for invalid options or data (naming the option or the image), or when the
// backend fails.
func Train(ctx stdctx.Context, data Data, opt Options, report func(Progress)) (*Model, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if len(data.Images) != len(data.Captions) {
		return nil, fmt.Errorf("tinyclip.Train: %d images but %d caption lists", len(data.Images), len(data.Captions))
	}
	if len(data.Images) < opt.BatchSize {
		return nil, fmt.Errorf("tinyclip.Train: %d images, want at least batch_size %d", len(data.Images), opt.BatchSize)
	}
	tok, err := tiny.Tokenizer()
	if err != nil {
		return nil, fmt.Errorf("tinyclip.Train: %w", err)
	}
	cfg := opt.Config
	if tok.VocabSize() != cfg.Text.Vocab {
		return nil, fmt.Errorf("tinyclip.Train: config vocab %d, the tiny tokenizer has %d tokens", cfg.Text.Vocab, tok.VocabSize())
	}
	pixels := make([][]float32, len(data.Images))
	type caption struct {
		key string // the token ids, for telling equal captions apart
		ids []int32
		eos int32
	}
	caps := make([][]caption, len(data.Images))
	for i, img := range data.Images {
		p, err := tinyface.Pixels(img)
		if err != nil {
			return nil, fmt.Errorf("tinyclip.Train: image %d: %w", i, err)
		}
		pixels[i] = p
		if len(data.Captions[i]) == 0 {
			return nil, fmt.Errorf("tinyclip.Train: image %d has no caption", i)
		}
		ids, eos := tokenize(tok, data.Captions[i], cfg.Text.Length)
		for k := range data.Captions[i] {
			row := ids[k*cfg.Text.Length : (k+1)*cfg.Text.Length]
			caps[i] = append(caps[i], caption{key: fmt.Sprint(row), ids: row, eos: eos[k]})
		}
	}

	mctx := context.New()
	if err := mctx.SetRNGStateFromSeed(int64(opt.Seed)); err != nil {
		return nil, fmt.Errorf("tinyclip.Train: %w", err)
	}
	step := func(ctx *context.Context, tokens, ids, eos, pos *graph.Node) (loss, acc, scale *graph.Node) {
		g := tokens.Graph()
		m := ctx.In(modelScope)
		img := ImageGraph(m, cfg, tokens)
		txt := TextGraph(m, cfg, ids, eos)
		logScale := LogitScale(m, g)
		loss = InfoNCE(img, txt, logScale, pos)
		// Accuracy: the most similar caption of each image is one of its positives.
		sim := graph.DotGeneral(img, []int{1}, nil, txt, []int{1}, nil)
		best := graph.ArgMax(sim, -1, ids.DType())
		hit := graph.ReduceSum(graph.Mul(graph.OneHot(best, opt.BatchSize, tinyface.DType), pos), -1)
		acc = graph.ReduceAllMean(hit)
		tinyface.Schedule(ctx, g, opt.LearningRate, opt.WarmupSteps, opt.Steps)
		optimizers.Adam().LearningRate(opt.LearningRate).Done().UpdateGraph(ctx, g, loss)
		return loss, acc, graph.Exp(logScale)
	}
	L, B := cfg.Text.Length, opt.BatchSize
	next := func(k int) ([]any, error) {
		r := rand.New(rand.NewPCG(opt.Seed, uint64(k)))
		perm := r.Perm(len(pixels))[:B]
		patches := make([]float32, 0, B*cfg.Image.Tokens()*cfg.Image.TokenDim())
		ids := make([]int32, 0, B*L)
		eos := make([]int32, B)
		keys := make([]string, B)
		for i, j := range perm {
			patches = tinyface.Patchify(patches, opt.Augment.Apply(r, pixels[j]), cfg.Image)
			c := caps[j][r.IntN(len(caps[j]))]
			ids = append(ids, c.ids...)
			eos[i], keys[i] = c.eos, c.key
		}
		// pos: equal captions are positives of each other's images.
		pos := make([]float32, B*B)
		for i := range B {
			for j := range B {
				if keys[i] == keys[j] {
					pos[i*B+j] = 1
				}
			}
		}
		return []any{
			tensors.FromFlatDataAndDimensions(patches, B, cfg.Image.Tokens(), cfg.Image.TokenDim()),
			tensors.FromFlatDataAndDimensions(ids, B, L), eos,
			tensors.FromFlatDataAndDimensions(pos, B, B),
		}, nil
	}
	var rep engine.ReportFunc
	if report != nil {
		rep = func(k int, out []float64, el time.Duration) {
			report(Progress{Step: k + 1, Steps: opt.Steps, Loss: out[0], Accuracy: out[1], Scale: out[2], Elapsed: el})
		}
	}
	optJSON, _ := json.Marshal(opt)
	meta := map[string]string{"options": string(optJSON), "images": strconv.Itoa(len(pixels))}
	fo := engine.FitOptions{Steps: opt.Steps, CheckpointDir: opt.CheckpointDir, CheckpointEvery: opt.CheckpointEvery, Meta: meta}
	if err := engine.Fit(ctx, mctx.Checked(false), step, next, fo, rep); err != nil {
		return nil, fmt.Errorf("tinyclip.Train: %w", err)
	}
	mc, err := tinyface.ExtractScope(mctx, modelScope)
	if err != nil {
		return nil, fmt.Errorf("tinyclip.Train: %w", err)
	}
	return newModel(cfg, mc, meta)
}
