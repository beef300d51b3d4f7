package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Inspect prints what is in path — a dataset directory or a single shard — to w: its manifest
// summary, its Arrow schema, its row count and its first rows. It reads shards with Apache
// Arrow's Parquet reader, independently of the writer, and so doubles as a check that shards are
// readable by other tools. For a run directory (<workdir>/<run>) it lists the run's datasets
// instead, and for a workdir those of every run in it.
func Inspect(ctx context.Context, path string, rows int, w io.Writer) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() && !isDatasetDir(path) {
		if isRunDir(path) {
			return inspectRun(path, w)
		}
		if runs := runDirs(path); len(runs) > 0 {
			for i, r := range runs {
				if i > 0 {
					fmt.Fprintln(w)
				}
				if err := inspectRun(r, w); err != nil {
					return err
				}
			}
			return nil
		}
	}
	shards := []string{path}
	if st.IsDir() {
		ds, err := OpenDataset(path)
		if err != nil {
			return err
		}
		m := ds.Manifest
		var size int64
		for _, s := range m.Shards {
			size += s.Bytes
		}
		fmt.Fprintf(w, "dataset %s: %d rows in %d shards, %s\n", path, m.Rows, len(m.Shards), humanBytes(size))
		fmt.Fprintf(w, "made by stage %q (kind %s v%s) of run %q, seed %d\n", m.Stage, m.Kind, m.KindVersion, m.Run, m.Seed)
		fmt.Fprintf(w, "fingerprint %s\ncontent     %s\n", m.Fingerprint, m.ContentHash)
		shards = shards[:0]
		for i := range m.Shards {
			shards = append(shards, ds.ShardPath(i))
		}
		if len(shards) == 0 {
			return nil
		}
	}
	tables := make([]arrow.Table, 0, len(shards))
	defer func() {
		for _, t := range tables {
			t.Release()
		}
	}()
	var total int64
	for i, s := range shards {
		if i > 0 && total >= int64(rows) {
			break
		}
		t, err := readArrowTable(ctx, s)
		if err != nil {
			return err
		}
		tables = append(tables, t)
		total += t.NumRows()
	}
	fmt.Fprintln(w, "schema:")
	for _, f := range tables[0].Schema().Fields() {
		fmt.Fprintf(w, "  %s: %s\n", f.Name, f.Type)
	}
	if !st.IsDir() {
		fmt.Fprintf(w, "%d rows\n", tables[0].NumRows())
	}
	printed := 0
	for _, t := range tables {
		tr := array.NewTableReader(t, 0)
		for tr.Next() && printed < rows {
			rec := tr.RecordBatch()
			for r := 0; r < int(rec.NumRows()) && printed < rows; r++ {
				fmt.Fprintf(w, "row %d:\n", printed)
				for c, f := range rec.Schema().Fields() {
					fmt.Fprintf(w, "  %s: %s\n", f.Name, formatValue(rec.Column(c), r))
				}
				printed++
			}
		}
		tr.Release()
	}
	return nil
}

// isDatasetDir reports whether dir is a dataset, complete or planned.
func isDatasetDir(dir string) bool {
	return exists(filepath.Join(dir, ManifestFile)) || exists(filepath.Join(dir, planFile))
}

// isRunDir reports whether dir is a run directory: it has a run manifest, or a stage
// directory holding a dataset.
func isRunDir(dir string) bool {
	if exists(filepath.Join(dir, "_run.json")) {
		return true
	}
	return len(runDatasets(dir)) > 0
}

