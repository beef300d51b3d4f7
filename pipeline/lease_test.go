package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockStarted is signalled by the test-block stage once it holds its progress report.
var blockStarted = make(chan struct{}, 16)

func init() {
	// test-block reports 3 of 10 units done, then waits until its run is cancelled.
	Register(Spec[struct{}]{
		Name: "test-block", Version: "1", Doc: "blocks until cancelled",
		Outputs: []Port{{Name: "out", Schema: numberRow{}}},
		Run: func(ctx context.Context, job *Job, _ *struct{}) error {
			prog := job.Progress("waiting", 10, "units")
			defer prog.Done()
			prog.Add(3)
			blockStarted <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		},
	})
}

const blockConfig = "name: t\nstages:\n  - id: block\n    uses: test-block\n"

// startBlocked runs blockConfig in dir in the background until cancel is called; the returned
// channel yields Run's result.
func startBlocked(t *testing.T, dir string, log *slog.Logger) (cancel func(), result chan error, rm **RunManifest) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	result = make(chan error, 1)
	var got *RunManifest
	go func() {
		m, err := Run(ctx, mustParse(t, blockConfig), Options{Workdir: dir, Log: log})
		got = m
		result <- err
	}()
	select {
	case <-blockStarted:
	case err := <-result:
		stop()
		t.Fatalf("blocking run ended early: %v", err)
	case <-time.After(20 * time.Second):
		stop()
		t.Fatal("blocking run did not start")
	}
	return stop, result, &got
}

func TestSecondRunRefusesOrWaitsWhileTheFirstHoldsTheLease(t *testing.T) {
	dir := t.TempDir()
	var logBuf syncBuffer
	stop, first, firstRM := startBlocked(t, dir, slog.New(slog.NewTextHandler(&logBuf, nil)))
	lease := filepath.Join(dir, "t", LeaseFile)
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("a running run holds no lease: %v", err)
	}

	_, err := Run(context.Background(), mustParse(t, testConfig), Options{Workdir: dir})
	var inUse *InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("second run: want an *InUseError, got %v", err)
	}
	for _, want := range []string{"is in use by another cocoflow run", "pid", "--wait", lease} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}
	// A slice refuses too: the unsliced run may be withdrawing manifests it would read.
	if _, err := Run(context.Background(), mustParse(t, testConfig), Options{Workdir: dir, Slice: Slice{Index: 0, Count: 2}}); !errors.As(err, &inUse) {
		t.Fatalf("slice during an unsliced run: want an *InUseError, got %v", err)
	}

	waited := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), mustParse(t, testConfig), Options{Workdir: dir, Wait: true})
		waited <- err
	}()
	select {
	case err := <-waited:
		t.Fatalf("--wait run did not wait for the first: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	stop()
	if err := <-first; err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("cancelled run: want an error saying interrupted, got %v", err)
	}
	if err := <-waited; err != nil {
		t.Fatalf("--wait run after the first ended: %v", err)
	}
	if got := (*firstRM).Stages[0].Status; got != StatusInterrupted {
		t.Errorf("cancelled stage status %q, want %q", got, StatusInterrupted)
	}
	out := logBuf.String()
	if !strings.Contains(out, "msg=interrupted") || !strings.Contains(out, "units=3/10") || strings.Contains(out, "msg=done") {
		t.Errorf("cancelled stage's progress should end 'interrupted' at 3/10:\n%s", out)
	}
	if !strings.Contains(out, `msg="run interrupted"`) {
		t.Errorf("run summary should say interrupted:\n%s", out)
	}
	if _, err := os.Stat(lease); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lease left after both runs ended: %v", err)
	}
}

// deadPID returns the pid of a process of this machine that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("cannot start a process to get a dead pid: %v", err)
	}
	return cmd.Process.Pid
}

func writeLease(t *testing.T, dir string, l leaseInfo) string {
	t.Helper()
	path := filepath.Join(dir, "t", LeaseFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(l)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStaleLeasesAreTakenOverAndLiveOnesAreNot(t *testing.T) {
	now := time.Now().UTC()
	me := currentOwner()
	cases := []struct {
		name  string
		lease leaseInfo
		stale bool
	}{
		{"this machine, process gone", leaseInfo{Token: "a", Host: me.Host, Machine: me.Machine, PID: deadPID(t), Heartbeat: now}, true},
		{"this machine, process alive", leaseInfo{Token: "b", Host: me.Host, Machine: me.Machine, PID: os.Getppid(), Heartbeat: now.Add(-time.Hour)}, false},
		{"other machine, fresh heartbeat", leaseInfo{Token: "c", Host: "node7", Machine: "elsewhere", PID: 1, Heartbeat: now}, false},
		{"other machine, old heartbeat", leaseInfo{Token: "d", Host: "node7", Machine: "elsewhere", PID: 1, Heartbeat: now.Add(-2 * leaseStale)}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeLease(t, dir, c.lease)
			_, err := Run(context.Background(), mustParse(t, testConfig), Options{Workdir: dir})
			if c.stale {
				if err != nil {
					t.Fatalf("stale lease not taken over: %v", err)
				}
				if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("lease not released after the run: %v", err)
				}
				return
			}
			var inUse *InUseError
			if !errors.As(err, &inUse) || !strings.Contains(err.Error(), "host "+c.lease.Host) {
				t.Fatalf("live lease: want an *InUseError naming host %s, got %v", c.lease.Host, err)
			}
			if l, ok, _ := readLease(path); !ok || l.Token != c.lease.Token {
				t.Fatal("a refused run touched the live lease")
			}
		})
	}
}

