package demo

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TrafficOptions configure RunTraffic.
type TrafficOptions struct {
	AgentURL      string  // the agent's base URL; hits go to AgentURL/g/collect
	MeasurementID string  // the site's G-… id
	Rate          float64 // new visitors per second; > 0
	Logger        *slog.Logger
	Client        *http.Client // nil: a client with a 10 s timeout
	// MaxPause bounds the reading time between one visitor's hits; 0 means
	// 4 s. Tests use a tiny value.
	MaxPause time.Duration
	// MaxVisitors bounds visitors in flight at once; a new visitor beyond it
	// is skipped and counted. 0 means 4096.
	MaxVisitors int
	// Seed makes the visitors reproducible; 0 seeds from the clock.
	Seed uint64
}

// TrafficStats counts what RunTraffic did.
type TrafficStats struct {
	Visitors int64 // visitors started
	Skipped  int64 // visitors not started because MaxVisitors were in flight
	Hits     int64 // hits the agent answered with 2xx
	Failed   int64 // hits refused or not answered
}

// failLogEvery rate-limits the log line about refused hits.
const failLogEvery = 10 * time.Second

// Traffic sends synthetic visitors through an agent.
type Traffic struct {
	opts  TrafficOptions
	log   *slog.Logger
	slots chan struct{} // one per visitor in flight

	visitors, skipped, hits, failed atomic.Int64

	logMu      sync.Mutex
	lastLog    time.Time
	suppressed int
}

// NewTraffic applies opts' defaults; Run sends.
func NewTraffic(opts TrafficOptions) *Traffic {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}}
	}
	if opts.MaxPause == 0 {
		opts.MaxPause = 4 * time.Second
	}
	if opts.MaxVisitors <= 0 {
		opts.MaxVisitors = 4096
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	return &Traffic{opts: opts, log: opts.Logger, slots: make(chan struct{}, opts.MaxVisitors)}
}

// Run sends visitors to the agent's /g/collect in the GA4 gtag wire format
// until ctx is done, then waits for visitors in flight to stop. Refused
// hits are counted and logged (rate-limited), never retried: the demo shows
// the product, it does not test it.
func (t *Traffic) Run(ctx context.Context) {
	opts := t.opts
	r := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	interval := time.Duration(float64(time.Second) / opts.Rate)
	tick := time.NewTicker(max(interval, time.Microsecond))
	defer tick.Stop()
	t.log.Info("sending synthetic traffic", "visitors_per_second", opts.Rate, "agent", opts.AgentURL)
	var wg sync.WaitGroup
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			s := t.Stats()
			t.log.Info("synthetic traffic stopped", "visitors", s.Visitors, "skipped", s.Skipped, "hits", s.Hits, "failed", s.Failed)
			return
		case now := <-tick.C:
			if ctx.Err() != nil {
				continue // select picks among ready cases at random; stop next round
			}
			select {
			case t.slots <- struct{}{}:
			default:
				t.skipped.Add(1)
				continue
			}
			t.visitors.Add(1)
			// Each visitor draws from its own generator: rand.Rand is not
			// safe for concurrent use.
			vr := rand.New(rand.NewPCG(r.Uint64(), r.Uint64()))
			wg.Go(func() {
				defer func() { <-t.slots }()
				t.visit(ctx, planVisit(vr, opts.MeasurementID, now, opts.MaxPause))
			})
		}
	}
}

// Stats counts what was sent so far.
func (t *Traffic) Stats() TrafficStats {
	return TrafficStats{Visitors: t.visitors.Load(), Skipped: t.skipped.Load(), Hits: t.hits.Load(), Failed: t.failed.Load()}
}

// visit sends one visitor's hits, waiting out each pause; it stops early
// when ctx is done.
func (t *Traffic) visit(ctx context.Context, hits []visitHit) {
	for _, h := range hits {
		if h.pause > 0 {
			timer := time.NewTimer(h.pause)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		t.send(ctx, h)
	}
}

func (t *Traffic) send(ctx context.Context, h visitHit) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.opts.AgentURL+"/g/collect?"+h.params.Encode(), nil)
	if err != nil {
		t.fail(ctx, err.Error())
		return
	}
	req.Header.Set("User-Agent", h.userAgent)
	req.Header.Set("Accept-Language", h.language)
	if h.clientIP != "" {
		req.Header.Set("X-Forwarded-For", h.clientIP)
	}
	resp, err := t.opts.Client.Do(req)
	if err != nil {
		t.fail(ctx, err.Error())
		return
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.fail(ctx, resp.Status+": "+strings.TrimSpace(string(body)))
		return
	}
	t.hits.Add(1)
}

// fail counts a refused hit and logs it, at most once per failLogEvery.
// Hits cut short by the end of the run are not failures.
func (t *Traffic) fail(ctx context.Context, reason string) {
	if ctx.Err() != nil {
		return
	}
	t.failed.Add(1)
	t.logMu.Lock()
	defer t.logMu.Unlock()
	if now := time.Now(); now.Sub(t.lastLog) >= failLogEvery {
		t.log.Warn("synthetic hit refused by the agent", "reason", reason, "suppressed", t.suppressed)
		t.lastLog, t.suppressed = now, 0
		return
	}
	t.suppressed++
}
