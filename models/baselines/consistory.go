package baselines

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/cocoflow/cocoflow/models/family/tiny"
)

// ConsiStory is training-free consistent generation by subject-driven shared attention and
// feature injection (Tewel et al., "Training-Free Consistent Text-to-Image Generation", 2024;
// public code github.com/NVlabs/consistory: consistory_run.py with its defaults n_anchors = 2,
// mask_dropout = 0.5, share_queries, perform_sdsa, perform_injection). Per step:
//
//   - subject masks: the cross-attention probabilities of the subject word, mean over heads and
//     blocks, averaged over the last MaskSteps steps, thresholded per image with Otsu's method;
//   - subject-driven shared self-attention (blocks >= FromLayer): image i attends to its own
//     tokens and to the masked subject tokens of the anchor images (the first Anchors images,
//     j ≠ i), each of those kept with probability 1 − MaskDropout, drawn anew every step;
//   - query blending: every image also runs a plain twin from the same noise (its code's vanilla
//     pass); in the first BlendSteps steps the shared pass's queries are (1−QueryBlend)·q +
//     QueryBlend·q_vanilla, which keeps the layout of the plain sample;
//   - feature injection (steps InjectFrom … InjectTo−1, shared blocks): the attention output at
//     each subject token of image i moves by InjectAlpha towards that of its nearest neighbour
//     (cosine) among the anchors' subject tokens.
//
// Where this departs: its code matches tokens by DIFT features (decoder features of a noised
// image at one timestep) and injects with a distance threshold; here the nearest neighbour is
// taken on the attention output itself, without a threshold. Its masks come from the 32 x 32
// cross-attention of the UNet; here from every block of the tiny DiT at its one resolution.
// The blend weight and the step ranges are given by the caller (the evaluate stage declares
// them scaled to its step count); the first step has no masks yet and runs without sharing.
type ConsiStory struct {
	Anchors     int     // images whose subject every image attends to (the first ones)
	MaskDropout float64 // probability that an anchor's subject token is left out, per step
	FromLayer   int     // first block with shared attention and injection
	MaskSteps   int     // recent steps whose subject maps are averaged (>= 1)
	BlendSteps  int     // first steps with query blending
	QueryBlend  float64 // weight of the vanilla queries in those steps
	InjectFrom  int     // first step with feature injection
	InjectTo    int     // first step after it
	InjectAlpha float64 // how far an injected feature moves to its match (1: replaced)
	Seed        uint64  // seed of the mask dropout (with the group's noise seeds)
}

// Copies is 2: the shared pass and its vanilla twin.
func (ConsiStory) Copies() int { return 2 }

// Inputs: the shared attention's score bias [rows, 1, 1, n·L], the subject word's text states
// [rows, 1, 1, S] (1 where the subject is), the query blend weight [], the injection weight of
// every token [rows, L, 1] and the injection's key bias [rows, 1, n·L].
func (ConsiStory) Inputs(l Layout) []shapes.Shape {
	f, rows, nL := dtypes.Float32, l.Rows(), l.Images*l.Tokens
	return []shapes.Shape{
		shapes.Make(f, rows, 1, 1, nL), shapes.Make(f, rows, 1, 1, l.Text), shapes.Make(f),
		shapes.Make(f, rows, l.Tokens, 1), shapes.Make(f, rows, 1, nL),
	}
}

// Hook builds the shared attention, the blending, the injection and the subject map output
// [rows, L] (mean over heads and blocks).
func (m ConsiStory) Hook(l Layout, in []*graph.Node) (tiny.Hook, func() []*graph.Node) {
	h := &consiHook{m: m, l: l, bias: in[0], subject: in[1], blend: in[2], injW: in[3], injBias: in[4]}
	return h, func() []*graph.Node { return []*graph.Node{graph.DivScalar(h.maps, float64(l.Depth))} }
}

type consiHook struct {
	m                                   ConsiStory
	l                                   Layout
	bias, subject, blend, injW, injBias *graph.Node
	maps                                *graph.Node // sum over blocks of the subject maps, [rows, L]
}

func (h *consiHook) SelfAttention(layer int, q, k, v *graph.Node) *graph.Node {
	if layer < h.m.FromLayer {
		return tiny.Attend(q, k, v, nil)
	}
	o := tiny.Attend(blendQueries(q, h.blend, h.l), groupKeys(k, h.l), groupKeys(v, h.l), h.bias)
	return injectFeatures(o, h.injW, h.injBias, h.l)
}

