package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Options are the run-time settings of `cocoflow run` that are not part of the config.
type Options struct {
	Workdir  string   // overrides the config's workdir when set
	Force    bool     // recompute even what is up to date
	Only     []string // run only these stages (their inputs must exist)
	Slice    Slice    // run a slice of every shard-parallel stage (multi-machine runs)
	Workers  int      // concurrent shards per stage; <= 0 means GOMAXPROCS
	Log      *slog.Logger
	Terminal io.Writer // where progress lines are drawn; nil for log lines only
	Args     []string  // the command line, for the run manifest

	// Wait makes a run wait while another unsliced run holds the run directory (see
	// LeaseFile), instead of failing with an *InUseError.
	Wait bool
	// Verify hashes every shard a stage would reuse. Without it a shard whose size and
	// modification time are those of its manifest is taken as intact; others are hashed.
	Verify bool
	// RetryFailed redoes every failed row (FailedRow), permanent failures included; rows that
	// failed transiently are retried by every run.
	RetryFailed bool
	// MaxFailedShare fails a stage when more than this share of an output's rows failed; 0
	// means DefaultMaxFailedShare, a negative value fails on any failed row.
	MaxFailedShare float64
}

// DefaultMaxFailedShare is the share of failed rows above which a stage fails, so that a stage
// whose rows all failed (a server that was down) is an error and not a quiet success.
const DefaultMaxFailedShare = 0.5

// maxFailedShare resolves Options.MaxFailedShare.
func (o Options) maxFailedShare() float64 {
	switch {
	case o.MaxFailedShare == 0:
		return DefaultMaxFailedShare
	case o.MaxFailedShare < 0:
		return 0
	}
	return o.MaxFailedShare
}

// Status of a stage in a run.
const (
	StatusRan         = "ran"
	StatusUpToDate    = "up-to-date"
	StatusPartial     = "partial"  // a sliced run wrote its shards; the dataset is not complete yet
	StatusDeferred    = "deferred" // not shard-parallel: left for a run without a slice
	StatusNotRun      = "not-run"  // excluded by --only
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted" // cancelled (a signal, or a lost lease) while it ran
	StatusBlocked     = "not-reached" // a stage before it failed
)

// RunManifest is written to <workdir>/<run>/_run.json (and kept under _runs/) after every
// invocation: what ran, with which resolved config, seeds, versions and timings.
type RunManifest struct {
	Format     string          `json:"format"`
	Run        string          `json:"run"`
	Config     string          `json:"config"`
	ConfigHash string          `json:"config_sha256"`
	Args       []string        `json:"args,omitempty"`
	Seed       uint64          `json:"seed"`
	Workdir    string          `json:"workdir"`
	Slice      *Slice          `json:"slice,omitempty"`
	Workers    int             `json:"workers"`
	Force      bool            `json:"force,omitempty"`
	Started    time.Time       `json:"started"`
	Finished   time.Time       `json:"finished"`
	Seconds    float64         `json:"seconds"`
	Build      BuildInfo       `json:"build"`
	Stages     []*StageRecord  `json:"stages"`
	Error      string          `json:"error,omitempty"`
	Resolved   []ResolvedStage `json:"resolved_config"`
}

// ResolvedStage is one stage of the config with every parameter (defaults included).
type ResolvedStage struct {
	ID     string            `json:"id"`
	Uses   string            `json:"uses"`
	Inputs map[string]string `json:"inputs,omitempty"`
	With   Values            `json:"with"`
}

// StageRecord is what happened to one stage.
type StageRecord struct {
	ID          string                   `json:"id"`
	Kind        string                   `json:"kind"`
	Status      string                   `json:"status"`
	Seconds     float64                  `json:"seconds"`
	Fingerprint string                   `json:"fingerprint,omitempty"`
	Models      map[string]string        `json:"models,omitempty"` // weight digests by role (Kind.Models)
	Inputs      map[string]Input         `json:"inputs,omitempty"`
	Outputs     map[string]OutputSummary `json:"outputs,omitempty"`
	Records     map[string]any           `json:"records,omitempty"`
	Error       string                   `json:"error,omitempty"`
}

// OutputSummary summarises a finished output dataset in the run manifest.
type OutputSummary struct {
	Path        string `json:"path"`
	Rows        int64  `json:"rows"`
	FailedRows  int64  `json:"failed_rows,omitempty"`
	Shards      int    `json:"shards"`
	ContentHash string `json:"content_hash"`
}

