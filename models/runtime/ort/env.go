package ort

import (
	"fmt"
	"os"
	"strings"
)

// ProvidersEnv names the environment variable that chooses the execution providers of
// cocoflow's ONNX sessions when a config names none: a comma-separated list in ParseProvider's
// syntax, most preferred first, e.g. "cuda:0,cpu" or "tensorrt,cuda,cpu". Unset means CPU only.
const ProvidersEnv = "COCOFLOW_ORT_PROVIDERS"

// EnvProviders returns the providers ProvidersEnv lists (nil when it is unset or empty), or an
// error naming the variable and its value.
func EnvProviders() ([]Provider, error) {
	v := strings.TrimSpace(os.Getenv(ProvidersEnv))
	if v == "" {
		return nil, nil
	}
	var out []Provider
	for _, f := range strings.Split(v, ",") {
		p, err := ParseProvider(f)
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", ProvidersEnv, v, err)
		}
		out = append(out, p)
	}
	return out, nil
}
