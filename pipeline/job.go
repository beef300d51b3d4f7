package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sourcegraph/conc/pool"
)

// Job is what a stage sees of one run of it: its parameters, inputs, outputs and the run's
// settings. A stage reads its inputs with ReadShard/ReadAll and writes its outputs with
// MapShards or WriteRows.
type Job struct {
	Run     string // run name
	ID      string // stage id
	Kind    *Kind
	Params  any    // *P of the kind's params struct
	Dir     string // the stage's directory: <workdir>/<run>/<id>/ (outputs are subfolders)
	Seed    uint64 // the run seed
	Workers int    // bounded concurrency for shard work
	Force   bool   // recompute shards even when up to date
	Log     *slog.Logger

	slice       Slice
	fingerprint string
	inputs      map[string]*Dataset
	outputs     map[string]*Output
	progress    progressSink
	retryFailed bool    // Options.RetryFailed
	maxFailed   float64 // Options.MaxFailedShare, resolved

	mu      sync.Mutex
	records map[string]any
}

// Slice selects the shards one worker of a multi-machine run processes: shard i belongs to
// worker i % Count. The zero value (Count 0) selects every shard.
type Slice struct{ Index, Count int }

// Has reports whether shard i is in the slice.
func (s Slice) Has(i int) bool { return s.Count <= 1 || i%s.Count == s.Index }

// Sliced reports whether only part of the shards are selected.
func (s Slice) Sliced() bool { return s.Count > 1 }

// Input returns the dataset connected to input port name, or nil for an unconnected optional
// input.
func (j *Job) Input(name string) *Dataset { return j.inputs[name] }

// Inputs returns the datasets connected to input port name in config order: the entries of a
// list-valued port, or the single dataset of a plain one (nil when unconnected).
func (j *Job) Inputs(name string) []*Dataset {
	if ds, ok := j.inputs[name]; ok {
		return []*Dataset{ds}
	}
	var out []*Dataset
	for _, port := range sortedKeys(j.inputs) {
		if base, listed := splitListPort(port); listed && base == name {
			out = append(out, j.inputs[port])
		}
	}
	return out
}

// Output returns the output dataset named name. It panics for a name the kind did not declare
// (a programming error in the stage).
func (j *Job) Output(name string) *Output {
	o, ok := j.outputs[name]
	if !ok {
		panic(fmt.Sprintf("stage kind %s has no output %q", j.Kind.Name, name))
	}
	return o
}

// Fingerprint identifies the kind, version, parameters and seed of this job.
func (j *Job) Fingerprint() string { return j.fingerprint }

// Record adds a key/value (seeds used, final losses, metric summaries...) to this stage's entry
// in the run manifest.
func (j *Job) Record(key string, value any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.records == nil {
		j.records = map[string]any{}
	}
	j.records[key] = value
}

// Progress starts a progress report of what (shown after the stage id unless it is the unit
// itself) for total units of work (0 if unknown).
func (j *Job) Progress(what string, total int, unit string) *Progress {
	return newProgress(j.progress, j.Log, j.ID, what, total, unit)
}

// Retry reports whether a row that a previous attempt left must be made again: it failed
// transiently, or it failed at all and the run retries every failure (Options.RetryFailed).
func (j *Job) Retry(row FailedRow) bool {
	reason, transient := row.RowFailure()
	return reason != "" && (transient || j.retryFailed)
}

// retries reports whether a shard with footer f is redone to retry its failed rows.
func (j *Job) retries(failed, transient int64) bool {
	return transient > 0 || (j.retryFailed && failed > 0)
}

// Output is an output dataset being written.
type Output struct {
	Name   string
	Dir    string
	job    *Job
	schema string
	shards int // planned shard count, -1 until known
	keys   []string

	old     *Manifest      // the manifest the last complete run left, nil if none
	damaged map[int]string // shards of old that no longer match it

	mu      sync.Mutex
	written map[int]writtenShard // shards this process wrote
}

// writtenShard is what a process knows of a shard it wrote, so that the manifest need not
// read it again: its sha256, and the size and time the file had just after the rename.
type writtenShard struct {
	sha256  string
	size    int64
	modTime int64
}

// ShardFunc makes the rows of one output shard.
type ShardFunc[T any] func(ctx context.Context, shard int) ([]T, error)

