package pipeline

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// progressSink is where progress goes: a terminal line that redraws itself, or nothing (then
// plain log lines every logEvery).
type progressSink struct {
	term io.Writer // nil when stderr is not a terminal
}

const (
	logEvery    = 10 * time.Second
	redrawEvery = 150 * time.Millisecond
)

// Progress reports units of work done (with items/s and ETA) on a terminal, or as periodic
// log lines otherwise. It is safe for concurrent use.
type Progress struct {
	sink  progressSink
	log   *slog.Logger
	what  string
	unit  string
	total int

	mu         sync.Mutex
	done       int
	rows       int64
	start      time.Time
	lastDraw   time.Time
	lastLog    time.Time
	finished   bool
	drawnWidth int
}

func newProgress(sink progressSink, log *slog.Logger, what string, total int, unit string) *Progress {
	now := time.Now()
	return &Progress{sink: sink, log: log, what: what, unit: unit, total: total, start: now, lastLog: now}
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
		if now.Sub(p.lastDraw) >= redrawEvery || p.done == p.total {
			p.lastDraw = now
			p.draw(now)
		}
		return
	}
	if now.Sub(p.lastLog) >= logEvery {
		p.lastLog = now
		p.log.Info("progress", "what", p.what, "done", p.done, "total", p.total, "unit", p.unit, "rate", p.rate(now), "eta", p.eta(now).String())
	}
}

// Done ends the report with a final line.
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
	if p.done > 0 {
		p.log.Info("done", "what", p.what, p.unit, p.done, "rows", p.rows, "elapsed", now.Sub(p.start).Round(time.Millisecond).String(), "rate", p.rate(now))
	}
}

func (p *Progress) rate(now time.Time) string {
	secs := now.Sub(p.start).Seconds()
	if secs <= 0 {
		return "-"
	}
	if p.rows > 0 {
		return fmt.Sprintf("%.1f rows/s", float64(p.rows)/secs)
	}
	return fmt.Sprintf("%.2f %s/s", float64(p.done)/secs, p.unit)
}

func (p *Progress) eta(now time.Time) time.Duration {
	if p.done == 0 || p.total <= p.done {
		return 0
	}
	per := now.Sub(p.start) / time.Duration(p.done)
	return (per * time.Duration(p.total-p.done)).Round(time.Second)
}

func (p *Progress) draw(now time.Time) {
	line := fmt.Sprintf("%s  %d/%d %s", p.what, p.done, p.total, p.unit)
	if p.total == 0 {
		line = fmt.Sprintf("%s  %d %s", p.what, p.done, p.unit)
	}
	if p.rows > 0 {
		line += fmt.Sprintf("  %d rows", p.rows)
	}
	line += "  " + p.rate(now)
	if eta := p.eta(now); eta > 0 {
		line += "  ETA " + eta.String()
	}
	pad := ""
	if n := p.drawnWidth - len(line); n > 0 {
		pad = strings.Repeat(" ", n)
	}
	p.drawnWidth = len(line)
	fmt.Fprint(p.sink.term, "\r"+line+pad)
}
