package agent_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads base's /metrics and returns the value of metric name with
// the given label pairs ("k", "v", …); it fails when the series is absent.
func scrape(t *testing.T, base, name string, labels ...string) float64 {
	t.Helper()
	return scrapeWith(t, http.DefaultClient, base, name, labels...)
}

// scrapeWith is scrape through client.
func scrapeWith(t *testing.T, client *http.Client, base, name string, labels ...string) float64 {
	t.Helper()
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	fam, ok := fams[name]
	if !ok {
		t.Fatalf("%s/metrics has no %s", base, name)
	}
next:
	for _, m := range fam.GetMetric() {
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
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("%s/metrics has no %s%v", base, name, labels)
	return 0
}

// TestMetricsAfterTraffic drives a real agent and aggregator and checks
// that both /metrics count what happened: events stored, refused and
// dropped at the agent, the queue emptied by acks, events stored at the
// aggregator.
func TestMetricsAfterTraffic(t *testing.T) {
	p := newPipeline(t)
	site := p.createSite()
	a := p.startAgent()
	waitReady(t, a)
	siteLabel := strconv.FormatUint(uint64(site.ID), 10)
	for i := range 5 {
		if code, body := hit(a, site.MeasurementID, fmt.Sprintf("/m/%d", i)); code != http.StatusNoContent {
			t.Fatalf("hit %d: %d %s", i, code, body)
		}
	}
	if code, _ := hit(a, "G-NOSUCHSITE", "/x"); code != http.StatusBadRequest {
		t.Fatalf("unknown site answered %d", code)
	}
	if code, _ := do(http.MethodGet, a.URL+"/g/collect?v=2", ""); code != http.StatusBadRequest {
		t.Fatalf("hit without tid answered %d", code)
	}
	dnt, err := http.NewRequest(http.MethodGet, a.URL+"/g/collect?v=2&tid="+site.MeasurementID+"&cid=1.2&en=page_view&dl=https%3A%2F%2Fshop.test%2Fdnt", nil)
	if err != nil {
		t.Fatal(err)
	}
	dnt.Header.Set("Sec-GPC", "1")
	resp, err := http.DefaultClient.Do(dnt)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("Sec-GPC hit answered %d", resp.StatusCode)
	}
	waitFor(t, 60*time.Second, "events stored", func() error {
		if n := scrape(t, p.agg.OperatorURL, "analytics_events_processed_total", "outcome", "stored"); n < 5 {
			return fmt.Errorf("%v of 5 stored", n)
		}
		return nil
	})
	// The ack that deleted the segment may be counted a moment after the
	// rows are visible.
	waitFor(t, 30*time.Second, "queue emptied", func() error {
		if n := scrape(t, a.URL, "analytics_queue_segments") + scrape(t, a.URL, "analytics_queue_pending_events"); n != 0 {
			return fmt.Errorf("%v segments or events still queued", n)
		}
		return nil
	})

	f := func(base string, want float64, name string, labels ...string) {
		t.Helper()
		if got := scrape(t, base, name, labels...); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	f(a.URL, 5, "analytics_events_collected_total", "site", siteLabel, "outcome", "stored")
	f(a.URL, 1, "analytics_events_collected_total", "site", "unknown", "outcome", "unknown_site")
	f(a.URL, 1, "analytics_events_collected_total", "site", "unknown", "outcome", "invalid")
	f(a.URL, 1, "analytics_events_dropped_total", "reason", "invalid")
	f(a.URL, 1, "analytics_events_dropped_total", "reason", "unknown_site")
	f(a.URL, 0, "analytics_events_dropped_total", "reason", "bot")
	f(a.URL, 1, "analytics_events_dropped_total", "reason", "do_not_track")
	f(a.URL, 1, "analytics_events_collected_total", "site", siteLabel, "outcome", "do_not_track") // the site's policy decided
	f(a.URL, 0, "analytics_rate_limited_total")
	f(a.URL, 5, "analytics_queue_appended_events_total")
	f(a.URL, 0, "analytics_queue_bytes")
	f(a.URL, 0, "analytics_queue_oldest_segment_age_seconds")
	f(a.URL, 0, "analytics_ship_acks_total", "status", "reject")
	if ok := scrape(t, a.URL, "analytics_ship_acks_total", "status", "ok"); ok < 1 {
		t.Errorf("analytics_ship_acks_total{status=ok} = %v, want >= 1", ok)
	}
	if v := scrape(t, a.URL, "go_goroutines"); v <= 0 {
		t.Errorf("agent go_goroutines = %v", v)
	}
	api := p.agg.OperatorURL // the aggregator serves metrics on its operator address
	f(api, 5, "analytics_events_processed_total", "outcome", "stored")
	f(api, 0, "analytics_events_processed_total", "outcome", "dead_letter")
	if w := scrape(t, api, "analytics_storage_writes_total"); w < 1 {
		t.Errorf("analytics_storage_writes_total = %v, want >= 1", w)
	}
}