// Run executes cfg: every stage in dependency order, skipping the stages whose outputs are up
// to date. Without a slice it holds the run directory's lease while it runs (see LeaseFile):
// if another run holds it, Run returns an *InUseError, or waits with Options.Wait. It writes
// the run manifest even when a stage fails, and returns the first error.
func Run(ctx context.Context, cfg *Config, opt Options) (*RunManifest, error) {
	log := opt.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	workdir := cfg.Workdir
	if opt.Workdir != "" {
		workdir = opt.Workdir
	}
	workers := opt.Workers
	if workers <= 0 {
		workers = max(1, runtimeProcs())
	}
	order, err := cfg.Order()
	if err != nil {
		return nil, err
	}
	for _, id := range opt.Only {
		if _, ok := cfg.Stage(id); !ok {
			return nil, fmt.Errorf("--only %s: no such stage in %s (stages: %s)", id, cfg.Path, strings.Join(stageIDs(cfg), ", "))
		}
	}
	runDir := filepath.Join(workdir, cfg.Name)
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	if opt.Slice.Sliced() {
		if err := checkNoLease(ctx, runDir, opt.Wait, log); err != nil {
			return nil, err
		}
	} else {
		lease, leaseCtx, err := acquireLease(ctx, runDir, opt.Args, opt.Wait, log)
		if err != nil {
			return nil, err
		}
		defer lease.release()
		ctx = leaseCtx
	}
	rm := &RunManifest{
		Format:  "cocoflow.run/v1",
		Run:     cfg.Name,
		Config:  cfg.Path,
		Args:    opt.Args,
		Seed:    cfg.Seed,
		Workdir: workdir,
		Workers: workers,
		Force:   opt.Force,
		Started: time.Now().UTC(),
	}
	if cfg.Path != "" {
		if data, err := os.ReadFile(cfg.Path); err == nil {
			sum := sha256.Sum256(data)
			rm.ConfigHash = hex.EncodeToString(sum[:])
		}
	}
	if opt.Slice.Sliced() {
		s := opt.Slice
		rm.Slice = &s
	}
	for _, sc := range cfg.Stages {
		rm.Resolved = append(rm.Resolved, ResolvedStage{ID: sc.ID, Uses: sc.Uses, Inputs: sc.Inputs, With: sc.Kind.Params.Resolved(sc.Params, false)})
	}

	r := &runner{cfg: cfg, opt: opt, log: log, workdir: workdir, workers: workers, sink: progressSink{term: opt.Terminal}, verified: map[string]bool{}}
	var runErr error
	for _, sc := range order {
		rec := &StageRecord{ID: sc.ID, Kind: sc.Uses}
		rm.Stages = append(rm.Stages, rec)
		if runErr != nil {
			rec.Status = StatusBlocked
			continue
		}
		if len(opt.Only) > 0 && !contains(opt.Only, sc.ID) {
			rec.Status = StatusNotRun
			continue
		}
		start := time.Now()
		err := r.runStage(ctx, sc, rec)
		rec.Seconds = time.Since(start).Seconds()
		switch {
		case err != nil && ctx.Err() != nil:
			rec.Status = StatusInterrupted
			if cause := context.Cause(ctx); errors.Is(cause, ErrLeaseLost) {
				err = cause
			}
			rec.Error = err.Error()
			runErr = fmt.Errorf("stage %s interrupted: %w", sc.ID, err)
		case err != nil:
			rec.Status = StatusFailed
			rec.Error = err.Error()
			runErr = fmt.Errorf("stage %s: %w", sc.ID, err)
		}
	}
	rm.Build = CurrentBuild() // now, so that it names the engines the stages started
	rm.Finished = time.Now().UTC()
	rm.Seconds = rm.Finished.Sub(rm.Started).Seconds()
	if runErr != nil {
		rm.Error = runErr.Error()
	}
	if err := writeRunManifest(runDir, rm); err != nil && runErr == nil {
		runErr = err
	}
	summarize(log, rm)
	return rm, runErr
}

func stageIDs(cfg *Config) []string {
	ids := make([]string, len(cfg.Stages))
	for i, sc := range cfg.Stages {
		ids[i] = sc.ID
	}
	return ids
}

