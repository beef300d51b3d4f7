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
)

// Test kinds: a source of numbers, a shard-parallel map, and a global reduction.

type numberRow struct {
	Index int64   `parquet:"index"`
	Value float64 `parquet:"value"`
	Tag   string  `parquet:"tag"`
}

type sumRow struct {
	Total float64 `parquet:"total"`
	Count int64   `parquet:"count"`
}

type numbersParams struct {
	Count     int    `param:"count" default:"100" min:"0" doc:"rows to make"`
	ShardSize int    `param:"shard_size" default:"16" min:"1" doc:"rows per shard"`
	Tag       string `param:"tag" default:"a" enum:"a,b,c" doc:"a label"`
	FailAt    int    `param:"fail_at" default:"-1" fingerprint:"-" doc:"fail on this shard (tests)"`
}

type squareParams struct {
	Offset float64 `param:"offset" default:"0" doc:"added after squaring"`
}

var shardCalls atomic.Int64

func init() {
	Register(Spec[numbersParams]{
		Name: "test-numbers", Version: "1", Doc: "numbers", Sharded: true,
		Outputs: []Port{{Name: "numbers", Schema: numberRow{}}},
		Run: func(ctx context.Context, job *Job, p *numbersParams) error {
			n := (p.Count + p.ShardSize - 1) / p.ShardSize
			return MapShards(ctx, job, job.Output("numbers"), n, func(ctx context.Context, shard int) ([]numberRow, error) {
				shardCalls.Add(1)
				if shard == p.FailAt {
					return nil, errors.New("injected failure")
				}
				var rows []numberRow
				for i := shard * p.ShardSize; i < min((shard+1)*p.ShardSize, p.Count); i++ {
					rows = append(rows, numberRow{Index: int64(i), Value: float64(i) + float64(job.Seed), Tag: p.Tag})
				}
				return rows, nil
			})
		},
	})
	Register(Spec[squareParams]{
		Name: "test-square", Version: "1", Doc: "squares", Sharded: true,
		Inputs:  []Port{{Name: "numbers"}},
		Outputs: []Port{{Name: "squares", Schema: numberRow{}}},
		Run: func(ctx context.Context, job *Job, p *squareParams) error {
			in := job.Input("numbers")
			return MapShards(ctx, job, job.Output("squares"), in.NumShards(), func(ctx context.Context, shard int) ([]numberRow, error) {
				rows, err := ReadShard[numberRow](in, shard)
				if err != nil {
					return nil, err
				}
				for i := range rows {
					rows[i].Value = rows[i].Value*rows[i].Value + p.Offset
				}
				return rows, nil
			})
		},
	})
	Register(Spec[struct{}]{
		Name: "test-sum", Version: "1", Doc: "sum",
		Inputs:  []Port{{Name: "values"}},
		Outputs: []Port{{Name: "sum", Schema: sumRow{}}},
		Run: func(ctx context.Context, job *Job, _ *struct{}) error {
			rows, err := ReadAll[numberRow](job.Input("values"))
			if err != nil {
				return err
			}
			var s sumRow
			for _, r := range rows {
				s.Total += r.Value
				s.Count++
			}
			return WriteRows(job, job.Output("sum"), []sumRow{s}, 0)
		},
	})
}

