package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/snappy"
	"github.com/sourcegraph/conc/pool"
)

// A dataset is a directory of Parquet shards part-00000.parquet, part-00001.parquet, ... plus
// _manifest.json, which is written last: a directory without a manifest is incomplete.

// ManifestFile is the name of a dataset's manifest.
const ManifestFile = "_manifest.json"

// planFile records, before any shard is written, how many shards a dataset will have and the
// fingerprint they are made with, so a sliced (--shard-index) run downstream can read a dataset
// that is not complete yet.
const planFile = "_plan.json"

// Shard metadata keys stored in every shard's Parquet footer.
const (
	metaKey   = "cocoflow.shard_key" // fingerprint of the inputs and parameters that made the shard
	metaShard = "cocoflow.shard"
	// Only in shards with failed rows (see FailedRow): how many, how many of them may succeed
	// on a later attempt, and the first reasons (a JSON list).
	metaFailed    = "cocoflow.failed_rows"
	metaTransient = "cocoflow.transient_rows"
	metaFailures  = "cocoflow.failures"
)

// failureNotes is how many failure reasons a shard's footer keeps.
const failureNotes = 3

// FailedRow is implemented by row types that can record a failure in place of a result (a
// caption the server could not make, a mask the segmenter refused). Writing shards counts such
// rows; a stage fails when more than Options.MaxFailedShare of its rows failed, and a plain
// rerun redoes the shards that hold a transient failure (see MapShards and PreviousRows).
type FailedRow interface {
	// RowFailure returns why the row failed ("" when it did not) and whether a later attempt
	// may succeed (a timeout, a busy or failing server) rather than fail the same way.
	RowFailure() (reason string, transient bool)
}

// Manifest describes a complete dataset.
type Manifest struct {
	Format      string           `json:"format"`
	Run         string           `json:"run"`
	Stage       string           `json:"stage"`
	Kind        string           `json:"kind"`
	KindVersion string           `json:"kind_version"`
	Output      string           `json:"output"`
	Fingerprint string           `json:"fingerprint"`
	Params      Values           `json:"params"`
	Inputs      map[string]Input `json:"inputs,omitempty"`
	Seed        uint64           `json:"seed"`
	Schema      string           `json:"schema"`
	Rows        int64            `json:"rows"`
	FailedRows  int64            `json:"failed_rows,omitempty"`
	Shards      []ShardInfo      `json:"shards"`
	ContentHash string           `json:"content_hash"`
}

// Input records which dataset a stage read.
type Input struct {
	Path        string `json:"path"`
	ContentHash string `json:"content_hash"`
}

