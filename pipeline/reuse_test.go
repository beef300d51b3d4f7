package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// flipBit flips one bit in the middle of a shard's data pages; keepTime puts its modification
// time back, as silent corruption on disk would leave it.
func flipBit(t *testing.T, path string, keepTime bool) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/3] ^= 0x10
	// A later time than the shard's, even on a filesystem with coarse timestamps.
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	when := st.ModTime().Add(2 * time.Second)
	if keepTime {
		when = st.ModTime()
	}
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedShardIsMadeAgain(t *testing.T) {
	dir := t.TempDir()
	run(t, mustParse(t, testConfig), dir, Options{})
	want := datasetBytes(t, dir)
	shard := filepath.Join(dir, "t", "numbers", "numbers", ShardName(3))

	// A flipped bit changes the file's time: a plain rerun hashes it, finds it damaged and
	// makes that shard alone again; the same bytes come back, so nothing downstream reruns.
	flipBit(t, shard, false)
	shardCalls.Store(0)
	rm := run(t, mustParse(t, testConfig), dir, Options{})
	if got := statuses(rm); got != "numbers=ran square=up-to-date sum=up-to-date" {
		t.Fatalf("rerun after a bit flip: %s", got)
	}
	if n := shardCalls.Load(); n != 1 {
		t.Fatalf("rerun made %d shards, want the damaged one", n)
	}
	if got := datasetBytes(t, dir); got["t/numbers/numbers/"+ShardName(3)] != want["t/numbers/numbers/"+ShardName(3)] {
		t.Fatal("the damaged shard was not restored")
	}

	// Damage that keeps size and time (bit rot) passes the quick check; --verify hashes
	// every shard and finds it.
	flipBit(t, shard, true)
	if got := statuses(run(t, mustParse(t, testConfig), dir, Options{})); got != "numbers=up-to-date square=up-to-date sum=up-to-date" {
		t.Fatalf("quick check after a flip that kept the time: %s (size and time are all it reads)", got)
	}
	shardCalls.Store(0)
	if got := statuses(run(t, mustParse(t, testConfig), dir, Options{Verify: true})); got != "numbers=ran square=up-to-date sum=up-to-date" {
		t.Fatalf("--verify after a flip that kept the time: %s", got)
	}
	if n := shardCalls.Load(); n != 1 {
		t.Fatalf("--verify made %d shards, want the damaged one", n)
	}
	got := datasetBytes(t, dir)
	for name, data := range want {
		if got[name] != data {
			t.Fatalf("%s differs after the repairs", name)
		}
	}

	// A stage that cannot remake its damaged input (--only) says which shard and what to do.
	flipBit(t, filepath.Join(dir, "t", "square", "squares", ShardName(5)), false)
	_, err := Run(context.Background(), mustParse(t, testConfig), Options{Workdir: dir, Only: []string{"sum"}})
	var damaged *DamagedError
	if !errors.As(err, &damaged) || !strings.Contains(err.Error(), "part-00005.parquet") || !strings.Contains(err.Error(), "rerun the stage") {
		t.Fatalf("damaged input: want a *DamagedError naming part-00005.parquet, got %v", err)
	}
}

// flakyRow is a row that records a failure instead of a value.
type flakyRow struct {
	Index     int64  `parquet:"index"`
	Value     int64  `parquet:"value"`
	Error     string `parquet:"error"`
	Transient bool   `parquet:"transient"`
}

func (r flakyRow) RowFailure() (string, bool) { return r.Error, r.Transient }

// flakyServer is what test-flaky rows ask: "down" fails every row transiently, "picky" fails
// every fourth row permanently, "up" answers every row.
var (
	flakyServer atomic.Value
	flakyCalls  atomic.Int64
)

func init() {
	flakyServer.Store("up")
	Register(Spec[struct{}]{
		Name: "test-flaky", Version: "1", Doc: "rows that a flaky server makes", Sharded: true,
		Outputs: []Port{{Name: "rows", Schema: flakyRow{}}},
		Run: func(ctx context.Context, job *Job, _ *struct{}) error {
			out := job.Output("rows")
			return MapShards(ctx, job, out, 4, func(ctx context.Context, shard int) ([]flakyRow, error) {
				prev := PreviousRows[flakyRow](job, out, shard)
				rows := make([]flakyRow, 8)
				for k := range rows {
					i := int64(shard*8 + k)
					if k < len(prev) && !job.Retry(prev[k]) {
						rows[k] = prev[k]
						continue
					}
					flakyCalls.Add(1)
					rows[k] = flakyRow{Index: i, Value: i * i}
					switch flakyServer.Load() {
					case "down":
						rows[k] = flakyRow{Index: i, Error: fmt.Sprintf("row %d: HTTP 500", i), Transient: true}
					case "picky":
						if i%4 == 0 {
							rows[k] = flakyRow{Index: i, Error: fmt.Sprintf("row %d: no concept word", i)}
						}
					}
				}
				return rows, nil
			})
		},
	})
}

const flakyConfig = "name: t\nstages:\n  - id: flaky\n    uses: test-flaky\n"

func flakyManifest(t *testing.T, dir string) *Manifest {
	t.Helper()
	ds, err := OpenDataset(filepath.Join(dir, "t", "flaky", "rows"))
	if err != nil {
		t.Fatal(err)
	}
	return ds.Manifest
}

