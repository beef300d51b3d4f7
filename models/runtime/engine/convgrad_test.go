package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// convCase is one convolution configuration, in the layout given by axes.
type convCase struct {
	name               string
	xDims, wDims       []int
	axes               backends.ConvolveAxesConfig
	strides, dilations []int
	paddings           [][2]int
	groups             int
}

func nchw(spatial int) backends.ConvolveAxesConfig { return canonicalAxes(spatial) }

// convCases cover what diffusers' UNet and VAE use (3×3 pad 1, stride-2 downsampling, 1×1
// shortcuts) and the general cases: asymmetric and zero padding, kernel dilation, channel groups,
// 1-D and 3-D, a channels-last layout, and paddings wider than the kernel.
var convCases = []convCase{
	{name: "3x3 pad1", xDims: []int{2, 3, 5, 5}, wDims: []int{4, 3, 3, 3}, axes: nchw(2), paddings: [][2]int{{1, 1}, {1, 1}}},
	{name: "3x3 stride2 pad1 (Downsample2D)", xDims: []int{2, 3, 6, 6}, wDims: []int{2, 3, 3, 3}, axes: nchw(2), strides: []int{2, 2}, paddings: [][2]int{{1, 1}, {1, 1}}},
	{name: "3x3 stride2 odd input", xDims: []int{1, 2, 7, 5}, wDims: []int{3, 2, 3, 3}, axes: nchw(2), strides: []int{2, 2}, paddings: [][2]int{{1, 1}, {1, 1}}},
	{name: "1x1 shortcut", xDims: []int{2, 4, 3, 3}, wDims: []int{2, 4, 1, 1}, axes: nchw(2)},
	{name: "no padding, asymmetric kernel", xDims: []int{1, 2, 6, 5}, wDims: []int{3, 2, 3, 2}, axes: nchw(2)},
	{name: "asymmetric padding", xDims: []int{1, 2, 5, 5}, wDims: []int{2, 2, 3, 3}, axes: nchw(2), paddings: [][2]int{{0, 2}, {2, 1}}},
	{name: "dilation 2", xDims: []int{1, 2, 7, 7}, wDims: []int{2, 2, 3, 3}, axes: nchw(2), dilations: []int{2, 2}, paddings: [][2]int{{2, 2}, {1, 1}}},
	{name: "groups 2", xDims: []int{2, 4, 5, 5}, wDims: []int{6, 2, 3, 3}, axes: nchw(2), paddings: [][2]int{{1, 1}, {1, 1}}, groups: 2},
	{name: "depthwise stride2", xDims: []int{1, 3, 6, 6}, wDims: []int{3, 1, 3, 3}, axes: nchw(2), strides: []int{2, 2}, paddings: [][2]int{{1, 1}, {1, 1}}, groups: 3},
	{name: "1-D", xDims: []int{2, 3, 9}, wDims: []int{2, 3, 4}, axes: nchw(1), strides: []int{3}, paddings: [][2]int{{1, 2}}},
	{name: "3-D", xDims: []int{1, 2, 4, 3, 4}, wDims: []int{2, 2, 2, 3, 2}, axes: nchw(3), paddings: [][2]int{{1, 0}, {1, 1}, {0, 1}}},
	{name: "padding wider than kernel", xDims: []int{1, 2, 4, 4}, wDims: []int{2, 2, 2, 2}, axes: nchw(2), paddings: [][2]int{{3, 0}, {0, 3}}},
	{name: "channels-last HWIO", xDims: []int{2, 5, 5, 3}, wDims: []int{3, 3, 3, 4},
		axes: backends.ConvolveAxesConfig{InputBatch: 0, InputChannels: 3, InputSpatial: []int{1, 2},
			KernelInputChannels: 2, KernelOutputChannels: 3, KernelSpatial: []int{0, 1},
			OutputBatch: 0, OutputChannels: 3, OutputSpatial: []int{1, 2}},
		strides: []int{2, 1}, paddings: [][2]int{{1, 1}, {1, 1}}},
}