const testConfig = `name: t
seed: 3
stages:
  - id: numbers
    uses: test-numbers
    with: {count: 100, shard_size: 16}
  - id: square
    uses: test-square
    inputs: {numbers: numbers}
  - id: sum
    uses: test-sum
    inputs: {values: square}
`

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	cfg, err := ParseConfig("test.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func run(t *testing.T, cfg *Config, workdir string, opt Options) *RunManifest {
	t.Helper()
	opt.Workdir = workdir
	rm, err := Run(context.Background(), cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	return rm
}

func statuses(rm *RunManifest) string {
	var s []string
	for _, st := range rm.Stages {
		s = append(s, st.ID+"="+st.Status)
	}
	return strings.Join(s, " ")
}

func readSum(t *testing.T, workdir string) sumRow {
	t.Helper()
	ds, err := OpenDataset(filepath.Join(workdir, "t", "sum", "sum"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadAll[sumRow](ds)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("sum rows = %d, want 1", len(rows))
	}
	return rows[0]
}

func TestRunRerunAndParamChange(t *testing.T) {
	dir := t.TempDir()
	cfg := mustParse(t, testConfig)
	rm := run(t, cfg, dir, Options{Workers: 2})
	if got := statuses(rm); got != "numbers=ran square=ran sum=ran" {
		t.Fatalf("first run: %s", got)
	}
	var want float64
	for i := 0; i < 100; i++ {
		want += float64(i+3) * float64(i+3)
	}
	if s := readSum(t, dir); s.Total != want || s.Count != 100 {
		t.Fatalf("sum = %+v, want total %v count 100", s, want)
	}
	ds, err := OpenDataset(filepath.Join(dir, "t", "numbers", "numbers"))
	if err != nil {
		t.Fatal(err)
	}
	if ds.NumShards() != 7 || ds.Rows() != 100 {
		t.Fatalf("numbers: %d shards %d rows, want 7 and 100", ds.NumShards(), ds.Rows())
	}
	if _, err := os.Stat(filepath.Join(dir, "t", "_run.json")); err != nil {
		t.Fatalf("run manifest: %v", err)
	}

	rm = run(t, cfg, dir, Options{})
	if got := statuses(rm); got != "numbers=up-to-date square=up-to-date sum=up-to-date" {
		t.Fatalf("rerun: %s", got)
	}

	// A parameter change reruns that stage and what is downstream of it, not what is upstream.
	cfg2 := mustParse(t, strings.Replace(testConfig, "uses: test-square", "uses: test-square\n    with: {offset: 1}", 1))
	rm = run(t, cfg2, dir, Options{})
	if got := statuses(rm); got != "numbers=up-to-date square=ran sum=ran" {
		t.Fatalf("after changing square: %s", got)
	}
	if s := readSum(t, dir); s.Total != want+100 {
		t.Fatalf("sum after offset = %v, want %v", s.Total, want+100)
	}
	// A parameter outside the fingerprint (fail_at) does not rerun anything.
	cfg3 := mustParse(t, strings.Replace(testConfig, "shard_size: 16}", "shard_size: 16, fail_at: 99}", 1))
	cfg3.Stages[1].Params = cfg2.Stages[1].Params
	if got := statuses(run(t, cfg3, dir, Options{})); got != "numbers=up-to-date square=up-to-date sum=up-to-date" {
		t.Fatalf("non-fingerprint change: %s", got)
	}
	// --force recomputes everything; --only runs one stage.
	if got := statuses(run(t, cfg2, dir, Options{Force: true, Only: []string{"square"}})); got != "numbers=not-run square=ran sum=not-run" {
		t.Fatalf("--force --only square: %s", got)
	}
}

func datasetBytes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() || !strings.HasSuffix(path, ".parquet") {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestResumeAfterFailureGivesSameBytes(t *testing.T) {
	clean := t.TempDir()
	run(t, mustParse(t, testConfig), clean, Options{Workers: 1})
	want := datasetBytes(t, clean)

	dir := t.TempDir()
	failing := mustParse(t, strings.Replace(testConfig, "shard_size: 16}", "shard_size: 16, fail_at: 4}", 1))
	_, err := Run(context.Background(), failing, Options{Workdir: dir, Workers: 1})
	if err == nil || !strings.Contains(err.Error(), "shard 4: injected failure") {
		t.Fatalf("want injected failure naming shard 4, got %v", err)
	}
	if _, err := OpenDataset(filepath.Join(dir, "t", "numbers", "numbers")); err == nil {
		t.Fatal("a failed stage must not leave a manifest")
	}
	shardCalls.Store(0)
	rm := run(t, mustParse(t, testConfig), dir, Options{Workers: 3})
	if got := statuses(rm); got != "numbers=ran square=ran sum=ran" {
		t.Fatalf("resume: %s", got)
	}
	// Shards 0..3 were kept; 4, 5, 6 were made (with one worker the failure stops the pool
	// before later shards start).
	if n := shardCalls.Load(); n != 3 {
		t.Fatalf("resume recomputed %d shards, want 3", n)
	}
	got := datasetBytes(t, dir)
	if len(got) != len(want) {
		t.Fatalf("resumed run has %d shard files, clean run %d", len(got), len(want))
	}
	for name, data := range want {
		if got[name] != data {
			t.Fatalf("%s differs between the resumed and the clean run", name)
		}
	}
}

func TestSlicesAndWorkersGiveSameContent(t *testing.T) {
	one := t.TempDir()
	run(t, mustParse(t, testConfig), one, Options{Workers: 1})
	want := datasetBytes(t, one)

	many := t.TempDir()
	cfg := mustParse(t, testConfig)
	rm := run(t, cfg, many, Options{Workers: 4, Slice: Slice{Index: 0, Count: 2}})
	if got := statuses(rm); got != "numbers=partial square=partial sum=deferred" {
		t.Fatalf("slice 0/2: %s", got)
	}
	rm = run(t, cfg, many, Options{Workers: 4, Slice: Slice{Index: 1, Count: 2}})
	if got := statuses(rm); got != "numbers=ran square=ran sum=deferred" {
		t.Fatalf("slice 1/2: %s", got)
	}
	shardCalls.Store(0)
	rm = run(t, cfg, many, Options{Workers: 4})
	if got := statuses(rm); got != "numbers=up-to-date square=up-to-date sum=ran" {
		t.Fatalf("final run: %s", got)
	}
	if n := shardCalls.Load(); n != 0 {
		t.Fatalf("final run recomputed %d shards", n)
	}
	got := datasetBytes(t, many)
	for name, data := range want {
		if got[name] != data {
			t.Fatalf("%s differs between a sliced 4-worker run and a 1-worker run", name)
		}
	}
}

func TestTruncatedShardIsAClearError(t *testing.T) {
	dir := t.TempDir()
	run(t, mustParse(t, testConfig), dir, Options{})
	shard := filepath.Join(dir, "t", "numbers", "numbers", ShardName(2))
	data, _ := os.ReadFile(shard)
	if err := os.WriteFile(shard, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenDataset(filepath.Dir(shard))
	if err == nil || !strings.Contains(err.Error(), "part-00002.parquet") || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("want an error naming the truncated shard, got %v", err)
	}
	_, err = ReadFile[numberRow](shard)
	if err == nil || !strings.Contains(err.Error(), "part-00002.parquet") {
		t.Fatalf("want a read error naming the shard, got %v", err)
	}
	// A rerun notices the damage (the stage is no longer up to date) and repairs it.
	rm := run(t, mustParse(t, testConfig), dir, Options{})
	if rm.Stages[0].Status != StatusRan {
		t.Fatalf("rerun after damage: %s", statuses(rm))
	}
	if _, err := ReadFile[numberRow](shard); err != nil {
		t.Fatalf("shard not repaired: %v", err)
	}
}

func TestReadFileChecksColumns(t *testing.T) {
	dir := t.TempDir()
	run(t, mustParse(t, testConfig), dir, Options{})
	type other struct {
		Missing string `parquet:"missing"`
	}
	_, err := ReadFile[other](filepath.Join(dir, "t", "sum", "sum", ShardName(0)))
	if err == nil || !strings.Contains(err.Error(), `missing column "missing"`) {
		t.Fatalf("want missing column error, got %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name, text, want string
	}{
		{"yaml syntax", "name: t\nstages: [\n", "test.yaml:2:1: invalid YAML"},
		{"empty", "", "test.yaml: empty config (nothing but blanks or comments): want a mapping with name and stages"},
		{"comments only", "# to do\n\n", "test.yaml: empty config"},
		{"unknown top key", "name: t\nstgaes: []\n", `test.yaml:2:1: unknown key "stgaes" in config`},
		{"no stages", "name: t\n", "missing stages"},
		{"unknown kind", "name: t\nstages:\n  - id: a\n    uses: nope\n", `test.yaml:4:11: stage "a": unknown stage kind "nope"`},
		{"unknown param", "name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with: {cuont: 3}\n", `test.yaml:5:12: stage "a": unknown parameter "cuont"`},
		{"wrong type", "name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with:\n      count: many\n", `test.yaml:6:14: stage "a": parameter "count": want an integer, got "many"`},
		{"float for int", "name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with: {count: 1.5}\n", `parameter "count": want an integer, got number 1.5`},
		{"below min", "name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with: {shard_size: 0}\n", "below the minimum 1"},
		{"bad enum", "name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with: {tag: z}\n", `want one of a, b, c, got "z"`},
		{"missing input", "name: t\nstages:\n  - id: a\n    uses: test-square\n", `test.yaml:3:5: stage "a": missing input "numbers"`},
		{"unknown input port", "name: t\nstages:\n  - id: a\n    uses: test-numbers\n    inputs: {x: b}\n", `stage "a": kind test-numbers has no input "x"`},
		{"dangling ref", "name: t\nstages:\n  - id: a\n    uses: test-square\n    inputs: {numbers: nums}\n", `test.yaml:5:23: stage "a" input "numbers": no stage "nums"`},
		{"duplicate id", "name: t\nstages:\n  - id: a\n    uses: test-numbers\n  - id: a\n    uses: test-numbers\n", `test.yaml:5:5: duplicate stage id "a" (first defined on line 3)`},
		{"cycle", "name: t\nstages:\n  - id: a\n    uses: test-square\n    inputs: {numbers: b}\n  - id: b\n    uses: test-square\n    inputs: {numbers: a}\n", "stages form a cycle: a -> b -> a"},
		{"bad port ref", "name: t\nstages:\n  - id: a\n    uses: test-numbers\n  - id: b\n    uses: test-square\n    inputs: {numbers: a.nope}\n", `stage "a" has no output "nope"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig("test.yaml", []byte(c.text))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestParamsDefaultsAndResolved(t *testing.T) {
	cfg := mustParse(t, "name: t\nstages:\n  - id: a\n    uses: test-numbers\n    with: {count: 5}\n")
	p := cfg.Stages[0].Params.(*numbersParams)
	if p.Count != 5 || p.ShardSize != 16 || p.Tag != "a" || p.FailAt != -1 {
		t.Fatalf("params = %+v", p)
	}
	vals := Values(cfg.Stages[0].Kind.Params.Resolved(p, true))
	data, err := vals.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(data); got != `{"count":5,"shard_size":16,"tag":"a"}` {
		t.Fatalf("fingerprint params = %s", got)
	}
}

func TestMissingExternalInput(t *testing.T) {
	cfg := mustParse(t, "name: t\nstages:\n  - id: a\n    uses: test-square\n    inputs: {numbers: other-run/numbers}\n")
	_, err := Run(context.Background(), cfg, Options{Workdir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "run the config that produces other-run/numbers first") {
		t.Fatalf("got %v", err)
	}
}

func ExampleParamsOf() {
	spec := ParamsOf[squareParams]()
	for _, p := range spec.Params {
		fmt.Printf("%s %s default=%s: %s\n", p.Name, p.Type, p.Default, p.Doc)
	}
	// Output: offset float default=0: added after squaring
}

func TestInspectReadsShardsWithArrow(t *testing.T) {
	dir := t.TempDir()
	run(t, mustParse(t, testConfig), dir, Options{})
	var b strings.Builder
	if err := Inspect(context.Background(), filepath.Join(dir, "t", "square", "squares"), 2, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"100 rows in 7 shards", "index: int64", "value: float64", "tag: utf8", "row 1:", "value: 16"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect output lacks %q:\n%s", want, out)
		}
	}
}

func init() {
	Register(Spec[struct{}]{
		Name: "test-concat", Version: "1", Doc: "sums of several datasets, in order",
		Inputs:  []Port{{Name: "parts", List: true}},
		Outputs: []Port{{Name: "sums", Schema: sumRow{}}},
		Run: func(ctx context.Context, job *Job, _ *struct{}) error {
			var out []sumRow
			for _, ds := range job.Inputs("parts") {
				rows, err := ReadAll[numberRow](ds)
				if err != nil {
					return err
				}
				s := sumRow{}
				for _, r := range rows {
					s.Total += r.Value
					s.Count++
				}
				out = append(out, s)
			}
			return WriteRows(job, job.Output("sums"), out, 0)
		},
	})
}

func TestListInputKeepsConfigOrder(t *testing.T) {
	var b strings.Builder
	b.WriteString("name: t\nstages:\n")
	// Twelve parts, so that lexical order of unpadded indices (0, 1, 10, 11, 2...) would differ.
	var refs []string
	for i := range 12 {
		fmt.Fprintf(&b, "  - id: n%d\n    uses: test-numbers\n    with: {count: %d}\n", i, i+1)
		refs = append(refs, fmt.Sprintf("n%d", i))
	}
	fmt.Fprintf(&b, "  - id: cat\n    uses: test-concat\n    inputs:\n      parts: [%s]\n", strings.Join(refs, ", "))
	cfg := mustParse(t, b.String())
	dir := t.TempDir()
	run(t, cfg, dir, Options{})
	ds, err := OpenDataset(filepath.Join(dir, "t", "cat", "sums"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := ReadAll[sumRow](ds)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 12 {
		t.Fatalf("%d sums, want 12", len(rows))
	}
	for i, r := range rows {
		if r.Count != int64(i+1) {
			t.Fatalf("sum %d counts %d rows, want %d (config order lost)", i, r.Count, i+1)
		}
	}

	for _, c := range []struct{ text, want string }{
		{"name: t\nstages:\n  - id: a\n    uses: test-numbers\n  - id: b\n    uses: test-square\n    inputs: {numbers: [a, a]}\n", `input "numbers" takes one dataset, not a list`},
		{"name: t\nstages:\n  - id: a\n    uses: test-concat\n    inputs: {parts: []}\n", "test.yaml:5:21: input parts: an empty list"},
		{"name: t\nstages:\n  - id: a\n    uses: test-concat\n", `missing input "parts"`},
	} {
		if _, err := ParseConfig("test.yaml", []byte(c.text)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want error containing %q, got %v", c.want, err)
		}
	}
}

type blobRow struct {
	Name string `parquet:"name"`
	Data []byte `parquet:"data"`
}

// Binary columns carry no page statistics: parquet-go would otherwise copy each page's min and
// max blob into the footer, several times the data's own size.
func TestBlobColumnsAreStoredOnce(t *testing.T) {
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*7919 + i>>8)
	}
	b, err := encodeShard([]blobRow{{"a", data}}, 0, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > len(data)*11/10 {
		t.Fatalf("a shard holding a %d-byte blob takes %d bytes", len(data), len(b))
	}
	path := filepath.Join(t.TempDir(), "blob.parquet")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := ReadFile[blobRow](path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || string(rows[0].Data) != string(data) || rows[0].Name != "a" {
		t.Fatal("blob does not round-trip")
	}
}