func (h *consiHook) CrossAttention(_ int, q, k, v *graph.Node) *graph.Node {
	p := tiny.AttentionProbs(q, k, nil)                                    // [rows, H, L, S]
	m := graph.ReduceMean(graph.ReduceSum(graph.Mul(p, h.subject), -1), 1) // [rows, L]
	if h.maps == nil {
		h.maps = m
	} else {
		h.maps = graph.Add(h.maps, m)
	}
	return tiny.AttentionMix(p, v)
}

// blendQueries returns q with the shared copy's queries moved by w towards its twin's:
// q_c + w·(q_twin − q_c), rows of copy 1 unchanged.
func blendQueries(q, w *graph.Node, l Layout) *graph.Node {
	d := q.Shape().Dimensions
	x := graph.Reshape(q, l.Branches, l.Copies, l.Images*d[1], d[2], d[3])
	qc := graph.SliceAxis(x, 1, graph.AxisRange(0, 1))
	qt := graph.SliceAxis(x, 1, graph.AxisRange(1, 2))
	qc = graph.Add(qc, graph.Mul(w, graph.Sub(qt, qc)))
	return graph.Reshape(graph.Concatenate([]*graph.Node{qc, qt}, 1), d...)
}

// injectFeatures moves each token's attention output o [rows, L, H, dh] by its weight w
// [rows, L, 1] towards its nearest neighbour (cosine) among the group's tokens of its copy that
// the key bias [rows, 1, n·L] leaves (0) rather than removes (-1e9).
func injectFeatures(o, w, keyBias *graph.Node, l Layout) *graph.Node {
	d := o.Shape().Dimensions
	rows, L, F := d[0], d[1], d[2]*d[3]
	f := graph.Reshape(o, rows, L, F)
	keys := graph.Reshape(groupKeys(o, l), rows, l.Images*L, F)
	sim := graph.DotGeneral(graph.L2Normalize(f, -1), []int{2}, []int{0}, graph.L2Normalize(keys, -1), []int{2}, []int{0}) // [rows, L, n·L]
	nearest := graph.OneHot(graph.ArgMax(graph.Add(sim, keyBias), -1), l.Images*L, dtypes.Float32)
	match := graph.DotGeneral(nearest, []int{2}, []int{0}, keys, []int{1}, []int{0}) // [rows, L, F]
	return graph.Reshape(graph.Add(f, graph.Mul(w, graph.Sub(match, f))), d...)
}

// Start checks the parameters and begins a group.
func (m ConsiStory) Start(l Layout, g Group) (Run, error) {
	switch {
	case m.Anchors < 1:
		return nil, fmt.Errorf("consistory: anchors = %d, want >= 1", m.Anchors)
	case m.MaskDropout < 0 || m.MaskDropout > 1:
		return nil, fmt.Errorf("consistory: mask dropout = %g, want 0 … 1", m.MaskDropout)
	case m.MaskSteps < 1:
		return nil, fmt.Errorf("consistory: mask steps = %d, want >= 1", m.MaskSteps)
	case len(g.Subject) != len(g.Requests):
		return nil, fmt.Errorf("consistory: %d subject positions for %d requests", len(g.Subject), len(g.Requests))
	}
	for i, ps := range g.Subject {
		if len(ps) == 0 {
			return nil, fmt.Errorf("consistory: request %d has no subject word", i)
		}
		for _, p := range ps {
			if p < 0 || p >= l.Prompt {
				return nil, fmt.Errorf("consistory: request %d: subject position %d outside the prompt's %d tokens", i, p, l.Prompt)
			}
		}
	}
	subj := make([]float32, l.Rows()*l.Text)
	for c := range l.Copies {
		for i, ps := range g.Subject {
			row := l.Row(0, c, i)
			for s := range l.Text {
				if slices.Contains(ps, s%l.Prompt) {
					subj[row*l.Text+s] = 1
				}
			}
		}
	}
	return &consiRun{m: m, l: l, rng: rand.New(rand.NewPCG(m.Seed, groupHash(g))),
		subject: tensors.FromFlatDataAndDimensions(subj, l.Rows(), 1, 1, l.Text)}, nil
}

