package pipeline

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// A run without --shard-index holds a lease on its run directory while it runs, so that a
// second such run of the same run name (another terminal, a requeued batch job) waits for it
// or refuses to start, instead of withdrawing the manifests the first one is writing. The lease
// is a file that works on a shared filesystem without locks, relying only on an atomic link
// (create-if-absent) and rename:
//
//   - taking it: the lease is written completely to a temporary and linked to
//     <workdir>/<run>/_lease.json; the link fails when a lease is there (O_EXCL create where the
//     filesystem has no hard links).
//   - holding it: every leaseHeartbeat the holder checks the lease is still its own (by its
//     token) and rewrites it with a new heartbeat time (temporary + rename). A holder that finds
//     another token has lost its lease and stops its run with an error.
//   - stale: a lease of this machine (same kernel and pid namespace) is stale as soon as its
//     process is gone; a lease of another machine when its heartbeat is more than leaseStale
//     old by this machine's clock (hosts that share a workdir keep their clocks in step, as
//     Slurm's authentication already requires).
//   - taking over a stale lease: rename it away to a temporary of one's own (only one of
//     several contenders' renames succeeds), check it is the stale lease one read (else link it
//     back), remove it and take the lease as above.
//   - giving it back: remove it at the end of the run, if it is still one's own.
//
// Slices (--shard-index) hold no lease; they write disjoint shards, or the same bytes under
// the same names, and may run at any time. They refuse to start while an unsliced run holds the
// lease, because that run may be withdrawing the manifests they read.

// LeaseFile is the name of the lease file in a run directory.
const LeaseFile = "_lease.json"

// Lease timing: how often a holder renews its lease, and how long a lease of another machine
// may go without renewal before it is stale. Variables so that tests can shorten them.
var (
	leaseHeartbeat = 10 * time.Second
	leaseStale     = 60 * time.Second
	leasePoll      = 200 * time.Millisecond // how often a waiting run looks again
)

// ErrLeaseLost is the cause of a run stopped because another process took its lease over.
var ErrLeaseLost = errors.New("lease lost")

// leaseInfo is the content of a lease file.
type leaseInfo struct {
	Token     string    `json:"token"`
	Host      string    `json:"host"`
	Machine   string    `json:"machine"`
	PID       int       `json:"pid"`
	ProcStart uint64    `json:"proc_start,omitempty"`
	Started   time.Time `json:"started"`
	Heartbeat time.Time `json:"heartbeat"`
	Args      []string  `json:"args,omitempty"`
}

// stale reports whether the holder of l is gone, and why.
func (l *leaseInfo) stale(now time.Time) (bool, string) {
	if l.Machine == currentOwner().Machine {
		if alive(l.PID, l.ProcStart) {
			return false, ""
		}
		return true, fmt.Sprintf("process %d on this machine is gone", l.PID)
	}
	if age := now.Sub(l.Heartbeat); age > leaseStale {
		return true, fmt.Sprintf("no heartbeat from %s for %s", l.Host, age.Round(time.Second))
	}
	return false, ""
}

// describe words who holds l, for messages.
func (l *leaseInfo) describe(now time.Time) string {
	cmd := ""
	if len(l.Args) > 0 {
		cmd = ", `" + strings.Join(l.Args, " ") + "`"
	}
	return fmt.Sprintf("pid %d on host %s, started %s, last heartbeat %s ago%s", l.PID, l.Host,
		l.Started.Local().Format("2006-01-02 15:04:05"), now.Sub(l.Heartbeat).Round(time.Second), cmd)
}

// InUseError is returned by Run when another run holds the run directory's lease.
type InUseError struct {
	Path   string // the lease file
	Holder string // who holds it
}

// Error says who holds the run directory and what to do.
func (e *InUseError) Error() string {
	return fmt.Sprintf("run directory %s is in use by another cocoflow run (%s): wait for it to finish, "+
		"or rerun with --wait to start when it does; if that process is gone for good, its lease goes "+
		"stale %s after its last heartbeat, or remove %s", filepath.Dir(e.Path), e.Holder, leaseStale, e.Path)
}

// readLease reads a lease file; ok is false when there is none. A lease that cannot be parsed
// (a half-written one on a filesystem without links) is returned with a zero token and its
// modification time as heartbeat.
func readLease(path string) (l *leaseInfo, ok bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read lease %s: %w", path, err)
	}
	l = &leaseInfo{}
	if json.Unmarshal(data, l) != nil || l.Token == "" {
		l = &leaseInfo{Host: "unknown (unreadable lease)"}
		if st, err := os.Stat(path); err == nil {
			l.Heartbeat = st.ModTime()
		}
	}
	return l, true, nil
}

// heldLease is a lease this process holds.
type heldLease struct {
	path   string
	info   leaseInfo
	stop   chan struct{}
	done   chan struct{}
	cancel context.CancelCauseFunc
}