func TestRunStopsWhenItsLeaseIsTakenOver(t *testing.T) {
	defer func(h time.Duration) { leaseHeartbeat = h }(leaseHeartbeat)
	leaseHeartbeat = 20 * time.Millisecond
	dir := t.TempDir()
	stop, result, rm := startBlocked(t, dir, nil)
	defer stop()
	writeLease(t, dir, leaseInfo{Token: "thief", Host: "node9", Machine: "elsewhere", PID: 1, Heartbeat: time.Now().UTC()})
	select {
	case err := <-result:
		if !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "node9") {
			t.Fatalf("want the run stopped with ErrLeaseLost naming the new holder, got %v", err)
		}
		if got := (*rm).Stages[0].Status; got != StatusInterrupted {
			t.Fatalf("status %q, want %q", got, StatusInterrupted)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the run went on after losing its lease")
	}
	if l, ok, _ := readLease(filepath.Join(dir, "t", LeaseFile)); !ok || l.Token != "thief" {
		t.Fatal("the stopped run removed the lease it no longer held")
	}
}

// Temporaries are removed only when provably abandoned: of this machine with a dead process,
// or older than staleTempAge whoever made them.
func TestOnlyAbandonedTemporariesAreRemoved(t *testing.T) {
	dir := t.TempDir()
	run(t, mustParse(t, testConfig), dir, Options{})
	out := filepath.Join(dir, "t", "numbers", "numbers")
	me := currentOwner()
	tmp := func(machine string, pid int) string {
		return ".tmp-part-00001.parquet~" + machine + "~" + strconv.Itoa(pid) + "~123"
	}
	files := map[string]bool{ // name -> removed by the next run
		tmp(me.Machine, deadPID(t)):    true,
		tmp(me.Machine, os.Getppid()):  false, // a live writer of this machine
		tmp(me.Machine, me.PID):        false, // this process's own, in flight
		tmp("elsewhere", 4242):         false, // another machine's: cannot tell, and young
		".tmp-part-00002.parquet-8812": false, // an older name without owner: age only
	}
	old := map[string]bool{tmp("elsewhere", 4343): true, ".tmp-part-00003.parquet-77": true}
	for name := range files {
		writeFile(t, filepath.Join(out, name), "x")
	}
	for name := range old {
		path := filepath.Join(out, name)
		writeFile(t, path, "x")
		past := time.Now().Add(-staleTempAge - time.Hour)
		if err := os.Chtimes(path, past, past); err != nil {
			t.Fatal(err)
		}
		files[name] = true
	}
	run(t, mustParse(t, testConfig), dir, Options{Force: true, Only: []string{"numbers"}})
	for name, removed := range files {
		_, err := os.Stat(filepath.Join(out, name))
		if gone := errors.Is(err, os.ErrNotExist); gone != removed {
			t.Errorf("%s: removed %v, want %v", name, gone, removed)
		}
	}
}

// Several writers in one process (goroutines standing for machines): slices twice over, and
// plain runs that wait for each other, give the bytes of one run.
func TestConcurrentSlicesAndWaitingRunsInOneProcess(t *testing.T) {
	defer func(p time.Duration) { leasePoll = p }(leasePoll)
	leasePoll = 5 * time.Millisecond
	one := t.TempDir()
	run(t, mustParse(t, testConfig), one, Options{Workers: 1})
	want := datasetBytes(t, one)
	for rep := 0; rep < 20; rep++ {
		dir := t.TempDir()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for _, s := range []Slice{{0, 3}, {1, 3}, {2, 3}, {1, 3}} {
			wg.Go(func() {
				_, err := Run(context.Background(), mustParse(t, testConfig), Options{Workdir: dir, Workers: 2, Slice: s})
				errs <- err
			})
		}
		wg.Wait()
		for range 3 {
			wg.Go(func() {
				_, err := Run(context.Background(), mustParse(t, testConfig), Options{Workdir: dir, Workers: 2, Wait: true})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("repetition %d: %v", rep, err)
			}
		}
		got := datasetBytes(t, dir)
		if len(got) != len(want) {
			t.Fatalf("repetition %d: %d shard files, want %d", rep, len(got), len(want))
		}
		for name, data := range want {
			if got[name] != data {
				t.Fatalf("repetition %d: %s differs from a one-process run", rep, name)
			}
		}
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