// ShardInfo describes one shard file of a dataset.
type ShardInfo struct {
	File   string `json:"file"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// ModTime is the file's modification time (Unix nanoseconds) when the manifest was
	// written: a shard with the same size and time is taken to be unchanged without reading it
	// (see Options.Verify).
	ModTime   int64 `json:"mtime_ns,omitempty"`
	Failed    int64 `json:"failed_rows,omitempty"`    // rows that record a failure (FailedRow)
	Transient int64 `json:"transient_rows,omitempty"` // of which a later attempt may succeed
}

type plan struct {
	Fingerprint string `json:"fingerprint"`
	Shards      int    `json:"shards"`
}

// ShardName returns the file name of shard i.
func ShardName(i int) string { return fmt.Sprintf("part-%05d.parquet", i) }

var shardPattern = regexp.MustCompile(`^part-(\d{5,})\.parquet$`)

// Dataset is a dataset directory opened for reading.
type Dataset struct {
	Dir      string
	Manifest *Manifest // nil while the dataset is incomplete (sliced runs only)
	shards   int
}

// OpenDataset opens a complete dataset: its manifest must exist and list shards that exist.
func OpenDataset(dir string) (*Dataset, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		if _, statErr := os.Stat(dir); statErr != nil {
			return nil, fmt.Errorf("dataset %s does not exist", dir)
		}
		return nil, fmt.Errorf("dataset %s is incomplete (no %s): rerun the stage that writes it", dir, ManifestFile)
	}
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: invalid manifest: %w", filepath.Join(dir, ManifestFile), err)
	}
	for i, s := range m.Shards {
		if s.File != ShardName(i) {
			return nil, fmt.Errorf("%s: shard %d is named %q, want %q", filepath.Join(dir, ManifestFile), i, s.File, ShardName(i))
		}
		st, err := os.Stat(filepath.Join(dir, s.File))
		if err != nil {
			return nil, fmt.Errorf("dataset %s: shard listed in the manifest is missing: %w", dir, err)
		}
		if st.Size() != s.Bytes {
			return nil, fmt.Errorf("dataset %s: %s has %d bytes, the manifest says %d (truncated or replaced?)", dir, s.File, st.Size(), s.Bytes)
		}
	}
	return &Dataset{Dir: dir, Manifest: &m, shards: len(m.Shards)}, nil
}

// openPartial opens a dataset that may still be in the making by a sliced run: the shard count
// comes from its plan.
func openPartial(dir string) (*Dataset, error) {
	if ds, err := OpenDataset(dir); err == nil {
		return ds, nil
	}
	data, err := os.ReadFile(filepath.Join(dir, planFile))
	if err != nil {
		return nil, fmt.Errorf("dataset %s is neither complete nor planned: run the stage that writes it first", dir)
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, planFile), err)
	}
	return &Dataset{Dir: dir, shards: p.Shards}, nil
}

// NumShards returns the number of shards.
func (d *Dataset) NumShards() int { return d.shards }

// Rows returns the number of rows (0 for an incomplete dataset).
func (d *Dataset) Rows() int64 {
	if d.Manifest == nil {
		return 0
	}
	return d.Manifest.Rows
}

// ShardPath returns the path of shard i.
func (d *Dataset) ShardPath(i int) string { return filepath.Join(d.Dir, ShardName(i)) }

// ContentHash identifies the dataset's content ("" while incomplete).
func (d *Dataset) ContentHash() string {
	if d.Manifest == nil {
		return ""
	}
	return d.Manifest.ContentHash
}

// ReadShard reads every row of shard i of ds as T. The file's columns must include every column
// of T with the same type; a truncated or foreign file is an error naming it.
func ReadShard[T any](ds *Dataset, i int) ([]T, error) {
	if i < 0 || i >= ds.shards {
		return nil, fmt.Errorf("dataset %s: no shard %d (it has %d)", ds.Dir, i, ds.shards)
	}
	return ReadFile[T](ds.ShardPath(i))
}

// ReadAll reads every shard of ds, in order.
func ReadAll[T any](ds *Dataset) ([]T, error) {
	var all []T
	for i := 0; i < ds.shards; i++ {
		rows, err := ReadShard[T](ds, i)
		if err != nil {
			return nil, err
		}
		all = append(all, rows...)
	}
	return all, nil
}

// ReadFile reads a Parquet file of T rows, checking that the file has T's columns.
func ReadFile[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file (truncated or corrupt?): %w", path, err)
	}
	if err := checkColumns[T](pf.Schema()); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r := parquet.NewGenericReader[T](f)
	defer r.Close()
	rows := make([]T, pf.NumRows())
	n, err := r.Read(rows)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: read rows: %w", path, err)
	}
	if int64(n) != pf.NumRows() {
		return nil, fmt.Errorf("%s: read %d of %d rows", path, n, pf.NumRows())
	}
	return rows, nil
}

// checkColumns reports the first column of T that the file lacks or stores with another type.
func checkColumns[T any](file *parquet.Schema) error {
	want := parquet.SchemaOf(new(T))
	have := map[string]string{}
	for _, path := range file.Columns() {
		leaf, _ := file.Lookup(path...)
		have[strings.Join(path, ".")] = leaf.Node.Type().String()
	}
	for _, path := range want.Columns() {
		name := strings.Join(path, ".")
		leaf, _ := want.Lookup(path...)
		got, ok := have[name]
		if !ok {
			return fmt.Errorf("missing column %q (want schema %s)", name, strings.Join(columnNames(want), ", "))
		}
		if got != leaf.Node.Type().String() {
			return fmt.Errorf("column %q is %s, want %s", name, got, leaf.Node.Type())
		}
	}
	return nil
}

func columnNames(s *parquet.Schema) []string {
	var names []string
	for _, p := range s.Columns() {
		names = append(names, strings.Join(p, "."))
	}
	return names
}

// SchemaText returns the Parquet schema of T rows as text, for manifests and docs.
func SchemaText[T any]() string { return parquet.SchemaOf(new(T)).String() }

// encodeShard writes rows as a Parquet file into memory, with the shard key in its footer and,
// when some rows failed (FailedRow), their counts and first reasons.
func encodeShard[T any](rows []T, shard int, key string) ([]byte, error) {
	var buf bytes.Buffer
	opts := []parquet.WriterOption{
		parquet.Compression(&snappy.Codec{}),
		parquet.CreatedBy("cocoflow", Version, ""),
		parquet.KeyValueMetadata(metaKey, key),
		parquet.KeyValueMetadata(metaShard, strconv.Itoa(shard)),
	}
	if failed, transient, notes := failuresOf(rows); failed > 0 {
		js, err := json.Marshal(notes)
		if err != nil {
			return nil, err
		}
		opts = append(opts,
			parquet.KeyValueMetadata(metaFailed, strconv.FormatInt(failed, 10)),
			parquet.KeyValueMetadata(metaTransient, strconv.FormatInt(transient, 10)),
			parquet.KeyValueMetadata(metaFailures, string(js)))
	}
	w := parquet.NewGenericWriter[T](&buf, append(opts, blobOptions[T]()...)...)
	if _, err := w.Write(rows); err != nil {
		return nil, fmt.Errorf("encode shard %d: %w", shard, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("encode shard %d: %w", shard, err)
	}
	return buf.Bytes(), nil
}

// blobOptions keeps binary columns (encoded images, weights) out of the page statistics and
// column index: their min/max are meaningless, and parquet-go would otherwise copy each page's
// extreme values into the footer, several times the blobs' own size for weights.
func blobOptions[T any]() []parquet.WriterOption {
	var zero T
	var opts []parquet.WriterOption
	schema := parquet.SchemaOf(zero)
	for _, path := range schema.Columns() {
		leaf, ok := schema.Lookup(path...)
		if !ok || leaf.Node.Type().Kind() != parquet.ByteArray || leaf.Node.Type().LogicalType() != nil {
			continue
		}
		opts = append(opts, parquet.SkipPageBounds(path...), parquet.SkipPageStatistics(path...))
	}
	return opts
}

// writeAtomic writes data to path through a temporary file in the same directory and a rename,
// so a reader (or a rerun after a kill) sees the old file, or the whole new one, never a part.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, tempPattern(filepath.Base(path)))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	// CreateTemp makes the file private; others who share the workdir read it (the umask is
	// not consulted: the final file is readable like one made by cp).
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteFileAtomic writes data to path atomically (temp file + rename); stages use it for
// artifacts such as reports and checkpoints.
func WriteFileAtomic(path string, data []byte) error { return writeAtomic(path, data) }

// WriteJSONAtomic writes v as indented JSON to path atomically.
func WriteJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeAtomic(path, append(data, '\n'))
}

// failuresOf counts the rows that failed and those that failed transiently, and returns the
// first reasons, when T is a FailedRow.
func failuresOf[T any](rows []T) (failed, transient int64, notes []string) {
	for i := range rows {
		fr, ok := any(rows[i]).(FailedRow)
		if !ok {
			return 0, 0, nil
		}
		reason, tr := fr.RowFailure()
		if reason == "" {
			continue
		}
		failed++
		if tr {
			transient++
		}
		if len(notes) < failureNotes {
			notes = append(notes, reason)
		}
	}
	return failed, transient, notes
}

// footer is what cocoflow keeps in a shard's Parquet footer.
type footer struct {
	Key       string
	Rows      int64
	Failed    int64
	Transient int64
	Failures  []string
}

// readFooter reads a shard's footer; an absent, truncated or foreign file is an error (a rerun
// then rewrites the shard).
func readFooter(path string) (footer, error) {
	f, err := os.Open(path)
	if err != nil {
		return footer{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return footer{}, err
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return footer{}, fmt.Errorf("%s: %w", path, err)
	}
	ft := footer{Rows: pf.NumRows()}
	ft.Key, _ = pf.Lookup(metaKey)
	if v, ok := pf.Lookup(metaFailed); ok {
		ft.Failed, _ = strconv.ParseInt(v, 10, 64)
		v, _ = pf.Lookup(metaTransient)
		ft.Transient, _ = strconv.ParseInt(v, 10, 64)
		v, _ = pf.Lookup(metaFailures)
		_ = json.Unmarshal([]byte(v), &ft.Failures)
	}
	return ft, nil
}

// loadManifest reads the manifest of dir; nil when there is none or it cannot be read.
func loadManifest(dir string) *Manifest {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil
	}
	var m Manifest
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	return &m
}

// damagedShards checks the shards of dir against manifest m and returns, by shard index, why
// each damaged one no longer matches: missing, another size, or bytes whose sha256 differs from
// the manifest's. Without full, a shard with the recorded size and modification time is taken
// as intact without reading it (a stat per shard); with full, every shard is hashed, workers
// at a time.
func damagedShards(dir string, m *Manifest, full bool, workers int) map[int]string {
	var mu sync.Mutex
	damaged := map[int]string{}
	mark := func(i int, why string) {
		mu.Lock()
		damaged[i] = why
		mu.Unlock()
	}
	p := pool.New().WithMaxGoroutines(max(workers, 1))
	for i, s := range m.Shards {
		path := filepath.Join(dir, s.File)
		st, err := os.Stat(path)
		switch {
		case err != nil:
			mark(i, "missing")
			continue
		case st.Size() != s.Bytes:
			mark(i, fmt.Sprintf("%d bytes, the manifest says %d", st.Size(), s.Bytes))
			continue
		case !full && s.ModTime != 0 && st.ModTime().UnixNano() == s.ModTime:
			continue
		}
		p.Go(func() {
			sum, _, err := fileSHA256(path)
			if err != nil {
				mark(i, err.Error())
			} else if sum != s.SHA256 {
				mark(i, fmt.Sprintf("sha256 %.12s…, the manifest says %.12s…", sum, s.SHA256))
			}
		})
	}
	p.Wait()
	return damaged
}

// DamagedError reports shards of a dataset that no longer match its manifest.
type DamagedError struct {
	Dir     string
	Damaged map[int]string // shard index -> what is wrong
}

// Error names the first damaged shard, how many there are and the fix.
func (e *DamagedError) Error() string {
	idx := sortedInts(e.Damaged)
	return fmt.Sprintf("dataset %s: %d shard(s) do not match the manifest, first %s (%s): rerun the stage that writes it (a plain run redoes damaged shards)",
		e.Dir, len(idx), ShardName(idx[0]), e.Damaged[idx[0]])
}

func sortedInts[V any](m map[int]V) []int {
	idx := make([]int, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	return idx
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// existingShards lists the shard indices present in dir.
func existingShards(dir string) []int {
	entries, _ := os.ReadDir(dir)
	var idx []int
	for _, e := range entries {
		if m := shardPattern.FindStringSubmatch(e.Name()); m != nil {
			i, _ := strconv.Atoi(m[1])
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	return idx
}

// schemaOfValue returns the Parquet schema of a row value's type.
func schemaOfValue(row any) string { return parquet.SchemaOf(row).String() }
