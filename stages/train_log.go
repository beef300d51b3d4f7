package stages

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/cocoflow/cocoflow/pipeline"
)

// trainLog is train_log.csv while the train stage runs. Every step appends its line, and the
// file is synced before each checkpoint, so a run stopped at any moment (a signal, kill -9, a
// dead node) leaves on disk every step its checkpoint covers. A resumed run keeps the lines of
// the steps before its checkpoint, drops the later ones (they are made again, with the same
// values), and appends from there: the log, the log dataset and the plot end the same as an
// uninterrupted run's, every step once. Only seconds differ: they count on from the last kept
// step's.
type trainLog struct {
	path      string
	syncEvery int // the checkpoint period
	rows      []TrainLogRow
	f         *os.File // open for appending once begin ran
	offset    float64  // seconds of the kept steps
	begun     bool
}

const trainLogHeader = "step,loss,l_con,d_pos,d_neg,d_plain,l_back,lambda_neg,grad_norm,seconds"

// openTrainLog reads the log a previous run left at path (none: an empty log).
func openTrainLog(path string, syncEvery int) (*trainLog, error) {
	rows, err := readTrainLog(path)
	if err != nil {
		return nil, err
	}
	return &trainLog{path: path, syncEvery: syncEvery, rows: rows}, nil
}

// started reports whether begin ran.
func (l *trainLog) started() bool { return l.begun }

// begin starts this run's part of the log at step first (the resumed checkpoint's step, 0 for
// a new run): it keeps the rows before it, rewrites the file with them and opens it for
// appending. It returns the missing steps before first ("" when none), which only a log
// written by an older version can lack.
func (l *trainLog) begin(first int) (hole string) {
	l.begun = true
	for len(l.rows) > 0 && int(l.rows[len(l.rows)-1].Step) >= first {
		l.rows = l.rows[:len(l.rows)-1]
	}
	if n := len(l.rows); n > 0 {
		l.offset = float64(l.rows[n-1].Seconds)
	}
	var missing []string
	next := 0
	for _, r := range l.rows {
		if int(r.Step) > next {
			missing = append(missing, stepRange(next, int(r.Step)-1))
		}
		next = int(r.Step) + 1
	}
	if first > next {
		missing = append(missing, stepRange(next, first-1))
	}
	return strings.Join(missing, ", ")
}

func stepRange(a, b int) string {
	if a == b {
		return fmt.Sprint(a)
	}
	return fmt.Sprintf("%d-%d", a, b)
}

// seconds returns the log's seconds for a step elapsed after this run started.
func (l *trainLog) seconds(elapsed time.Duration) float32 {
	return float32(l.offset + elapsed.Seconds())
}

// add appends row to the log and the file, syncing it when a checkpoint follows this step.
func (l *trainLog) add(row TrainLogRow) error {
	if l.f == nil {
		var b strings.Builder
		b.WriteString(trainLogHeader + "\n")
		for _, r := range l.rows {
			b.WriteString(trainLogLine(r))
		}
		if err := pipeline.WriteFileAtomic(l.path, []byte(b.String())); err != nil {
			return err
		}
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return fmt.Errorf("train log: %w", err)
		}
		l.f = f
	}
	l.rows = append(l.rows, row)
	if _, err := l.f.WriteString(trainLogLine(row)); err != nil {
		return fmt.Errorf("train log %s: %w", l.path, err)
	}
	if l.syncEvery > 0 && (int(row.Step)+1)%l.syncEvery == 0 {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("train log %s: %w", l.path, err)
		}
	}
	return nil
}

// close syncs and closes the file; a second call does nothing.
func (l *trainLog) close() error {
	if l.f == nil {
		return nil
	}
	f := l.f
	l.f = nil
	return errors.Join(f.Sync(), f.Close())
}

// trainLogLine is one row of train_log.csv. Values are float32s written with %g, which reads
// back exactly, so a resumed run's kept rows equal the rows an uninterrupted run holds.
func trainLogLine(r TrainLogRow) string {
	return fmt.Sprintf("%d,%g,%g,%g,%g,%g,%g,%g,%g,%.2f\n", r.Step, r.Loss, r.Con, r.Pos, r.Neg, r.Plain, r.Back, r.LambdaNeg, r.GradNorm, r.Seconds)
}

// readTrainLog reads the CSV a previous (interrupted) run left, so a resumed run keeps its rows.
// A last line cut short by a kill is dropped; any other unreadable line is an error naming it.
func readTrainLog(path string) ([]TrainLogRow, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	text := string(data)
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		text = text[:i] // what follows the last newline was never finished
	} else {
		text = ""
	}
	lines := strings.Split(text, "\n")
	if len(lines) == 0 || lines[0] != trainLogHeader {
		return nil, nil // not ours or from an older format: start the log afresh
	}
	var rows []TrainLogRow
	for n, l := range lines[1:] {
		var r TrainLogRow
		if _, err := fmt.Sscanf(l, "%d,%g,%g,%g,%g,%g,%g,%g,%g,%g", &r.Step, &r.Loss, &r.Con, &r.Pos, &r.Neg, &r.Plain, &r.Back, &r.LambdaNeg, &r.GradNorm, &r.Seconds); err != nil {
			return nil, fmt.Errorf("%s:%d: %w (remove the file, or rerun with --force to train from step 0)", path, n+2, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}
