package engine

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// The gradient of a convolution, without the Reverse op (which the pure-Go backend lacks and
// GoMLX v0.26.0's stock gradient w.r.t. the input needs). Per spatial axis, with input length I,
// kernel length K, output length O, stride s, kernel dilation d and padding (p₀, p₁), a forward
// convolution (cross-correlation) is
//
//	y[o] = Σ_k x[o·s + k·d − p₀] · w[k]                                    (1)
//
// so that, for the adjoint v = ∂L/∂y,
//
//	∂L/∂x[i] = Σ_k v̂[i + p₀ − (K−1)·d + k·d] · w[K−1−k]                    (2)
//	∂L/∂w[k] = Σ_o x[k·d + o·s − p₀] · v[o]                                (3)
//
// where v̂ is v dilated by s (s−1 zeros between entries). (2) is a convolution of v̂ with the
// spatially flipped kernel, its channel axes swapped (per channel group), padded by (K−1)·d − p₀
// before and I − (O−1)·s − 1 + p₀ after; the flip is built from slices. (3) is a convolution of
// x (channels as batch, batch as channels) with v as the kernel, stride d and kernel dilation s.
// Both are computed in the layout [batch, channels, spatial...] ([out, in, spatial...] for the
// kernel) and transposed back. Input dilation or batch grouping in the forward convolution (a
// gradient of a gradient) falls back to GoMLX's stock gradient.

var stockConvVJP graph.VJP

func init() {
	stockConvVJP = graph.VJPRegistration[graph.NodeTypeConvGeneral]
	graph.VJPRegistration[graph.NodeTypeConvGeneral] = func(node *graph.Node, vjps []*graph.Node, out shapes.Shape) []*graph.Node {
		p, err := readConvParams(node)
		if err != nil {
			panic(fmt.Errorf("engine: gradient of %s: %w", node, err))
		}
		if p.inputDilated() || p.batchGroups > 1 {
			return stockConvVJP(node, vjps, out)
		}
		return convGrads(node, vjps[0], p)
	}
}

// convParams is the configuration of a ConvGeneral node.
type convParams struct {
	axes                              backends.ConvolveAxesConfig
	strides                           []int
	paddings                          [][2]int
	inputDilations, kernelDilations   []int
	channelGroups, batchGroups        int
	spatialRank                       int
	inputDims, kernelDims, outputDims []int
}

func (p convParams) inputDilated() bool {
	for _, d := range p.inputDilations {
		if d > 1 {
			return true
		}
	}
	return false
}

func (p convParams) stride(i int) int     { return valueOr(p.strides, i, 1) }
func (p convParams) dilation(i int) int   { return valueOr(p.kernelDilations, i, 1) }
func (p convParams) padding(i int) [2]int { return pairOr(p.paddings, i) }

func valueOr(s []int, i, def int) int {
	if i < len(s) && s[i] > 0 {
		return s[i]
	}
	return def
}

func pairOr(s [][2]int, i int) [2]int {
	if i < len(s) {
		return s[i]
	}
	return [2]int{}
}

