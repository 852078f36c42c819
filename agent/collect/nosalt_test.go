package collect

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoSaltToday: a site with no salt for today still gets its hits
// recorded (204), scrubbed, cookieless, with a visitor id from the
// process's in-memory key; a fresh config is asked for, the reason logged
// once (throttled) and the events counted as no_salt.
func TestNoSaltToday(t *testing.T) {
	var logs lockedBuffer
	nudges := 0
	newRig := func() *policyRig {
		return newPolicyRig(t, func(o *Options) {
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			o.OnUnknownSite = func() { nudges++ }
		})
	}
	p := newRig()
	const page = "&dl=https%3A%2F%2Fshop.test%2Fa%3Fq%3Dsecret%26utm_source%3Dx"
	for _, cid := range []string{"5551234.1764000000", "5559876.1764000000"} {
		w := p.from(testIP+":1", "v=2&tid=G-NOSALT&cid="+cid+"&uid=alice&en=page_view"+page, nil)
		if w.Code != http.StatusNoContent {
			t.Fatalf("no salt today: %d %q, want 204", w.Code, w.Body)
		}
	}
	evs := p.q.events(t)
	if len(evs) != 2 {
		t.Fatalf("%d events queued, want 2", len(evs))
	}
	e := evs[0]
	if e.Site != 8 || e.Visitor == 0 || e.Visitor != evs[1].Visitor || e.User != 0 || e.Path != "/a?utm_source=x" {
		t.Fatalf("events %+v / %+v; want site 8, one cookieless visitor (cids ignored), no user, scrubbed path", e, evs[1])
	}
	for _, call := range p.q.calls {
		for _, raw := range call {
			for _, secret := range []string{testIP, "203.0.113", testUA, "5551234", "5559876", "alice", "secret"} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Fatalf("queued event holds %q", secret)
				}
			}
		}
	}
	if got := p.count(OutcomeNoSalt); got != 2 {
		t.Fatalf("no_salt counted %d, want 2", got)
	}
	if p.count(OutcomeStored) != 0 || p.count(OutcomeNotReady) != 0 {
		t.Fatalf("counts %v; want only no_salt", p.counts)
	}
	if nudges != 2 {
		t.Fatalf("config refresh nudged %d times, want once per hit", nudges)
	}
	if n := strings.Count(logs.String(), "process-local visitor id"); n != 1 || !strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("log: %d warnings, want 1 (throttled):\n%s", n, logs.String())
	}

	// A restarted agent (a new Collector) cannot link its ids to these.
	q := newRig()
	q.from(testIP+":1", "v=2&tid=G-NOSALT&cid=1.1&en=page_view"+page, nil)
	if got := q.q.events(t); len(got) != 1 || got[0].Visitor == e.Visitor {
		t.Fatalf("after a restart: %+v, want a different visitor id than %x", got, e.Visitor)
	}
	// A site with today's salt is unaffected: cid counts, stored as usual.
	p.from(testIP+":1", hitQuery, nil)
	if got := p.q.events(t); len(got) != 3 || got[2].User == 0 || got[2].Visitor == e.Visitor || p.count(OutcomeStored) != 1 {
		t.Fatalf("salted site after: %+v, stored %d", got, p.count(OutcomeStored))
	}
}