// acquireLease takes the lease of runDir for this process. If another live run holds it, it
// returns an *InUseError, or, with wait, waits until that run ends (or its lease goes stale)
// and ctx allows. The returned context is ctx, cancelled with ErrLeaseLost if the lease is
// taken over while held.
func acquireLease(ctx context.Context, runDir string, args []string, wait bool, log *slog.Logger) (*heldLease, context.Context, error) {
	path := filepath.Join(runDir, LeaseFile)
	me := currentOwner()
	token := make([]byte, 12)
	if _, err := rand.Read(token); err != nil {
		return nil, nil, err
	}
	now := time.Now().UTC()
	info := leaseInfo{Token: hex.EncodeToString(token), Host: me.Host, Machine: me.Machine, PID: me.PID,
		ProcStart: me.Start, Started: now, Heartbeat: now, Args: args}
	waiting := false
	for {
		created, err := createLease(path, &info)
		if err != nil {
			return nil, nil, err
		}
		if created {
			break
		}
		held, ok, err := readLease(path)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			continue // released meanwhile
		}
		now := time.Now()
		if stale, why := held.stale(now); stale {
			log.Warn("taking over a stale lease", "lease", path, "holder", held.describe(now), "why", why)
			if err := breakLease(path, held.Token); err != nil {
				return nil, nil, err
			}
			continue
		}
		if !wait {
			return nil, nil, &InUseError{Path: path, Holder: held.describe(now)}
		}
		if !waiting {
			waiting = true
			log.Info("waiting for another run of this run directory to finish", "lease", path, "holder", held.describe(now))
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(leasePoll):
		}
	}
	// Holding the lease, sweep what killed runs left in the run directory (lease and run
	// manifest temporaries); output folders are swept when a stage plans them.
	removeAbandonedTemps(runDir)
	removeAbandonedTemps(filepath.Join(runDir, "_runs"))
	runCtx, cancel := context.WithCancelCause(ctx)
	h := &heldLease{path: path, info: info, stop: make(chan struct{}), done: make(chan struct{}), cancel: cancel}
	go h.heartbeat(log)
	return h, runCtx, nil
}

// createLease writes info to path unless a lease is there; created reports which.
func createLease(path string, info *leaseInfo) (created bool, err error) {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return false, err
	}
	data = append(data, '\n')
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(filepath.Base(path)))
	if err != nil {
		return false, fmt.Errorf("create lease %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, fmt.Errorf("create lease %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("create lease %s: %w", path, err)
	}
	err = os.Link(tmp.Name(), path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	// No hard links here (some FUSE and SMB mounts): an exclusive create instead. A reader may
	// then see a part-written lease for a moment; readLease takes it as held.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create lease %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return false, fmt.Errorf("create lease %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return false, fmt.Errorf("create lease %s: %w", path, err)
	}
	return true, nil
}

// breakLease removes the stale lease with the given token, and nothing else: another process
// may have replaced it meanwhile.
func breakLease(path, token string) error {
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		return err
	}
	tomb := filepath.Join(filepath.Dir(path), strings.Replace(tempPattern(filepath.Base(path)), "*", hex.EncodeToString(suffix), 1))
	if err := os.Rename(path, tomb); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // another contender moved it first
		}
		return fmt.Errorf("take over stale lease %s: %w", path, err)
	}
	defer os.Remove(tomb)
	got, ok, err := readLease(tomb)
	if err != nil || !ok {
		return err
	}
	if got.Token != token {
		// Not the lease judged stale: a fresh one another process has just taken. Put it back
		// unless a third one took the place (then that holder's heartbeat finds it lost).
		_ = os.Link(tomb, path)
	}
	return nil
}

// heartbeat renews the lease until release, and cancels the run if the lease is lost.
func (h *heldLease) heartbeat(log *slog.Logger) {
	defer close(h.done)
	t := time.NewTicker(leaseHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		got, ok, err := readLease(h.path)
		if err != nil {
			log.Warn("could not read the run's lease; will try again", "lease", h.path, "err", err)
			continue
		}
		if !ok || got.Token != h.info.Token {
			holder := "nobody (the file was removed)"
			if ok {
				holder = got.describe(time.Now())
			}
			h.cancel(fmt.Errorf("%w: %s is now held by %s; this run stops so that two runs do not write one run directory", ErrLeaseLost, h.path, holder))
			return
		}
		h.info.Heartbeat = time.Now().UTC()
		if err := WriteJSONAtomic(h.path, &h.info); err != nil {
			log.Warn("could not renew the run's lease; will try again", "lease", h.path, "err", err)
		}
	}
}

// release stops the heartbeat and removes the lease if it is still this process's.
func (h *heldLease) release() {
	close(h.stop)
	<-h.done
	h.cancel(nil)
	if got, ok, _ := readLease(h.path); ok && got.Token == h.info.Token {
		_ = os.Remove(h.path)
	}
}

// checkNoLease returns an *InUseError when a live unsliced run holds runDir's lease (what a
// slice checks before it starts), waiting for it instead with wait.
func checkNoLease(ctx context.Context, runDir string, wait bool, log *slog.Logger) error {
	path := filepath.Join(runDir, LeaseFile)
	waiting := false
	for {
		held, ok, err := readLease(path)
		if err != nil || !ok {
			return err
		}
		now := time.Now()
		if stale, _ := held.stale(now); stale {
			return nil // a dead run's lease does not stop a slice; the next unsliced run breaks it
		}
		if !wait {
			return &InUseError{Path: path, Holder: held.describe(now)}
		}
		if !waiting {
			waiting = true
			log.Info("waiting for the unsliced run of this run directory to finish", "lease", path, "holder", held.describe(now))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(leasePoll):
		}
	}
}