// readConvParams reads a ConvGeneral node's configuration from GoMLX's unexported inputs struct
// by reflection and checks it against the operand and output shapes, so that a change of GoMLX's
// internals is reported, not silently mis-read.
func readConvParams(node *graph.Node) (convParams, error) {
	var p convParams
	if node.Type() != graph.NodeTypeConvGeneral {
		return p, fmt.Errorf("node %s is a %s, want ConvGeneral", node, node.Type())
	}
	field := reflect.ValueOf(node).Elem().FieldByName("inputs")
	if !field.IsValid() || field.Kind() != reflect.Interface || field.IsNil() {
		return p, fmt.Errorf("graph.Node has no usable field %q (GoMLX internals changed; engine supports v0.26.0)", "inputs")
	}
	v := field.Elem()
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	lists, err := intSliceFields(field.Elem(), "ConvGeneral", "strides", "inputDilations", "kernelDilations")
	if err != nil {
		return p, err
	}
	p.strides, p.inputDilations, p.kernelDilations = lists[0], lists[1], lists[2]
	for _, f := range []struct {
		name string
		dst  *int
	}{{"channelGroupCount", &p.channelGroups}, {"batchGroupCount", &p.batchGroups}} {
		fv := v.FieldByName(f.name)
		if !fv.IsValid() || fv.Kind() != reflect.Int {
			return p, fmt.Errorf("ConvGeneral inputs have no int field %q (GoMLX internals changed; engine supports v0.26.0)", f.name)
		}
		*f.dst = int(fv.Int())
	}
	pads := v.FieldByName("paddings")
	if !pads.IsValid() || pads.Kind() != reflect.Slice || pads.Type().Elem().Kind() != reflect.Array {
		return p, fmt.Errorf("ConvGeneral inputs have no [][2]int field paddings (GoMLX internals changed; engine supports v0.26.0)")
	}
	for i := range pads.Len() {
		p.paddings = append(p.paddings, [2]int{int(pads.Index(i).Index(0).Int()), int(pads.Index(i).Index(1).Int())})
	}
	ax := v.FieldByName("axes")
	if !ax.IsValid() || ax.Kind() != reflect.Struct {
		return p, fmt.Errorf("ConvGeneral inputs have no struct field axes (GoMLX internals changed; engine supports v0.26.0)")
	}
	getInt := func(name string) int { return int(ax.FieldByName(name).Int()) }
	getInts := func(name string) []int {
		f := ax.FieldByName(name)
		out := make([]int, f.Len())
		for i := range out {
			out[i] = int(f.Index(i).Int())
		}
		return out
	}
	p.axes = backends.ConvolveAxesConfig{
		InputBatch: getInt("InputBatch"), InputChannels: getInt("InputChannels"), InputSpatial: getInts("InputSpatial"),
		KernelInputChannels: getInt("KernelInputChannels"), KernelOutputChannels: getInt("KernelOutputChannels"), KernelSpatial: getInts("KernelSpatial"),
		OutputBatch: getInt("OutputBatch"), OutputChannels: getInt("OutputChannels"), OutputSpatial: getInts("OutputSpatial"),
	}
	if p.channelGroups < 1 {
		p.channelGroups = 1
	}
	if p.batchGroups < 1 {
		p.batchGroups = 1
	}
	x, w := node.Inputs()[0], node.Inputs()[1]
	p.inputDims, p.kernelDims, p.outputDims = x.Shape().Dimensions, w.Shape().Dimensions, node.Shape().Dimensions
	p.spatialRank = x.Rank() - 2
	if len(p.axes.InputSpatial) != p.spatialRank || len(p.axes.KernelSpatial) != p.spatialRank || len(p.axes.OutputSpatial) != p.spatialRank {
		return p, fmt.Errorf("ConvGeneral axes %+v read by reflection do not match input rank %d (GoMLX internals changed; engine supports v0.26.0)", p.axes, x.Rank())
	}
	if p.inputDilated() || p.batchGroups > 1 {
		return p, nil
	}
	// Check the output length of (1) on every spatial axis.
	for i := range p.spatialRank {
		in, k := p.inputDims[p.axes.InputSpatial[i]], p.kernelDims[p.axes.KernelSpatial[i]]
		pad := p.padding(i)
		want := (in+pad[0]+pad[1]-(k-1)*p.dilation(i)-1)/p.stride(i) + 1
		if got := p.outputDims[p.axes.OutputSpatial[i]]; got != want {
			return p, fmt.Errorf("ConvGeneral configuration read by reflection gives output length %d on spatial axis %d, but the node's output is %s (GoMLX internals changed; engine supports v0.26.0)", want, i, node.Shape())
		}
	}
	return p, nil
}

// canonical returns the permutation taking a layout (batch axis, channel axis, spatial axes) to
// [batch, channels, spatial...], and whether it is the identity.
func canonical(batch, channels int, spatial []int) ([]int, bool) {
	perm := append([]int{batch, channels}, spatial...)
	identity := true
	for i, a := range perm {
		if i != a {
			identity = false
		}
	}
	return perm, identity
}

func transposeTo(x *graph.Node, perm []int, identity bool) *graph.Node {
	if identity {
		return x
	}
	return graph.TransposeAllAxes(x, perm...)
}

func transposeFrom(x *graph.Node, perm []int, identity bool) *graph.Node {
	if identity {
		return x
	}
	inv := make([]int, len(perm))
	for i, a := range perm {
		inv[a] = i
	}
	return graph.TransposeAllAxes(x, inv...)
}

// canonicalAxes is the axes configuration of [batch, channels, spatial...] tensors and
// [out, in, spatial...] kernels.
func canonicalAxes(spatialRank int) backends.ConvolveAxesConfig {
	sp := make([]int, spatialRank)
	for i := range sp {
		sp[i] = i + 2
	}
	return backends.ConvolveAxesConfig{
		InputBatch: 0, InputChannels: 1, InputSpatial: sp,
		KernelOutputChannels: 0, KernelInputChannels: 1, KernelSpatial: slices.Clone(sp),
		OutputBatch: 0, OutputChannels: 1, OutputSpatial: slices.Clone(sp),
	}
}

// flip reverses x along axis, from one-wide slices.
func flip(x *graph.Node, axis int) *graph.Node {
	n := x.Shape().Dimensions[axis]
	if n == 1 {
		return x
	}
	parts := make([]*graph.Node, n)
	for i := range n {
		parts[n-1-i] = graph.SliceAxis(x, axis, graph.AxisRange(i, i+1))
	}
	return graph.Concatenate(parts, axis)
}