// runDirs lists the run directories in a workdir.
func runDirs(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var runs []string
	for _, e := range entries {
		if p := filepath.Join(dir, e.Name()); e.IsDir() && isRunDir(p) {
			runs = append(runs, p)
		}
	}
	return runs
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// runDatasets lists the "<stage>/<output>" datasets (complete or planned) of a run directory,
// in the order of the last run manifest's stages, then by name.
func runDatasets(dir string) []string {
	var order []string
	if data, err := os.ReadFile(filepath.Join(dir, "_run.json")); err == nil {
		var rm RunManifest
		if json.Unmarshal(data, &rm) == nil {
			for _, s := range rm.Stages {
				order = append(order, s.ID)
			}
		}
	}
	stages, _ := os.ReadDir(dir)
	for _, e := range stages {
		if e.IsDir() && !strings.HasPrefix(e.Name(), "_") && !slices.Contains(order, e.Name()) {
			order = append(order, e.Name())
		}
	}
	var out []string
	for _, stage := range order {
		outs, _ := os.ReadDir(filepath.Join(dir, stage))
		for _, o := range outs {
			if o.IsDir() && isDatasetDir(filepath.Join(dir, stage, o.Name())) {
				out = append(out, stage+"/"+o.Name())
			}
		}
	}
	return out
}

// inspectRun prints a run directory's last invocation, whether a run holds it now, and its
// datasets with rows, shards, size and state.
func inspectRun(dir string, w io.Writer) error {
	name := filepath.Base(dir)
	fmt.Fprintf(w, "run %s (%s)\n", name, dir)
	if data, err := os.ReadFile(filepath.Join(dir, "_run.json")); err == nil {
		var rm RunManifest
		if err := json.Unmarshal(data, &rm); err != nil {
			return fmt.Errorf("%s: invalid run manifest: %w", filepath.Join(dir, "_run.json"), err)
		}
		counts := map[string]int{}
		var statuses []string
		for _, s := range rm.Stages {
			if counts[s.Status] == 0 {
				statuses = append(statuses, s.Status)
			}
			counts[s.Status]++
		}
		var parts []string
		for _, st := range statuses {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
		fmt.Fprintf(w, "last invocation %s, %.1f s: %s", rm.Started.Local().Format("2006-01-02 15:04:05"), rm.Seconds, strings.Join(parts, ", "))
		if len(rm.Args) > 0 {
			fmt.Fprintf(w, " (`%s`)", strings.Join(rm.Args, " "))
		}
		fmt.Fprintln(w)
		if rm.Error != "" {
			fmt.Fprintf(w, "error: %s\n", rm.Error)
		}
	}
	if l, ok, _ := readLease(filepath.Join(dir, LeaseFile)); ok {
		now := time.Now()
		state := "in use by"
		if stale, _ := l.stale(now); stale {
			state = "stale lease of"
		}
		fmt.Fprintf(w, "%s %s\n", state, l.describe(now))
	}
	sets := runDatasets(dir)
	if len(sets) == 0 {
		fmt.Fprintln(w, "no datasets yet")
		return nil
	}
	width := 0
	for _, s := range sets {
		width = max(width, len(s))
	}
	fmt.Fprintln(w, "datasets:")
	for _, s := range sets {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s, datasetState(filepath.Join(dir, s)))
	}
	fmt.Fprintf(w, "show one with: cocoflow inspect %s\n", filepath.Join(dir, sets[0]))
	return nil
}

// datasetState describes a dataset in one line: rows, shards, size and completeness.
func datasetState(dir string) string {
	ds, err := OpenDataset(dir)
	if err == nil {
		m := ds.Manifest
		var size int64
		for _, s := range m.Shards {
			size += s.Bytes
		}
		line := fmt.Sprintf("%8d rows  %5d shards  %9s  complete", m.Rows, len(m.Shards), humanBytes(size))
		if m.FailedRows > 0 {
			line += fmt.Sprintf(", %d failed rows", m.FailedRows)
		}
		return line
	}
	if !exists(filepath.Join(dir, ManifestFile)) {
		if ds, perr := openPartial(dir); perr == nil {
			return fmt.Sprintf("incomplete: %d of %d planned shards written, no manifest yet", len(existingShards(dir)), ds.NumShards())
		}
	}
	return "unreadable: " + err.Error()
}

func readArrowTable(ctx context.Context, path string) (arrow.Table, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %w", path, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t, err := fr.ReadTable(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", path, err)
	}
	return t, nil
}

// formatValue renders one cell briefly: images as their size, long lists by their head.
func formatValue(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return "null"
	}
	switch a := col.(type) {
	case *array.Binary:
		return describeBytes(a.Value(i))
	case *array.String:
		s := a.Value(i)
		if len(s) > 200 {
			s = s[:200] + "…"
		}
		return fmt.Sprintf("%q", s)
	case array.ListLike:
		start, end := a.ValueOffsets(i)
		n := int(end - start)
		vals := a.ListValues()
		var parts []string
		for k := int(start); k < int(end) && k < int(start)+8; k++ {
			parts = append(parts, formatValue(vals, k))
		}
		if n > 8 {
			parts = append(parts, fmt.Sprintf("… (%d values)", n))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	s := col.ValueStr(i)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func describeBytes(b []byte) string {
	if bytes.HasPrefix(b, []byte("\x89PNG")) {
		if cfg, err := png.DecodeConfig(bytes.NewReader(b)); err == nil {
			return fmt.Sprintf("<png %dx%d, %d bytes>", cfg.Width, cfg.Height, len(b))
		}
	}
	if bytes.HasPrefix(b, []byte{0xff, 0xd8}) {
		return fmt.Sprintf("<jpeg, %d bytes>", len(b))
	}
	return fmt.Sprintf("<%d bytes>", len(b))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// ShardFiles lists the shard paths of a complete dataset (for tools that read them directly).
func ShardFiles(dir string) ([]string, error) {
	ds, err := OpenDataset(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := 0; i < ds.NumShards(); i++ {
		out = append(out, filepath.Join(dir, ShardName(i)))
	}
	return out, nil
}