func writeRunManifest(runDir string, rm *RunManifest) error {
	if err := WriteJSONAtomic(filepath.Join(runDir, "_run.json"), rm); err != nil {
		return fmt.Errorf("write run manifest: %w", err)
	}
	// One file per invocation, named so that slices started in the same millisecond on several
	// machines do not write one file.
	me := currentOwner()
	name := fmt.Sprintf("%s-%s-%d.json", rm.Started.Format("20060102T150405.000Z"), me.Machine, me.PID)
	if err := WriteJSONAtomic(filepath.Join(runDir, "_runs", name), rm); err != nil {
		return fmt.Errorf("write run manifest: %w", err)
	}
	return nil
}

func summarize(log *slog.Logger, rm *RunManifest) {
	counts := map[string]int{}
	for _, s := range rm.Stages {
		counts[s.Status]++
	}
	if counts[StatusUpToDate] == len(rm.Stages) {
		log.Info("nothing to do: every stage is up to date", "run", rm.Run, "stages", len(rm.Stages))
		return
	}
	var parts []string
	for _, st := range []string{StatusRan, StatusUpToDate, StatusPartial, StatusDeferred, StatusNotRun, StatusFailed, StatusInterrupted, StatusBlocked} {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
	}
	msg := "run finished"
	if counts[StatusInterrupted] > 0 {
		msg = "run interrupted"
	}
	log.Info(msg, "run", rm.Run, "stages", strings.Join(parts, ", "), "seconds", fmt.Sprintf("%.1f", rm.Seconds))
}

type runner struct {
	cfg     *Config
	opt     Options
	log     *slog.Logger
	workdir string
	workers int
	sink    progressSink
	// verified holds the dataset directories whose shards this invocation has checked against
	// their manifests (or written), so that each is checked once.
	verified map[string]bool
}

// datasetDir is where output port of stage id lives.
func (r *runner) datasetDir(stage, port string) string {
	return filepath.Join(r.workdir, r.cfg.Name, stage, port)
}

// inputDir resolves an input reference to a dataset directory.
func (r *runner) inputDir(ref string) (string, error) {
	res, err := r.cfg.resolveRef(ref)
	if err != nil {
		return "", err
	}
	switch {
	case res.Stage != "":
		return r.datasetDir(res.Stage, res.Output), nil
	case strings.HasPrefix(res.Dir, "@workdir/"):
		dir := filepath.Join(r.workdir, strings.TrimPrefix(res.Dir, "@workdir/"))
		if _, err := os.Stat(filepath.Join(dir, ManifestFile)); err == nil {
			return dir, nil
		}
		// run/stage: the stage's only output.
		entries, _ := os.ReadDir(dir)
		var outs []string
		for _, e := range entries {
			if e.IsDir() {
				if _, err := os.Stat(filepath.Join(dir, e.Name(), ManifestFile)); err == nil {
					outs = append(outs, e.Name())
				}
			}
		}
		if len(outs) == 1 {
			return filepath.Join(dir, outs[0]), nil
		}
		if len(outs) > 1 {
			return "", fmt.Errorf("%s has several datasets (%s): name one as %s/<output>", dir, strings.Join(outs, ", "), ref)
		}
		return "", fmt.Errorf("no dataset at %s: run the config that produces %s first", dir, ref)
	}
	return res.Dir, nil
}