func TestTransientFailuresAreRetriedByAPlainRerun(t *testing.T) {
	defer flakyServer.Store("up")
	dir := t.TempDir()
	flakyServer.Store("down")
	rm, err := Run(context.Background(), mustParse(t, flakyConfig), Options{Workdir: dir})
	var fe *FailedRowsError
	if !errors.As(err, &fe) || fe.Failed != 32 || fe.Rows != 32 || fe.Transient != 32 {
		t.Fatalf("all rows failed: want a *FailedRowsError for 32 of 32, got %v", err)
	}
	for _, want := range []string{"32 of 32 rows failed", "row 0: HTTP 500", "a plain rerun retries the 32"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if rm.Stages[0].Status != StatusFailed {
		t.Fatalf("status %s, want failed", rm.Stages[0].Status)
	}
	if _, err := os.Stat(filepath.Join(dir, "t", "flaky", "rows", ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a stage whose rows all failed wrote a manifest")
	}

	// The server is back: a plain rerun asks for every failed row once, and then is done.
	flakyServer.Store("up")
	flakyCalls.Store(0)
	if got := statuses(run(t, mustParse(t, flakyConfig), dir, Options{})); got != "flaky=ran" {
		t.Fatalf("rerun after recovery: %s", got)
	}
	if n := flakyCalls.Load(); n != 32 {
		t.Fatalf("rerun asked for %d rows, want the 32 that failed", n)
	}
	if m := flakyManifest(t, dir); m.FailedRows != 0 || m.Rows != 32 {
		t.Fatalf("after recovery: %d failed of %d", m.FailedRows, m.Rows)
	}
	if got := statuses(run(t, mustParse(t, flakyConfig), dir, Options{})); got != "flaky=up-to-date" {
		t.Fatalf("third run: %s", got)
	}
}

func TestPermanentFailuresAreKeptUnlessAsked(t *testing.T) {
	defer flakyServer.Store("up")
	dir := t.TempDir()
	flakyServer.Store("picky")
	run(t, mustParse(t, flakyConfig), dir, Options{}) // 8 of 32 fail: within the default share
	if m := flakyManifest(t, dir); m.FailedRows != 8 || m.Shards[0].Failed != 2 || m.Shards[0].Transient != 0 {
		t.Fatalf("manifest: %d failed rows, shard 0 %+v", m.FailedRows, m.Shards[0])
	}
	flakyServer.Store("up")
	if got := statuses(run(t, mustParse(t, flakyConfig), dir, Options{})); got != "flaky=up-to-date" {
		t.Fatalf("plain rerun with permanent failures: %s, want them kept", got)
	}
	flakyCalls.Store(0)
	if got := statuses(run(t, mustParse(t, flakyConfig), dir, Options{RetryFailed: true})); got != "flaky=ran" {
		t.Fatalf("--retry-failed: %s", got)
	}
	if n := flakyCalls.Load(); n != 8 {
		t.Fatalf("--retry-failed asked for %d rows, want the 8 that failed (the others are kept)", n)
	}
	if m := flakyManifest(t, dir); m.FailedRows != 0 {
		t.Fatalf("after --retry-failed: %d failed rows", m.FailedRows)
	}
}

func TestFailedShareIsConfigurable(t *testing.T) {
	defer flakyServer.Store("up")
	for _, c := range []struct {
		server string
		share  float64
		fails  bool
	}{
		{"picky", 0, false},    // 25% under the default 50%
		{"picky", 0.2, true},   // 25% > 20%
		{"picky", -1, true},    // no failed row allowed
		{"down", 1, false},     // never fail the stage
		{"down", 0.99, true},   // 100% > 99%
		{"up", -1, false},      // nothing failed
		{"picky", 0.25, false}, // "more than": 25% is allowed
	} {
		flakyServer.Store(c.server)
		_, err := Run(context.Background(), mustParse(t, flakyConfig), Options{Workdir: t.TempDir(), MaxFailedShare: c.share})
		var fe *FailedRowsError
		if got := errors.As(err, &fe); got != c.fails {
			t.Errorf("server %s, share %v: error %v, want failure %v", c.server, c.share, err, c.fails)
		}
	}
}

// BenchmarkShardCheck measures what checking a dataset before reuse costs: the default (a stat
// per shard) against --verify (hashing every byte), on 32 shards of 4 MiB.
func BenchmarkShardCheck(b *testing.B) {
	dir := b.TempDir()
	m := &Manifest{}
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(i * 7919)
	}
	for i := range 32 {
		path := filepath.Join(dir, ShardName(i))
		if err := os.WriteFile(path, data, 0o644); err != nil {
			b.Fatal(err)
		}
		sum, size, _ := fileSHA256(path)
		st, _ := os.Stat(path)
		m.Shards = append(m.Shards, ShardInfo{File: ShardName(i), Bytes: size, SHA256: sum, ModTime: st.ModTime().UnixNano()})
	}
	for _, c := range []struct {
		name string
		full bool
	}{{"quick", false}, {"verify", true}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)) * 32)
			for b.Loop() {
				if d := damagedShards(dir, m, c.full, 2); len(d) > 0 {
					b.Fatal(d)
				}
			}
		})
	}
}
