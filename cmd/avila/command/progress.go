package command

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avila-analytics/avila/agent/accesslog"
)

// progressBar shows how far an import is on stderr: a bar redrawn in place
// on a terminal, otherwise a line every logEvery.
type progressBar struct {
	w        io.Writer
	name     string
	size     int64         // bytes of the file
	read     *atomic.Int64 // bytes of the file read so far
	terminal bool
	start    time.Time

	mu   sync.Mutex
	last time.Time
}

const (
	drawEvery = 200 * time.Millisecond // on a terminal
	logEvery  = 10 * time.Second       // elsewhere
)

func newProgressBar(w io.Writer, name string, size int64, read *atomic.Int64) *progressBar {
	terminal := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			terminal = st.Mode()&os.ModeCharDevice != 0
		}
	}
	now := time.Now()
	return &progressBar{w: w, name: name, size: size, read: read, terminal: terminal, start: now, last: now}
}

// update draws p when it is time to.
func (b *progressBar) update(p accesslog.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	every := logEvery
	if b.terminal {
		every = drawEvery
	}
	if now.Sub(b.last) < every {
		return
	}
	b.last = now
	b.draw(p, now)
}

// finish draws the final state and ends the bar's line.
func (b *progressBar) finish(p accesslog.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.terminal && time.Since(b.start) < logEvery {
		return // short imports print only their summary
	}
	b.draw(p, time.Now())
	if b.terminal {
		fmt.Fprintln(b.w)
	}
}

func (b *progressBar) draw(p accesslog.Progress, now time.Time) {
	frac := 1.0
	if b.size > 0 {
		frac = min(float64(b.read.Load())/float64(b.size), 1)
	}
	elapsed := now.Sub(b.start)
	rate := float64(p.Lines) / max(elapsed.Seconds(), 1e-9)
	eta := "--:--"
	if frac > 0 && frac < 1 {
		left := time.Duration(float64(elapsed) * (1 - frac) / frac)
		eta = fmt.Sprintf("%d:%02d", int(left.Minutes()), int(left.Seconds())%60)
	}
	line := fmt.Sprintf("%s %3.0f%% %d lines, %d page views, %d stored, %.0f lines/s, ETA %s",
		b.name, frac*100, p.Lines, p.PageViews, p.Stored+p.Already, rate, eta)
	if b.terminal {
		const width = 24
		filled := int(frac * width)
		fmt.Fprintf(b.w, "\r[%s%s] %s\x1b[K", strings.Repeat("#", filled), strings.Repeat(".", width-filled), line)
		return
	}
	fmt.Fprintln(b.w, "import:", line)
}