func (r *runner) runStage(ctx context.Context, sc *StageConfig, rec *StageRecord) error {
	log := r.log.With("stage", sc.ID)
	fp, models, err := fingerprintOf(sc.Kind, sc.Params, r.cfg.Seed)
	if err != nil {
		return err
	}
	rec.Fingerprint, rec.Models = fp, models
	sliced := r.opt.Slice.Sliced()
	if sliced && !sc.Kind.Sharded {
		rec.Status = StatusDeferred
		log.Info("not shard-parallel: runs when the config is run without --shard-index")
		return nil
	}
	job := &Job{
		Run: r.cfg.Name, ID: sc.ID, Kind: sc.Kind, Params: sc.Params,
		Dir:  filepath.Join(r.workdir, r.cfg.Name, sc.ID),
		Seed: r.cfg.Seed, Workers: r.workers, Force: r.opt.Force, Log: log,
		slice: r.opt.Slice, fingerprint: fp, progress: r.sink,
		inputs: map[string]*Dataset{}, outputs: map[string]*Output{},
		retryFailed: r.opt.RetryFailed, maxFailed: r.opt.maxFailedShare(),
	}
	rec.Inputs = map[string]Input{}
	for _, port := range sortedKeys(sc.Inputs) {
		dir, err := r.inputDir(sc.Inputs[port])
		if err != nil {
			return fmt.Errorf("input %s: %w", port, err)
		}
		var ds *Dataset
		if sliced {
			ds, err = openPartial(dir)
		} else {
			ds, err = OpenDataset(dir)
		}
		if err != nil {
			return fmt.Errorf("input %s: %w", port, err)
		}
		if err := r.verify(ds); err != nil {
			return fmt.Errorf("input %s: %w", port, err)
		}
		job.inputs[port] = ds
		rec.Inputs[port] = Input{Path: dir, ContentHash: ds.ContentHash()}
	}
	for _, p := range sc.Kind.Outputs {
		o := &Output{Name: p.Name, Dir: r.datasetDir(sc.ID, p.Name), job: job, shards: -1}
		if o.old = loadManifest(o.Dir); o.old != nil && !r.opt.Force {
			o.damaged = damagedShards(o.Dir, o.old, r.opt.Verify, r.workers)
			if len(o.damaged) > 0 {
				first := sortedInts(o.damaged)[0]
				log.Warn("shards no longer match the manifest; they are made again", "output", p.Name,
					"count", len(o.damaged), "first", ShardName(first)+": "+o.damaged[first])
			}
		}
		job.outputs[p.Name] = o
	}
	if !r.opt.Force && r.upToDate(job, rec.Inputs) {
		rec.Status = StatusUpToDate
		rec.Outputs = r.outputSummaries(job)
		for _, o := range job.outputs {
			r.verified[o.Dir] = true
		}
		log.Info("up to date, skipped")
		return nil
	}
	// Outputs are about to change: withdraw their manifests first, so nothing downstream reads
	// a mix of old and new shards if this run dies.
	for _, o := range job.outputs {
		if err := os.Remove(filepath.Join(o.Dir, ManifestFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	stage, err := sc.Kind.New(sc.Params)
	if err != nil {
		return err
	}
	log.Info("running", "kind", sc.Kind.Name)
	if err := stage.Run(ctx, job); err != nil {
		return err
	}
	complete := true
	for _, name := range sortedKeys(job.outputs) {
		ok, err := job.outputs[name].finalize(rec.Inputs)
		if err != nil {
			return err
		}
		complete = complete && ok
		r.verified[job.outputs[name].Dir] = ok
	}
	rec.Records = job.records
	if !complete {
		rec.Status = StatusPartial
		log.Info("slice done; the dataset completes when every slice has run", "slice", fmt.Sprintf("%d/%d", r.opt.Slice.Index, r.opt.Slice.Count))
		return nil
	}
	rec.Status = StatusRan
	rec.Outputs = r.outputSummaries(job)
	return nil
}

// upToDate reports whether every output has a manifest made with the job's fingerprint from the
// same input contents, every shard it lists is intact, and no shard holds failed rows to retry.
func (r *runner) upToDate(job *Job, inputs map[string]Input) bool {
	for _, o := range job.outputs {
		m := o.old
		if m == nil || len(o.damaged) > 0 || m.Fingerprint != job.fingerprint || len(m.Inputs) != len(inputs) {
			return false
		}
		for port, in := range inputs {
			if m.Inputs[port].ContentHash != in.ContentHash {
				return false
			}
		}
		for i, s := range m.Shards {
			if s.File != ShardName(i) || job.retries(s.Failed, s.Transient) {
				return false
			}
		}
	}
	return true
}

// verify checks a complete input dataset's shards against its manifest once per invocation
// (quickly, or by hashing every shard with Options.Verify); a damaged shard is a
// *DamagedError, since this stage cannot remake another stage's output.
func (r *runner) verify(ds *Dataset) error {
	if ds.Manifest == nil || r.verified[ds.Dir] {
		return nil
	}
	if damaged := damagedShards(ds.Dir, ds.Manifest, r.opt.Verify, r.workers); len(damaged) > 0 {
		return &DamagedError{Dir: ds.Dir, Damaged: damaged}
	}
	r.verified[ds.Dir] = true
	return nil
}

func (r *runner) outputSummaries(job *Job) map[string]OutputSummary {
	out := map[string]OutputSummary{}
	for name, o := range job.outputs {
		if ds, err := OpenDataset(o.Dir); err == nil {
			out[name] = OutputSummary{Path: o.Dir, Rows: ds.Rows(), FailedRows: ds.Manifest.FailedRows, Shards: ds.NumShards(), ContentHash: ds.ContentHash()}
		}
	}
	return out
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
