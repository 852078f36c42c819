package bench

import (
	"bytes"
	"encoding/json"
	"net/url"
	"testing"

	"github.com/avila-analytics/avila/agent/collect"
)

// The harness's hits must be what the agent accepts, event for event, or
// the ingest figures would count refusals.
func TestTrafficParsesAsGtag(t *testing.T) {
	hit := singleHit("http://127.0.0.1:1", "G-BENCH00001")
	u, err := url.Parse(hit.URL)
	if err != nil {
		t.Fatal(err)
	}
	hits, err := collect.ParseGtag(u.RawQuery, nil)
	if err != nil {
		t.Fatalf("single hit refused: %v", err)
	}
	if len(hits) != 1 || hits[0].Name != "page_view" || hits[0].MeasurementID != "G-BENCH00001" {
		t.Fatalf("single hit parsed as %+v", hits)
	}

	names := map[string]int{}
	for _, r := range batchedSet("http://127.0.0.1:1", "G-BENCH00001", 8) {
		u, err := url.Parse(r.URL)
		if err != nil {
			t.Fatal(err)
		}
		hits, err := collect.ParseGtag(u.RawQuery, r.Body)
		if err != nil {
			t.Fatalf("batched request refused: %v\n%s", err, r.Body)
		}
		if len(hits) != batchEvents {
			t.Fatalf("batched request holds %d events, want %d", len(hits), batchEvents)
		}
		if len(r.Body) > 16<<10 {
			t.Fatalf("batched body is %d bytes, over the agent's 16 KiB limit", len(r.Body))
		}
		for _, h := range hits {
			names[h.Name]++
			if h.Page == "" || h.ClientID == "" {
				t.Fatalf("event without page or client id: %+v", h)
			}
		}
	}
	for _, n := range []string{"page_view", "scroll", "user_engagement", "click"} {
		if names[n] == 0 {
			t.Errorf("no %s event in the batched traffic: %v", n, names)
		}
	}
}

func TestWithBase(t *testing.T) {
	r, err := withBase(singleHit("http://127.0.0.1:1", "G-X"), "http://127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(r.URL)
	if u.Host != "127.0.0.1:2" || u.Path != "/g/collect" || u.Query().Get("tid") != "G-X" {
		t.Fatalf("moved request: %s", r.URL)
	}
}

// Measurement Protocol batches must be GA4's JSON with 25 events and fit
// the agent's body limit.
func TestMPBatch(t *testing.T) {
	r := mpBatch("http://127.0.0.1:1", "G-BENCH00001", "s3cret", 5)
	u, err := url.Parse(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/mp/collect" || u.Query().Get("measurement_id") != "G-BENCH00001" || u.Query().Get("api_secret") != "s3cret" {
		t.Fatalf("url %s", r.URL)
	}
	var body struct {
		ClientID string `json:"client_id"`
		Events   []struct {
			Name   string         `json:"name"`
			Params map[string]any `json:"params"`
		} `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(r.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("body is not the MP JSON: %v\n%s", err, r.Body)
	}
	if body.ClientID == "" || len(body.Events) != mpEvents {
		t.Fatalf("client %q, %d events; want a client id and %d events", body.ClientID, len(body.Events), mpEvents)
	}
	for _, e := range body.Events {
		if e.Name != "page_view" || e.Params["page_location"] == nil || e.Params["engagement_time_msec"] == nil {
			t.Fatalf("event %+v", e)
		}
	}
	if len(r.Body) > 16<<10 {
		t.Fatalf("body is %d bytes, over the agent's 16 KiB limit", len(r.Body))
	}
}
