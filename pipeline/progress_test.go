package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestProgressBarOnATerminal(t *testing.T) {
	var term, logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	p := newProgress(progressSink{term: &term}, log, "ingest", "images", 10, "shards")
	p.Resume(4)
	p.AddRows(1, 8)
	p.AddRows(5, 40) // the last units always redraw
	frames := strings.Split(term.String(), "\r")
	last := frames[len(frames)-1]
	for _, want := range []string{"ingest: images ▕" + strings.Repeat("█", barWidth) + "▏ 10/10 shards", "48 rows", "rows/s", "(resumed at 4)"} {
		if !strings.Contains(last, want) {
			t.Errorf("last frame %q lacks %q", last, want)
		}
	}
	p.Done()
	if !strings.Contains(logs.String(), "msg=done") || !strings.Contains(logs.String(), "shards=10") || !strings.Contains(logs.String(), "resumed_at=4") {
		t.Errorf("done line: %s", logs.String())
	}

	// Half way, with an ETA; a stage counting its own unit ("steps" in steps) says it once.
	term.Reset()
	p = newProgress(progressSink{term: &term}, log, "train", "steps", 300, "steps")
	p.Resume(120)
	p.start = p.start.Add(-30 * time.Second) // 30 steps in 30 s
	p.Add(30)
	frames = strings.Split(term.String(), "\r")
	line := frames[len(frames)-1]
	if !strings.HasPrefix(line, "train ▕") || strings.Count(line, "steps") != 1 || !strings.Contains(line, "150/300 steps") ||
		!strings.Contains(line, "  1/s") || !strings.Contains(line, "ETA 2m30s") || !strings.Contains(line, "(resumed at 120)") {
		t.Errorf("frame %q: want 'train ▕…▏ 150/300 steps  <rate>/s  ETA …  (resumed at 120)'", line)
	}
	if b := bar(0.5); !strings.HasPrefix(b, "▕"+strings.Repeat("█", barWidth/2)+" ") {
		t.Errorf("bar(0.5) = %q", b)
	}
}

func TestProgressLogLinesWithoutATerminal(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	p := newProgress(progressSink{}, log, "train", "steps", 300, "steps")
	p.Resume(10)
	p.Add(55)
	p.Done()
	out := logs.String()
	for _, want := range []string{"msg=resuming", "done=10", "msg=interrupted", "steps=65/300", "resumed_at=10"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "rows=") || strings.Contains(out, "msg=done") {
		t.Errorf("a stage that counts no rows and stopped early logs neither rows nor done:\n%s", out)
	}
}

// MapShards' report counts the shards a killed run left as done already.
func TestShardProgressIsResumeAware(t *testing.T) {
	dir := t.TempDir()
	failing := mustParse(t, strings.Replace(testConfig, "shard_size: 16}", "shard_size: 16, fail_at: 4}", 1))
	if _, err := Run(context.Background(), failing, Options{Workdir: dir, Workers: 1}); err == nil {
		t.Fatal("want the injected failure")
	}
	var logs syncBuffer
	run(t, mustParse(t, testConfig), dir, Options{Workers: 1, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	out := logs.String()
	if !strings.Contains(out, `msg=resuming stage=numbers what="numbers: numbers" done=4 total=7`) ||
		!strings.Contains(out, "shards=7 resumed_at=4 rows=") {
		t.Errorf("resumed shard stage should report 4 of 7 done before it, 7 at the end:\n%s", out)
	}
}
