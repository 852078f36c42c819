package command

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent/accesslog"
)

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	var read atomic.Int64
	b := newProgressBar(&out, "access.log", 1000, &read)
	read.Store(250)
	b.update(accesslog.Progress{Lines: 10})
	if out.Len() != 0 {
		t.Fatalf("drew %q before %s had passed", out.String(), logEvery)
	}
	// As if the import had run for 20 s: a quarter read, three quarters left.
	b.start, b.last = time.Now().Add(-20*time.Second), time.Now().Add(-logEvery)
	b.update(accesslog.Progress{Lines: 4000, PageViews: 3000, Stored: 2000, Already: 500})
	got := out.String()
	for _, want := range []string{"import: access.log  25% 4000 lines, 3000 page views, 2500 stored, 200 lines/s, ETA 1:00"} {
		if !strings.Contains(got, want) {
			t.Fatalf("progress line %q, want it to hold %q", got, want)
		}
	}
	b.terminal = true
	out.Reset()
	read.Store(1000)
	b.finish(accesslog.Progress{Lines: 8000})
	if got := out.String(); !strings.HasPrefix(got, "\r[########################] access.log 100%") || !strings.HasSuffix(got, "\n") {
		t.Fatalf("final bar %q", got)
	}
}
