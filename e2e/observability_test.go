package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/avila-analytics/avila/internal/testenv"
)

// metricValue scrapes base/metrics and returns the series of name whose
// labels include the given pairs ("k", "v", …); for a histogram its count.
func metricValue(base, name string, labels ...string) (float64, error) {
	return metricValueVia(http.DefaultClient, base, name, labels...)
}

// metricValueVia is metricValue through client.
func metricValueVia(client *http.Client, base, name string, labels ...string) (float64, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("parse %s/metrics: %w", base, err)
	}
next:
	for _, m := range fams[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), nil
		case m.Gauge != nil:
			return m.Gauge.GetValue(), nil
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), nil
		}
	}
	var series []string
	for _, m := range fams[name].GetMetric() {
		series = append(series, m.String())
	}
	return 0, fmt.Errorf("%s/metrics has no %s%v (it has %v)", base, name, labels, series)
}

// TestMetricsOfRealBinaries: after a load through the real agent and
// aggregator, both /metrics agree with what was acknowledged and stored.
func TestMetricsOfRealBinaries(t *testing.T) {
	const hits, senders = 2000, 8
	s := newStack(t, testenv.PostgresURL(t))
	// A browser's user agent: the agent does not store hits of bots (such
	// as Go's default client).
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := range senders {
		wg.Go(func() {
			for n := w; n < hits; n += senders {
				req, _ := http.NewRequest(http.MethodGet, s.hitURL(n), nil)
				req.Header.Set("User-Agent", browserUA)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusNoContent {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d hits not acknowledged", n, hits)
	}
	agent, api := s.agent.ready["agent"], s.agg.ready["operator"] // aggregator metrics: the operator address
	want := func(base string, n float64, name string, labels ...string) {
		t.Helper()
		eventually(t, time.Minute, name, func() error {
			v, err := metricValue(base, name, labels...)
			if err != nil {
				return err
			}
			if v != n {
				return fmt.Errorf("%s%v = %v, want %v", name, labels, v, n)
			}
			return nil
		})
	}
	want(agent, hits, "analytics_events_collected_total", "site", strconv.FormatUint(uint64(s.site.ID), 10), "outcome", "stored")
	want(agent, hits, "analytics_queue_appended_events_total")
	want(agent, 0, "analytics_queue_segments")
	want(agent, 0, "analytics_queue_pending_events")
	want(api, hits, "analytics_events_processed_total", "outcome", "stored")
	want(api, 0, "analytics_events_processed_total", "outcome", "dead_letter")
	want(api, 1, "analytics_cluster_members")
	// Reports see the events once the write stage derived them, within
	// its lag (docs/architecture.md).
	eventually(t, time.Minute, "report of every event", func() error {
		if n, err := s.pageViews(); err != nil || n != hits {
			return fmt.Errorf("runReport screenPageViews %d, %v; want %d", n, err, hits)
		}
		return nil
	})
	// The same report twice: the second from the query cache, with the
	// same count, since nothing was derived in between.
	for range 2 {
		if n, err := s.pageViews(); err != nil || n != hits {
			t.Fatalf("runReport screenPageViews %d, %v; want %d", n, err, hits)
		}
	}
	if v, err := metricValue(api, "analytics_cache_hits_total"); err != nil || v < 1 {
		t.Errorf("analytics_cache_hits_total %v, %v; want at least 1", v, err)
	}
	if v, err := metricValue(api, "analytics_query_duration_seconds", "endpoint", "runReport"); err != nil || v < 1 {
		t.Errorf("runReport durations observed: %v, %v", v, err)
	}
	for _, base := range []string{agent, api} {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s/readyz %d", base, resp.StatusCode)
		}
		if v, err := metricValue(base, "process_resident_memory_bytes"); err != nil || v <= 0 {
			t.Errorf("%s process_resident_memory_bytes %v, %v", base, v, err)
		}
	}
}
