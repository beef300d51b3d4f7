//go:build xla

// This file is compiled only with `go build -tags xla`: it links GoMLX's XLA backend (cgo, PJRT
// plugins for CPU or CUDA) and makes "xla" the default backend configuration.

package engine

import (
	_ "github.com/gomlx/gomlx/backends/xla" // registers the "xla" backend
)

func init() { xlaCompiled = true }
