package insightface

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cocoflow/cocoflow/models/judges/facedet"
	"github.com/cocoflow/cocoflow/models/judges/onnxjudge"
	"github.com/cocoflow/cocoflow/models/metrics"
	"github.com/cocoflow/cocoflow/models/runtime/onnxgraph"
	"github.com/cocoflow/cocoflow/models/runtime/ort"
)

// ArcFace is insightface's recognition model (ArcFaceONNX; buffalo_l's w600k_r50.onnx): an
// aligned face crop in, an identity feature out, returned L2-normalised.
type ArcFace struct {
	sess        *ort.Session
	input       string
	output      string
	size        int   // crop side (112)
	batch       int64 // the export's batch dimension: -1 dynamic, else fixed
	dim         int
	mean, scale float32
	runs        onnxjudge.Timer
}

// OpenArcFace loads an ArcFace export and checks its signature: one float32 input [N,3,S,S]
// with S a multiple of 112 or 128 and one float32 output [N,D]. Its preprocessing is
// insightface's: (x − 127.5)/127.5 on RGB, except for MXNet conversions whose graph starts
// with its own Sub and Mul nodes (insightface then feeds raw 0..255 pixels).
func OpenArcFace(path string, opt ort.Options) (*ArcFace, error) {
	mean, std, err := arcfaceNorm(path)
	if err != nil {
		return nil, err
	}
	s, err := ort.Open(path, opt)
	if err != nil {
		return nil, err
	}
	a, err := newArcFace(s)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("arcface %s: %w", path, err)
	}
	a.mean, a.scale = mean, 1/std
	return a, nil
}

// arcfaceNorm is ArcFaceONNX.__init__'s test: a Sub (or _minus) and a Mul (or _mul) node among
// the first eight nodes mean the model normalises its input itself (mean 0, std 1).
func arcfaceNorm(path string) (mean, std float32, err error) {
	m, err := onnxgraph.Read(path)
	if err != nil {
		return 0, 0, fmt.Errorf("arcface: %w", err)
	}
	var sub, mul bool
	for _, n := range m.Graph.Nodes[:min(8, len(m.Graph.Nodes))] {
		sub = sub || strings.HasPrefix(n.Name, "Sub") || strings.HasPrefix(n.Name, "_minus")
		mul = mul || strings.HasPrefix(n.Name, "Mul") || strings.HasPrefix(n.Name, "_mul")
	}
	if sub && mul {
		return 0, 1, nil
	}
	return 127.5, 127.5, nil
}

func newArcFace(s *ort.Session) (*ArcFace, error) {
	ins, outs := s.Inputs(), s.Outputs()
	if len(ins) != 1 || len(outs) != 1 {
		return nil, fmt.Errorf("want one input [N,3,112,112] and one output [N,512], the model has inputs %s and outputs %s", infoList(ins), infoList(outs))
	}
	in, out := ins[0], outs[0]
	if in.DType != "float32" || len(in.Shape) != 4 || in.Shape[1] != 3 || in.Shape[2] <= 0 || in.Shape[2] != in.Shape[3] ||
		(in.Shape[2]%112 != 0 && in.Shape[2]%128 != 0) {
		return nil, fmt.Errorf("input %s: want float32 [N,3,S,S] with S a multiple of 112 or 128, got %s%v", in.Name, in.DType, in.Shape)
	}
	if out.DType != "float32" || len(out.Shape) != 2 || out.Shape[1] <= 0 {
		return nil, fmt.Errorf("output %s: want float32 [N,D], got %s%v", out.Name, out.DType, out.Shape)
	}
	return &ArcFace{sess: s, input: in.Name, output: out.Name, size: int(in.Shape[2]), batch: in.Shape[0], dim: int(out.Shape[1])}, nil
}

// Size is the side of the aligned crop the model takes.
func (a *ArcFace) Size() int { return a.size }

// Dim is the embedding length.
func (a *ArcFace) Dim() int { return a.dim }

// Embed returns one L2-normalised feature per crop (each Size×Size), in one run when the
// export's batch is dynamic. A zero feature stays zero.
func (a *ArcFace) Embed(crops []*facedet.RGB) ([][]float32, error) {
	per := len(crops)
	if a.batch > 0 {
		per = int(a.batch)
	}
	embs := make([][]float32, 0, len(crops))
	plane := 3 * a.size * a.size
	for start := 0; start < len(crops); start += per {
		n := min(per, len(crops)-start)
		blob := make([]float32, per*plane)
		for i, c := range crops[start : start+n] {
			if c.W != a.size || c.H != a.size {
				return nil, fmt.Errorf("arcface %s: crop %d is %dx%d, want %dx%d", a.sess.Path(), start+i, c.W, c.H, a.size, a.size)
			}
			c.Planar(blob[i*plane:], a.mean, a.scale)
		}
		out, err := a.runs.Run(a.sess, map[string]ort.Tensor{a.input: ort.NewTensor([]int64{int64(per), 3, int64(a.size), int64(a.size)}, blob)})
		if err != nil {
			return nil, err
		}
		feat, err := ort.Data[float32](out[a.output])
		if err != nil {
			return nil, fmt.Errorf("arcface %s: output %s: %w", a.sess.Path(), a.output, err)
		}
		if len(feat) != per*a.dim {
			return nil, fmt.Errorf("arcface %s: output %s has %d values for %d crops, want %d", a.sess.Path(), a.output, len(feat), per, per*a.dim)
		}
		for i := range n {
			embs = append(embs, metrics.Unit(slices.Clone(feat[i*a.dim:(i+1)*a.dim]))) // insightface's normed_embedding
		}
	}
	return embs, nil
}

// Close releases the session.
func (a *ArcFace) Close() error { return a.sess.Close() }
