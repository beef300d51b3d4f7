package pipeline

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// progressSink is where progress goes: a terminal line that redraws itself, or nothing (then
// plain log lines every logEvery).
type progressSink struct {
	term io.Writer // nil when stderr is not a terminal
}

const (
	logEvery    = 10 * time.Second
	redrawEvery = 150 * time.Millisecond
	barWidth    = 24
)

// Progress reports units of work done on a terminal as a bar with the count, rate and ETA that
// redraws itself, or as a log line every 10 s otherwise. Work a previous run did (Resume)
// counts towards the bar but not the rate. It is safe for concurrent use; a nil *Progress
// ignores every call.
type Progress struct {
	sink  progressSink
	log   *slog.Logger
	what  string // "<stage>" or "<stage>: <what>"
	unit  string
	total int

	mu         sync.Mutex
	base       int // units done before this process started (Resume)
	done       int // units done by this process
	rows       int64
	start      time.Time
	lastDraw   time.Time
	lastLog    time.Time
	finished   bool
	drawnWidth int
}

// newProgress starts a report of total units (0 if unknown) of stage's work what; when what
// names the unit itself ("steps" counted in steps) it is not repeated.
func newProgress(sink progressSink, log *slog.Logger, stage, what string, total int, unit string) *Progress {
	label := stage
	if what != "" && what != unit {
		label += ": " + what
	}
	now := time.Now()
	return &Progress{sink: sink, log: log, what: label, unit: unit, total: total, start: now, lastLog: now}
}

// Resume records that done units were already done before this process started (a resumed
// training, shards kept from a killed run): the bar starts there, and the rate and ETA count
// only what this process does.
func (p *Progress) Resume(done int) {
	if p == nil || done <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base = done
	switch {
	case p.total > 0 && done >= p.total:
		// Nothing left to do: no bar, no line.
	case p.sink.term != nil:
		p.draw(time.Now())
	default:
		p.log.Info("resuming", "what", p.what, "done", p.base, "total", p.total, "unit", p.unit)
	}
}

// Add records n more units done.
func (p *Progress) Add(n int) { p.AddRows(n, 0) }

// AddRows records n more units done, covering rows rows (shown as rows/s).
func (p *Progress) AddRows(n, rows int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done += n
	p.rows += int64(rows)
	now := time.Now()
	if p.sink.term != nil {
		if now.Sub(p.lastDraw) >= redrawEvery || p.base+p.done == p.total {
			p.lastDraw = now
			p.draw(now)
		}
		return
	}
	if now.Sub(p.lastLog) >= logEvery {
		p.lastLog = now
		args := []any{"what", p.what, "done", p.base + p.done, "total", p.total, "unit", p.unit, "rate", p.rate(now)}
		if eta := p.eta(now); eta > 0 {
			args = append(args, "eta", eta.String())
		}
		p.log.Info("progress", args...)
	}
}

// Done ends the report with a final log line: "done" when every unit of a known total is
// done, "interrupted" (with how far it got) when not. A second call does nothing.
func (p *Progress) Done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	now := time.Now()
	if p.sink.term != nil && p.drawnWidth > 0 {
		fmt.Fprint(p.sink.term, "\r"+strings.Repeat(" ", p.drawnWidth)+"\r")
	}
	if p.done == 0 {
		return
	}
	msg := "done"
	args := []any{"what", p.what, p.unit, p.base + p.done}
	if p.total > 0 && p.base+p.done < p.total {
		msg = "interrupted"
		args = []any{"what", p.what, p.unit, fmt.Sprintf("%d/%d", p.base+p.done, p.total)}
	}
	if p.base > 0 {
		args = append(args, "resumed_at", p.base)
	}
	if p.rows > 0 {
		args = append(args, "rows", p.rows)
	}
	args = append(args, "elapsed", now.Sub(p.start).Round(time.Millisecond).String(), "rate", p.rate(now))
	p.log.Info(msg, args...)
}

// rate is the speed of this process's work: rows/s when rows are counted, else units/s (the
// unit is said next to the count already).
func (p *Progress) rate(now time.Time) string {
	secs := now.Sub(p.start).Seconds()
	if secs <= 0 || p.done == 0 {
		return "-"
	}
	if p.rows > 0 {
		return fmt.Sprintf("%.1f rows/s", float64(p.rows)/secs)
	}
	if r := float64(p.done) / secs; r >= 100 {
		return fmt.Sprintf("%.0f/s", r)
	}
	return fmt.Sprintf("%.3g/s", float64(p.done)/secs)
}

func (p *Progress) eta(now time.Time) time.Duration {
	left := p.total - p.base - p.done
	if p.done == 0 || left <= 0 {
		return 0
	}
	per := now.Sub(p.start) / time.Duration(p.done)
	return (per * time.Duration(left)).Round(time.Second)
}

// bar draws a fraction in [0, 1] as barWidth cells of eighths.
func bar(frac float64) string {
	frac = min(max(frac, 0), 1)
	eighths := int(frac*barWidth*8 + 0.5)
	full, part := eighths/8, eighths%8
	var b strings.Builder
	b.WriteString(strings.Repeat("█", full))
	if part > 0 {
		b.WriteRune([]rune(" ▏▎▍▌▋▊▉")[part])
		full++
	}
	b.WriteString(strings.Repeat(" ", barWidth-full))
	return "▕" + b.String() + "▏"
}

// line is the terminal line: label, bar, count, rows, rate, ETA, resume point.
func (p *Progress) line(now time.Time) string {
	n := p.base + p.done
	var s string
	if p.total > 0 {
		s = fmt.Sprintf("%s %s %d/%d %s", p.what, bar(float64(n)/float64(p.total)), n, p.total, p.unit)
	} else {
		s = fmt.Sprintf("%s %d %s", p.what, n, p.unit)
	}
	if p.rows > 0 {
		s += fmt.Sprintf("  %d rows", p.rows)
	}
	s += "  " + p.rate(now)
	if eta := p.eta(now); eta > 0 {
		s += "  ETA " + eta.String()
	}
	if p.base > 0 {
		s += fmt.Sprintf("  (resumed at %d)", p.base)
	}
	return s
}

func (p *Progress) draw(now time.Time) {
	line := p.line(now)
	width := utf8.RuneCountInString(line)
	pad := ""
	if n := p.drawnWidth - width; n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.drawnWidth = width
	fmt.Fprint(p.sink.term, "\r"+line+pad)
}
