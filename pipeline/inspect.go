package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Inspect prints what is in path — a dataset directory or a single shard — to w: its manifest
// summary, its Arrow schema, its row count and its first rows. It reads shards with Apache
// Arrow's Parquet reader, independently of the writer, and so doubles as a check that shards are
// readable by other tools.
func Inspect(ctx context.Context, path string, rows int, w io.Writer) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
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