// convGrads returns the gradients of Σ v·conv(x, w) w.r.t. x and w, eqs. (2) and (3).
func convGrads(node, v *graph.Node, p convParams) []*graph.Node {
	x, w := node.Inputs()[0], node.Inputs()[1]
	ax := p.axes
	sr, g := p.spatialRank, p.channelGroups
	xPerm, xID := canonical(ax.InputBatch, ax.InputChannels, ax.InputSpatial)
	wPerm, wID := canonical(ax.KernelOutputChannels, ax.KernelInputChannels, ax.KernelSpatial)
	vPerm, vID := canonical(ax.OutputBatch, ax.OutputChannels, ax.OutputSpatial)
	xc, wc, vc := transposeTo(x, xPerm, xID), transposeTo(w, wPerm, wID), transposeTo(v, vPerm, vID)
	n, cin := xc.Shape().Dimensions[0], xc.Shape().Dimensions[1]
	cout := wc.Shape().Dimensions[0]
	inSp, kSp, outSp := xc.Shape().Dimensions[2:], wc.Shape().Dimensions[2:], vc.Shape().Dimensions[2:]
	caxes := canonicalAxes(sr)
	strides, dilations := make([]int, sr), make([]int, sr)
	for i := range sr {
		strides[i], dilations[i] = p.stride(i), p.dilation(i)
	}

	// (2): the kernel [Cout, Cin/g, K...] as [Cin, Cout/g, K...] per group, flipped.
	wt := graph.Reshape(wc, append([]int{g, cout / g, cin / g}, kSp...)...)
	perm := append([]int{0, 2, 1}, axisRange(3, sr)...)
	wt = graph.Reshape(graph.TransposeAllAxes(wt, perm...), append([]int{cin, cout / g}, kSp...)...)
	for i := range sr {
		wt = flip(wt, 2+i)
	}
	pads := make([][2]int, sr)
	crop := make([][2]int, sr) // [start, length] of the wanted window, when a padding was negative
	needCrop := false
	for i := range sr {
		ext := (kSp[i] - 1) * dilations[i]
		lo := ext - p.padding(i)[0]
		hi := inSp[i] - (outSp[i]-1)*strides[i] - 1 + p.padding(i)[0]
		pads[i] = [2]int{max(lo, 0), max(hi, 0)}
		crop[i] = [2]int{max(lo, 0) - lo, inSp[i]}
		if lo < 0 || hi < 0 {
			needCrop = true
		}
	}
	ones := make([]int, sr)
	for i := range ones {
		ones[i] = 1
	}
	// The pure-Go backend wants strides and dilations spelled out (nil strides read as 0).
	gx := graph.ConvGeneral(vc, wt, caxes, ones, pads, strides, dilations, g, 1)
	if needCrop {
		specs := []graph.SliceAxisSpec{graph.AxisRange(), graph.AxisRange()}
		for i := range sr {
			specs = append(specs, graph.AxisRange(crop[i][0], crop[i][0]+crop[i][1]))
		}
		gx = graph.Slice(gx, specs...)
	}

	// (3): x [N, Cin, I...] as [Cin/g, g·N, I...] (channels as batch), v [N, Cout, O...] as the
	// kernel [Cout, N, O...]; stride d, kernel dilation s; output [Cin/g, Cout, K...].
	xs := graph.Reshape(xc, append([]int{n, g, cin / g}, inSp...)...)
	xs = graph.TransposeAllAxes(xs, append([]int{2, 1, 0}, axisRange(3, sr)...)...)
	xs = graph.Reshape(xs, append([]int{cin / g, g * n}, inSp...)...)
	vk := graph.TransposeAllAxes(vc, append([]int{1, 0}, axisRange(2, sr)...)...)
	wpads := make([][2]int, sr)
	wcrop := false
	for i := range sr {
		hi := (kSp[i]-1)*dilations[i] + (outSp[i]-1)*strides[i] + 1 - inSp[i] - p.padding(i)[0]
		wpads[i] = [2]int{p.padding(i)[0], max(hi, 0)}
		if hi < 0 {
			wcrop = true
		}
	}
	gw := graph.ConvGeneral(xs, vk, caxes, dilations, wpads, ones, strides, g, 1)
	if wcrop {
		specs := []graph.SliceAxisSpec{graph.AxisRange(), graph.AxisRange()}
		for i := range sr {
			specs = append(specs, graph.AxisRange(0, kSp[i]))
		}
		gw = graph.Slice(gw, specs...)
	}
	gw = graph.TransposeAllAxes(gw, append([]int{1, 0}, axisRange(2, sr)...)...)
	return []*graph.Node{transposeFrom(gx, xPerm, xID), transposeFrom(gw, wPerm, wID)}
}
