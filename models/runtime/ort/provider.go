package ort

import (
	"fmt"
	"strconv"
	"strings"

	ortgo "github.com/yalue/onnxruntime_go"
)

// Execution provider names accepted in Provider.Name.
const (
	CPU      = "cpu"
	CUDA     = "cuda"
	TensorRT = "tensorrt"
)

// Provider selects one ONNX Runtime execution provider.
type Provider struct {
	// Name is cpu, cuda or tensorrt.
	Name string
	// DeviceID is the GPU index for cuda and tensorrt; it must be 0 for cpu.
	DeviceID int
	// Options are passed to the provider as they are (for example
	// gpu_mem_limit for cuda, trt_fp16_enable for tensorrt); see ONNX
	// Runtime's execution provider documentation for the keys.
	Options map[string]string
}

// String returns the provider in ParseProvider's syntax ("cpu", "cuda:1").
func (p Provider) String() string {
	if p.Name == CPU {
		return CPU
	}
	return p.Name + ":" + strconv.Itoa(p.DeviceID)
}

// Options configures a Session.
type Options struct {
	// Providers are enabled in this order and only these: a provider that
	// ONNX Runtime cannot enable makes Open fail. ONNX Runtime itself runs
	// any node a GPU provider does not support on CPU, so cpu, when listed
	// with others, must come last. Empty means CPU only.
	Providers []Provider
	// IntraOpThreads and InterOpThreads size ONNX Runtime's thread pools;
	// 0 keeps ONNX Runtime's default (one thread per physical core).
	IntraOpThreads, InterOpThreads int
}

// ParseProvider parses a provider as written in a config: "cpu", "cuda",
// "cuda:1", "tensorrt:0" (the device index defaults to 0). Names are case
// insensitive. It returns an error naming the string and what was expected.
func ParseProvider(s string) (Provider, error) {
	spec := strings.ToLower(strings.TrimSpace(s))
	name, dev, hasDev := strings.Cut(spec, ":")
	p := Provider{Name: name}
	switch name {
	case CPU, CUDA, TensorRT:
	default:
		return Provider{}, fmt.Errorf("execution provider %q: want cpu, cuda[:N] or tensorrt[:N]", s)
	}
	if hasDev {
		id, err := strconv.Atoi(dev)
		if err != nil || id < 0 {
			return Provider{}, fmt.Errorf("execution provider %q: device %q is not a non-negative integer", s, dev)
		}
		if name == CPU && id != 0 {
			return Provider{}, fmt.Errorf("execution provider %q: cpu takes no device index", s)
		}
		p.DeviceID = id
	}
	return p, nil
}

// validateProviders checks names, duplicates and the position of cpu.
func validateProviders(ps []Provider) error {
	seen := map[string]bool{}
	for i, p := range ps {
		switch p.Name {
		case CPU:
			if p.DeviceID != 0 {
				return fmt.Errorf("providers[%d]: cpu takes no device index, got %d", i, p.DeviceID)
			}
			if i != len(ps)-1 {
				return fmt.Errorf("providers[%d]: cpu must be the last provider (ONNX Runtime would assign every node to it before %s)", i, ps[i+1].Name)
			}
		case CUDA, TensorRT:
			if p.DeviceID < 0 {
				return fmt.Errorf("providers[%d]: %s device index %d is negative", i, p.Name, p.DeviceID)
			}
		default:
			return fmt.Errorf("providers[%d]: unknown execution provider %q, want cpu, cuda or tensorrt", i, p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("providers[%d]: %s listed twice", i, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// providerOptions merges DeviceID into the user's options as device_id.
func providerOptions(p Provider) (map[string]string, error) {
	opts := make(map[string]string, len(p.Options)+1)
	for k, v := range p.Options {
		opts[k] = v
	}
	id := strconv.Itoa(p.DeviceID)
	if v, ok := opts["device_id"]; ok && v != id {
		return nil, fmt.Errorf("%s execution provider: options device_id=%s contradicts device index %d", p.Name, v, p.DeviceID)
	}
	opts["device_id"] = id
	return opts, nil
}

// appendProvider enables p on so. Its errors read "<name> execution provider
// unavailable: <ONNX Runtime's message>".
func appendProvider(so *ortgo.SessionOptions, p Provider) error {
	unavailable := func(err error) error {
		return fmt.Errorf("%s execution provider unavailable: %s", p.Name, oneLine(err.Error()))
	}
	switch p.Name {
	case CPU:
		return nil // always present; ONNX Runtime adds it last by itself
	case CUDA:
		opts, err := providerOptions(p)
		if err != nil {
			return err
		}
		co, err := ortgo.NewCUDAProviderOptions()
		if err != nil {
			return unavailable(err)
		}
		defer co.Destroy()
		if err := co.Update(opts); err != nil {
			return unavailable(err)
		}
		if err := so.AppendExecutionProviderCUDA(co); err != nil {
			return unavailable(err)
		}
	case TensorRT:
		opts, err := providerOptions(p)
		if err != nil {
			return err
		}
		to, err := ortgo.NewTensorRTProviderOptions()
		if err != nil {
			return unavailable(err)
		}
		defer to.Destroy()
		if err := to.Update(opts); err != nil {
			return unavailable(err)
		}
		if err := so.AppendExecutionProviderTensorRT(to); err != nil {
			return unavailable(err)
		}
	default:
		return fmt.Errorf("unknown execution provider %q, want cpu, cuda or tensorrt", p.Name)
	}
	return nil
}