// MapShards writes n shards of out, shard i made by fn(ctx, i), with bounded concurrency
// (job.Workers). Shards that already exist with the same key (same stage fingerprint and same
// input shard i content) are kept, so a rerun after a kill redoes only the missing shards;
// shards that no longer match the last manifest (damaged), and shards holding rows that failed
// transiently (FailedRow; every failed row with Options.RetryFailed) are redone: fn may keep
// the other rows of such a shard with PreviousRows. Each shard is written atomically. Output
// does not depend on the worker count: shard i is a function of its inputs and the seed only.
// With a slice (--shard-index), only the slice's shards are made.
func MapShards[T any](ctx context.Context, job *Job, out *Output, n int, fn ShardFunc[T]) error {
	out.schema = SchemaText[T]()
	if err := out.plan(n); err != nil {
		return err
	}
	var todo []int
	kept, retried, damaged := 0, 0, 0
	for i := 0; i < n; i++ {
		if !job.slice.Has(i) {
			continue
		}
		key, err := out.key(i)
		if err != nil {
			return err
		}
		if job.Force {
			todo = append(todo, i)
			continue
		}
		if _, bad := out.damaged[i]; bad {
			damaged++
			todo = append(todo, i)
			continue
		}
		f, err := readFooter(filepath.Join(out.Dir, ShardName(i)))
		switch {
		case err != nil || f.Key != key:
			todo = append(todo, i)
		case job.retries(f.Failed, f.Transient):
			retried++
			todo = append(todo, i)
		default:
			kept++
		}
	}
	if kept > 0 || retried > 0 || damaged > 0 {
		job.Log.Info("reusing shards already written", "output", out.Name, "kept", kept, "todo", len(todo),
			"retrying_failed_rows", retried, "damaged", damaged)
	}
	prog := job.Progress(out.Name, kept+len(todo), "shards")
	prog.Resume(kept)
	defer prog.Done()
	workers := max(job.Workers, 1)
	p := pool.New().WithContext(ctx).WithCancelOnError().WithFirstError().WithMaxGoroutines(workers)
	for _, i := range todo {
		p.Go(func(ctx context.Context) error {
			rows, err := fn(ctx, i)
			if err != nil {
				return fmt.Errorf("%s shard %d: %w", out.Name, i, err)
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := writeShard(out, i, rows); err != nil {
				return err
			}
			prog.AddRows(1, len(rows))
			return nil
		})
	}
	return p.Wait()
}

// PreviousRows returns the rows of out's shard i as an earlier run left them, when that shard
// was made from the same inputs and parameters (its key is current), is intact, and the run
// does not --force; nil otherwise. A ShardFunc that MapShards calls to retry a shard's failed
// rows keeps the others from it (see Job.Retry), so that they are not made again.
func PreviousRows[T any](job *Job, out *Output, i int) []T {
	if job.Force || i < 0 || i >= out.shards {
		return nil
	}
	if _, bad := out.damaged[i]; bad {
		return nil
	}
	key, err := out.key(i)
	if err != nil {
		return nil
	}
	path := filepath.Join(out.Dir, ShardName(i))
	if f, err := readFooter(path); err != nil || f.Key != key {
		return nil
	}
	rows, err := ReadFile[T](path)
	if err != nil {
		return nil
	}
	return rows
}

// WriteRows writes rows as out's whole content, cut into shards of shardSize rows (for stages
// that are not shard-parallel: joins, training, evaluation).
func WriteRows[T any](job *Job, out *Output, rows []T, shardSize int) error {
	if shardSize < 1 {
		shardSize = len(rows)
	}
	n := 0
	if len(rows) > 0 {
		n = (len(rows) + shardSize - 1) / shardSize
	}
	out.schema = SchemaText[T]()
	if err := out.plan(n); err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		end := min((i+1)*shardSize, len(rows))
		if err := writeShard(out, i, rows[i*shardSize:end]); err != nil {
			return err
		}
	}
	return nil
}

