package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	mlctx "github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// FitOptions configure Fit.
type FitOptions struct {
	Steps           int               // total optimizer steps of the run (not of this call)
	CheckpointDir   string            // where checkpoints go; "" for none
	CheckpointEvery int               // steps between checkpoints (0: only at the end)
	Meta            map[string]string // stored with every checkpoint
	// Frozen names (by Variable.ScopeAndName) variables that training never changes and that are
	// loaded from elsewhere, such as a frozen generator: checkpoints leave them out (SaveExcept).
	Frozen map[string]bool
}

// StepFunc makes the inputs of step k (0-based). Batches must be a function of k alone (for
// example drawn from a generator seeded with k), so that a resumed run sees the same data as
// an uninterrupted one.
type StepFunc func(step int) ([]any, error)

// ReportFunc receives the outputs of a step (outputs[0] is the loss) as float64 scalars.
type ReportFunc func(step int, outputs []float64, elapsed time.Duration)

// staleCheckpoint reports whether a checkpoint's meta disagrees with the run's Meta on a key
// the run sets: a checkpoint of another configuration, which must not be resumed.
func staleCheckpoint(stored, want map[string]string) bool {
	for k, v := range want {
		if stored[k] != v {
			return true
		}
	}
	return false
}

// Fit runs a training loop on ctx: graphFn (a context.NewExec graph function whose first output
// is the scalar loss and which applies the optimizer update itself) is compiled once and called
// for the remaining steps. If CheckpointDir holds a checkpoint with the same Meta (a fingerprint
// of the run's settings, say), ctx is restored from it first and training continues at its global
// step; one with other Meta values is from another configuration and is discarded. A checkpoint
// is written every CheckpointEvery steps, at the end, and when runCtx is cancelled (the run then
// returns runCtx's error). A run killed hard loses at most the steps since the last checkpoint.
func Fit(runCtx context.Context, ctx *mlctx.Context, graphFn any, next StepFunc, opt FitOptions, report ReportFunc) error {
	if opt.Steps < 1 {
		return fmt.Errorf("fit: steps must be at least 1, got %d", opt.Steps)
	}
	if opt.CheckpointDir != "" {
		if err := resume(ctx, opt); err != nil {
			return fmt.Errorf("fit: resume: %w", err)
		}
	}
	start := int(optimizers.GetGlobalStep(ctx))
	if start >= opt.Steps {
		return nil
	}
	b, err := Backend()
	if err != nil {
		return err
	}
	exec, err := mlctx.NewExecAny(b, ctx.Checked(false), graphFn)
	if err != nil {
		return fmt.Errorf("fit: build the training graph: %w", err)
	}
	defer exec.Finalize()
	save := func(step int) error {
		if opt.CheckpointDir == "" {
			return nil
		}
		meta := map[string]string{"step": strconv.Itoa(step)}
		for k, v := range opt.Meta {
			meta[k] = v
		}
		return SaveExcept(ctx, opt.CheckpointDir, meta, opt.Frozen)
	}
	t0 := time.Now()
	for step := start; step < opt.Steps; step++ {
		if err := runCtx.Err(); err != nil {
			if saveErr := save(step); saveErr != nil {
				return errors.Join(err, saveErr)
			}
			return err
		}
		inputs, err := next(step)
		if err != nil {
			return fmt.Errorf("fit: batch of step %d: %w", step, err)
		}
		outs, err := exec.Exec(inputs...)
		if err != nil {
			return fmt.Errorf("fit: step %d: %w", step, err)
		}
		if report != nil {
			vals := make([]float64, len(outs))
			for i, o := range outs {
				vals[i] = scalar(o)
			}
			report(step, vals, time.Since(t0))
		}
		for _, o := range outs {
			o.FinalizeAll()
		}
		if opt.CheckpointEvery > 0 && (step+1)%opt.CheckpointEvery == 0 && step+1 < opt.Steps {
			if err := save(step + 1); err != nil {
				return err
			}
		}
	}
	return save(opt.Steps)
}

// resume restores ctx from opt.CheckpointDir's checkpoint, reading the file once, unless there is
// none or it belongs to another configuration (then it is removed: ours overwrites it anyway).
func resume(ctx *mlctx.Context, opt FitOptions) error {
	path := filepath.Join(opt.CheckpointDir, CheckpointFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	hdr, _, err := parseCheckpoint(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if staleCheckpoint(hdr.Meta, opt.Meta) {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("drop the checkpoint of another configuration: %w", err)
		}
		return nil
	}
	_, err = LoadBytes(ctx, raw, path)
	return err
}

// scalar reads a scalar tensor of any float or int dtype as float64 (NaN for non-scalars).
func scalar(t *tensors.Tensor) float64 {
	if t.Shape().Size() != 1 {
		return nanValue
	}
	switch v := t.Value().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	case int32:
		return float64(v)
	case int64:
		return float64(v)
	}
	return nanValue
}

var nanValue = math.NaN()
