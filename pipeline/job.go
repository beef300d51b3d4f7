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
	"sync"

	"github.com/parquet-go/parquet-go"
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

// Progress starts a progress report for total units of work (0 if unknown).
func (j *Job) Progress(what string, total int, unit string) *Progress {
	return newProgress(j.progress, j.Log, j.ID+": "+what, total, unit)
}

// Output is an output dataset being written.
type Output struct {
	Name   string
	Dir    string
	job    *Job
	schema string
	shards int // planned shard count, -1 until known
	keys   []string
}

// ShardFunc makes the rows of one output shard.
type ShardFunc[T any] func(ctx context.Context, shard int) ([]T, error)

// MapShards writes n shards of out, shard i made by fn(ctx, i), with bounded concurrency
// (job.Workers). Shards that already exist with the same key (same stage fingerprint and same
// input shard i content) are kept, so a rerun after a kill redoes only the missing shards.
// Each shard is written atomically. Output does not depend on the worker count: shard i is a
// function of its inputs and the seed only. With a slice (--shard-index), only the slice's
// shards are made.
func MapShards[T any](ctx context.Context, job *Job, out *Output, n int, fn ShardFunc[T]) error {
	out.schema = SchemaText[T]()
	if err := out.plan(n); err != nil {
		return err
	}
	var todo []int
	kept := 0
	for i := 0; i < n; i++ {
		if !job.slice.Has(i) {
			continue
		}
		key, err := out.key(i)
		if err != nil {
			return err
		}
		if !job.Force && shardKey(filepath.Join(out.Dir, ShardName(i))) == key {
			kept++
			continue
		}
		todo = append(todo, i)
	}
	if kept > 0 {
		job.Log.Info("reusing shards already written", "output", out.Name, "kept", kept, "todo", len(todo))
	}
	prog := job.Progress(out.Name, len(todo), "shards")
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
	return writeAtomic(filepath.Join(out.Dir, ShardName(i)), data)
}

// plan fixes the shard count and writes it down for sliced runs downstream.
func (o *Output) plan(n int) error {
	if o.shards >= 0 && o.shards != n {
		return fmt.Errorf("output %s planned twice with different shard counts (%d, %d)", o.Name, o.shards, n)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	removeTemps(o.Dir)
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
// writes the manifest. It returns false (and no error) when shards are missing in a sliced run.
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
	for i := 0; i < o.shards; i++ {
		path := filepath.Join(o.Dir, ShardName(i))
		key, err := o.key(i)
		if err != nil || shardKey(path) != key {
			missing = append(missing, i)
			continue
		}
		sum, size, err := fileSHA256(path)
		if err != nil {
			return false, err
		}
		rows, err := footerRows(path)
		if err != nil {
			return false, err
		}
		m.Shards = append(m.Shards, ShardInfo{File: ShardName(i), Rows: rows, Bytes: size, SHA256: sum})
		m.Rows += rows
		fmt.Fprintln(content, sum)
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

func footerRows(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return pf.NumRows(), nil
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