type consiRun struct {
	m       ConsiStory
	l       Layout
	rng     *rand.Rand
	subject *tensors.Tensor
	maps    [][][]float32 // [step][image] subject map [L] of the shared pass's conditional row
}

// Masks returns the subject masks of the images at the current step: Otsu's threshold of the
// mean of the last MaskSteps maps; nil before any step was observed.
func (r *consiRun) Masks() [][]bool {
	if len(r.maps) == 0 {
		return nil
	}
	recent := r.maps[max(0, len(r.maps)-r.m.MaskSteps):]
	out := make([][]bool, r.l.Images)
	for i := range out {
		mean := make([]float32, r.l.Tokens)
		for _, step := range recent {
			for p, v := range step[i] {
				mean[p] += v / float32(len(recent))
			}
		}
		thr := Otsu(mean)
		out[i] = make([]bool, len(mean))
		for p, v := range mean {
			out[i][p] = v > thr
		}
	}
	return out
}

func (r *consiRun) Step(i, _ int) ([]*tensors.Tensor, bool, error) {
	l, m := r.l, r.m
	masks := r.Masks()
	nL := l.Images * l.Tokens
	bias := make([]float32, l.Rows()*nL)
	injBias := make([]float32, l.Rows()*nL)
	injW := make([]float32, l.Rows()*l.Tokens)
	inject := i >= m.InjectFrom && i < m.InjectTo
	for b := range l.Branches {
		for c := range l.Copies {
			for img := range l.Images {
				row := l.Row(b, c, img)
				keep, keys := make([]bool, nL), make([]bool, nL)
				for p := range l.Tokens {
					keep[img*l.Tokens+p] = true
				}
				any := false
				for j := range min(m.Anchors, l.Images) {
					if c != 0 || j == img || masks == nil {
						continue
					}
					for p, on := range masks[j] {
						if on {
							keys[j*l.Tokens+p], any = true, true
							keep[j*l.Tokens+p] = r.rng.Float64() >= m.MaskDropout
						}
					}
				}
				copy(bias[row*nL:], maskBias(keep))
				copy(injBias[row*nL:], maskBias(keys))
				if inject && any {
					for p, on := range masks[img] {
						if on {
							injW[row*l.Tokens+p] = float32(m.InjectAlpha)
						}
					}
				}
			}
		}
	}
	blend := float32(0)
	if i < m.BlendSteps {
		blend = float32(m.QueryBlend)
	}
	return []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(bias, l.Rows(), 1, 1, nL), r.subject, tensors.FromScalar(blend),
		tensors.FromFlatDataAndDimensions(injW, l.Rows(), l.Tokens, 1), tensors.FromFlatDataAndDimensions(injBias, l.Rows(), 1, nL),
	}, false, nil
}

// Observe keeps the step's subject maps of the shared pass's conditional rows.
func (r *consiRun) Observe(i int, out []*tensors.Tensor) error {
	if len(out) != 1 {
		return fmt.Errorf("consistory: step %d returned %d outputs, want 1", i, len(out))
	}
	all, err := tensors.CopyFlatData[float32](out[0])
	if err != nil {
		return err
	}
	step := make([][]float32, r.l.Images)
	for img := range step {
		row := r.l.Row(0, 0, img)
		step[img] = all[row*r.l.Tokens : (row+1)*r.l.Tokens]
	}
	r.maps = append(r.maps, step)
	return nil
}

// Otsu returns the threshold that splits values into two classes with the largest
// between-class variance (Otsu 1979), computed exactly over every split of the sorted values
// rather than on a histogram: the midpoint between the last value of the lower class and the
// first of the upper. All values equal gives that value (nothing lies above it).
func Otsu(values []float32) float32 {
	v := slices.Clone(values)
	slices.Sort(v)
	n := len(v)
	if n == 0 {
		return 0
	}
	var total float64
	for _, x := range v {
		total += float64(x)
	}
	best, thr := -1.0, v[n-1]
	var below float64
	for k := 1; k < n; k++ { // classes v[:k] and v[k:]
		below += float64(v[k-1])
		if v[k] == v[k-1] {
			continue
		}
		w0, w1 := float64(k)/float64(n), float64(n-k)/float64(n)
		m0, m1 := below/float64(k), (total-below)/float64(n-k)
		if bv := w0 * w1 * (m0 - m1) * (m0 - m1); bv > best {
			best, thr = bv, (v[k-1]+v[k])/2
		}
	}
	return thr
}