func (c convCase) build(x, w *graph.Node) *graph.Node {
	conv := graph.Convolve(x, w).AxesConfig(c.axes)
	strides := c.strides
	if strides == nil {
		strides = make([]int, len(c.axes.InputSpatial))
		for i := range strides {
			strides[i] = 1
		}
	}
	conv = conv.StridePerAxis(strides...)
	dilations := c.dilations
	if dilations == nil {
		// Spelled out: the pure-Go backend's general convolution indexes nil dilations.
		dilations = make([]int, len(c.axes.InputSpatial))
		for i := range dilations {
			dilations[i] = 1
		}
	}
	conv = conv.DilationPerAxis(dilations...)
	if c.paddings != nil {
		conv = conv.PaddingPerDim(c.paddings)
	} else {
		conv = conv.NoPadding()
	}
	if c.groups > 1 {
		conv = conv.ChannelGroupCount(c.groups)
	}
	return conv.Done()
}

func randomF64(r *rand.Rand, dims []int) []float64 {
	n := 1
	for _, d := range dims {
		n *= d
	}
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

// TestConvGradientMatchesFiniteDifferences checks the Reverse-free convolution gradients against
// central finite differences in float64. The loss Σ r·conv(x, w) is linear in each of x and w,
// so the differences have no truncation error; rounding leaves ≈1e-11.
func TestConvGradientMatchesFiniteDifferences(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range convCases {
		t.Run(c.name, func(t *testing.T) {
			x0, w0 := randomF64(rng, c.xDims), randomF64(rng, c.wDims)
			xt := func(v []float64) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(v, c.xDims...) }
			wt := func(v []float64) *tensors.Tensor { return tensors.FromFlatDataAndDimensions(v, c.wDims...) }
			var outDims []int
			var r0 []float64
			grads := graph.MustNewExec(b, func(x, w, r *graph.Node) []*graph.Node {
				loss := graph.ReduceAllSum(graph.Mul(c.build(x, w), r))
				return graph.Gradient(loss, x, w)
			})
			defer grads.Finalize()
			shapeOf := graph.MustNewExec(b, func(x, w *graph.Node) *graph.Node { return c.build(x, w) })
			y := shapeOf.MustExec(xt(x0), wt(w0))[0]
			outDims = y.Shape().Dimensions
			shapeOf.Finalize()
			r0 = randomF64(rng, outDims)
			rt := tensors.FromFlatDataAndDimensions(r0, outDims...)
			var out []*tensors.Tensor
			if err := catch(func() { out = grads.MustExec(xt(x0), wt(w0), rt) }); err != nil {
				t.Fatalf("gradient: %v", err)
			}
			gx, gw := tensors.MustCopyFlatData[float64](out[0]), tensors.MustCopyFlatData[float64](out[1])

			loss := graph.MustNewExec(b, func(x, w, r *graph.Node) *graph.Node {
				return graph.ReduceAllSum(graph.Mul(c.build(x, w), r))
			})
			defer loss.Finalize()
			f := func(x, w []float64) float64 {
				return loss.MustExec(xt(x), wt(w), tensors.FromFlatDataAndDimensions(r0, outDims...))[0].Value().(float64)
			}
			const h = 0.5
			check := func(what string, v0, grad []float64, eval func([]float64) float64) {
				worst := 0.0
				for i := range v0 {
					p, m := append([]float64{}, v0...), append([]float64{}, v0...)
					p[i] += h
					m[i] -= h
					fd := (eval(p) - eval(m)) / (2 * h)
					worst = max(worst, math.Abs(fd-grad[i]))
				}
				t.Logf("%s: max |grad - fd| = %.2g over %d entries", what, worst, len(v0))
				if worst > 1e-9 {
					t.Errorf("%s: gradient differs from finite differences by %g", what, worst)
				}
			}
			check("d/dx", x0, gx, func(x []float64) float64 { return f(x, w0) })
			check("d/dw", w0, gw, func(w []float64) float64 { return f(x0, w) })
		})
	}
}

// TestConvGradientReadsNodeConfiguration checks that the configuration read by reflection is the
// one the convolution was built with.
func TestConvGradientReadsNodeConfiguration(t *testing.T) {
	b, err := Backend()
	if err != nil {
		t.Fatal(err)
	}
	c := convCases[6] // dilation 2, asymmetric padding
	g := graph.NewGraph(b, "conv")
	x := graph.Parameter(g, "x", shapesF64(c.xDims...))
	w := graph.Parameter(g, "w", shapesF64(c.wDims...))
	p, err := readConvParams(c.build(x, w))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.kernelDilations) != "[2 2]" || fmt.Sprint(p.paddings) != "[[2 2] [1 1]]" || p.channelGroups != 1 {
		t.Errorf("read %+v", p)
	}
	if _, err := readConvParams(x); err == nil {
		t.Error("a Parameter node was read as a convolution")
	}
}