func writeShard[T any](out *Output, i int, rows []T) error {
	key, err := out.key(i)
	if err != nil {
		return err
	}
	data, err := encodeShard(rows, i, key)
	if err != nil {
		return fmt.Errorf("%s: %w", out.Dir, err)
	}
	path := filepath.Join(out.Dir, ShardName(i))
	if err := writeAtomic(path, data); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if st, err := os.Stat(path); err == nil {
		out.mu.Lock()
		if out.written == nil {
			out.written = map[int]writtenShard{}
		}
		out.written[i] = writtenShard{sha256: hex.EncodeToString(sum[:]), size: st.Size(), modTime: st.ModTime().UnixNano()}
		out.mu.Unlock()
	}
	return nil
}

// plan fixes the shard count and writes it down for sliced runs downstream.
func (o *Output) plan(n int) error {
	if o.shards >= 0 && o.shards != n {
		return fmt.Errorf("output %s planned twice with different shard counts (%d, %d)", o.Name, o.shards, n)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	removeAbandonedTemps(o.Dir)
	o.shards = n
	o.keys = make([]string, n)
	return WriteJSONAtomic(filepath.Join(o.Dir, planFile), plan{Fingerprint: o.job.fingerprint, Shards: n})
}

// key returns shard i's key: the job fingerprint plus, for each input, the content of its
// shard i when it has as many shards as this output (shard-aligned inputs), or its whole
// content otherwise. It fails when an aligned input shard does not exist (yet).
func (o *Output) key(i int) (string, error) {
	if o.keys[i] != "" {
		return o.keys[i], nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%d\n", o.job.fingerprint, o.Name, i)
	for _, port := range sortedKeys(o.job.inputs) {
		ds := o.job.inputs[port]
		if ds == nil {
			continue
		}
		content := ds.ContentHash()
		if ds.NumShards() == o.shards {
			sum, _, err := shardHash(ds, i)
			if err != nil {
				return "", fmt.Errorf("input %s: %w", port, err)
			}
			content = sum
		}
		fmt.Fprintf(h, "%s=%s\n", port, content)
	}
	o.keys[i] = hex.EncodeToString(h.Sum(nil))
	return o.keys[i], nil
}

// shardHash returns the sha256 of shard i, from the manifest when complete.
func shardHash(ds *Dataset, i int) (string, int64, error) {
	if ds.Manifest != nil {
		s := ds.Manifest.Shards[i]
		return s.SHA256, s.Bytes, nil
	}
	return fileSHA256(ds.ShardPath(i))
}

// finalize checks that every planned shard is present and current, removes stale files and
// writes the manifest. It returns false (and no error) when shards are missing in a sliced run,
// and a *FailedRowsError when more than the allowed share of the rows failed (the shards stay,
// the manifest is not written, so a rerun retries).
func (o *Output) finalize(inputs map[string]Input) (bool, error) {
	if o.shards < 0 {
		return false, fmt.Errorf("stage wrote nothing to output %q", o.Name)
	}
	m := &Manifest{
		Format:      "cocoflow.dataset/v1",
		Run:         o.job.Run,
		Stage:       o.job.ID,
		Kind:        o.job.Kind.Name,
		KindVersion: o.job.Kind.Version,
		Output:      o.Name,
		Fingerprint: o.job.fingerprint,
		Params:      o.job.Kind.Params.Resolved(o.job.Params, false),
		Inputs:      inputs,
		Seed:        o.job.Seed,
		Schema:      o.schema,
	}
	content := sha256.New()
	var missing []int
	var fails failedRows
	for i := 0; i < o.shards; i++ {
		path := filepath.Join(o.Dir, ShardName(i))
		key, err := o.key(i)
		if err != nil {
			missing = append(missing, i)
			continue
		}
		f, err := readFooter(path)
		if err != nil || f.Key != key {
			missing = append(missing, i)
			continue
		}
		info, err := o.shardInfo(i, path)
		if err != nil {
			return false, err
		}
		info.Rows, info.Failed, info.Transient = f.Rows, f.Failed, f.Transient
		m.Shards = append(m.Shards, info)
		m.Rows += f.Rows
		m.FailedRows += f.Failed
		fails.add(f)
		fmt.Fprintln(content, info.SHA256)
	}
	if err := fails.check(o, m.Rows); err != nil {
		return false, err
	}
	if len(missing) > 0 {
		if o.job.slice.Sliced() {
			return false, nil
		}
		return false, fmt.Errorf("output %s: shards %v were not written", o.Name, missing)
	}
	for _, i := range existingShards(o.Dir) {
		if i >= o.shards {
			if err := os.Remove(filepath.Join(o.Dir, ShardName(i))); err != nil {
				return false, err
			}
		}
	}
	m.ContentHash = hex.EncodeToString(content.Sum(nil))
	if err := WriteJSONAtomic(filepath.Join(o.Dir, ManifestFile), m); err != nil {
		return false, err
	}
	return true, nil
}

// shardInfo returns the size, time and sha256 of shard i at path, reading the file only when
// neither this process wrote it nor the last manifest lists it unchanged.
func (o *Output) shardInfo(i int, path string) (ShardInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return ShardInfo{}, err
	}
	info := ShardInfo{File: ShardName(i), Bytes: st.Size(), ModTime: st.ModTime().UnixNano()}
	o.mu.Lock()
	w, ok := o.written[i]
	o.mu.Unlock()
	_, bad := o.damaged[i]
	switch {
	case ok && w.size == info.Bytes && w.modTime == info.ModTime:
		info.SHA256 = w.sha256
	case !ok && !bad && o.old != nil && i < len(o.old.Shards) && o.old.Shards[i].ModTime == info.ModTime &&
		o.old.Shards[i].Bytes == info.Bytes && o.old.Shards[i].File == info.File:
		info.SHA256 = o.old.Shards[i].SHA256
	default:
		if info.SHA256, _, err = fileSHA256(path); err != nil {
			return ShardInfo{}, err
		}
	}
	return info, nil
}

// failedRows adds up the failed rows of an output's shards.
type failedRows struct {
	failed, transient int64
	notes             []string
}

func (f *failedRows) add(ft footer) {
	f.failed += ft.Failed
	f.transient += ft.Transient
	for _, n := range ft.Failures {
		if len(f.notes) < failureNotes {
			f.notes = append(f.notes, n)
		}
	}
}

// check logs the failed rows and returns a *FailedRowsError when more than the allowed share
// of the rows failed.
func (f *failedRows) check(o *Output, rows int64) error {
	if f.failed == 0 {
		return nil
	}
	o.job.Log.Warn("rows failed; they are kept with their error", "output", o.Name, "failed", f.failed,
		"of", rows, "transient", f.transient, "first", strings.Join(f.notes, " | "))
	if rows == 0 || float64(f.failed) <= o.job.maxFailed*float64(rows) {
		return nil
	}
	return &FailedRowsError{Output: o.Name, Failed: f.failed, Rows: rows, Transient: f.transient, Share: o.job.maxFailed, First: f.notes}
}

// FailedRowsError is a stage's failure when more than Options.MaxFailedShare of an output's
// rows failed.
type FailedRowsError struct {
	Output       string
	Failed, Rows int64
	Transient    int64 // of the failed rows, those a plain rerun retries
	Share        float64
	First        []string // the first reasons
}

// Error gives the count, the first reasons and what a rerun does.
func (e *FailedRowsError) Error() string {
	retry := fmt.Sprintf("a plain rerun retries the %d that failed transiently", e.Transient)
	if e.Transient == 0 {
		retry = "none failed transiently (a plain rerun keeps them; --retry-failed retries them all)"
	}
	return fmt.Sprintf("output %s: %d of %d rows failed, more than the allowed share %.3g (--max-failed-share); first: %s; "+
		"the rows are kept with their error and %s",
		e.Output, e.Failed, e.Rows, max(e.Share, 0), strings.Join(e.First, " | "), retry)
}

// fingerprintOf hashes what determines a stage's output apart from its inputs: the kind and
// its version, the parameters, the seed and the digests of the model weights it loads (which
// it also returns, nil when the kind loads none).
func fingerprintOf(k *Kind, params any, seed uint64) (string, map[string]string, error) {
	vals, err := json.Marshal(Values(k.Params.Resolved(params, true)))
	if err != nil {
		return "", nil, err
	}
	var models map[string]string
	if k.Models != nil {
		if models, err = k.Models(params); err != nil {
			return "", nil, fmt.Errorf("model weights: %w", err)
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%d\n", k.Name, k.Version, vals, seed)
	if len(models) > 0 {
		m, err := json.Marshal(models) // sorted keys
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(h, "%s\n", m)
	}
	return hex.EncodeToString(h.Sum(nil)), models, nil
}
