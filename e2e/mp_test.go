package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
)

// TestMeasurementProtocolThroughAgent sends Measurement Protocol requests
// to the real agent. As GA4 does, it answers 204 to all of them: a wrong
// secret's request is stored nowhere, a request with a bad event keeps its
// good one, both are counted by reason in analytics_mp_rejected_total, the
// debug endpoint stores nothing, and the good events are found once each in
// runReport.
func TestMeasurementProtocolThroughAgent(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	post := func(path, secret, body string) (int, string) {
		t.Helper()
		q := url.Values{"measurement_id": {s.site.MeasurementID}, "api_secret": {secret}}
		resp, err := http.Post(s.agent.ready["agent"]+path+"?"+q.Encode(), "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	page := func(name, path string) string {
		return fmt.Sprintf(`{"name":%q,"params":{"page_location":"https://e2e.test%s","engagement_time_msec":100}}`, name, path)
	}
	good := `{"client_id":"42.1764000000","events":[` + page("page_view", "/mp/home") + `,` + page("purchase", "/mp/home") + `]}`

	// As GA4 does: 204 to a wrong secret, nothing stored.
	if code, body := post("/mp/collect", "wrong", good); code != http.StatusNoContent {
		t.Fatalf("wrong secret: %d %s", code, body)
	}
	// One bad event does not cost the request its good one.
	bad := `{"client_id":"42.1","events":[` + page("page_view", "/mp/partly") + `,{"name":"session_start"}]}`
	if code, body := post("/mp/collect", s.site.APISecret, bad); code != http.StatusNoContent {
		t.Fatalf("reserved name: %d %s", code, body)
	}
	if code, body := post("/debug/mp/collect", s.site.APISecret, good); code != http.StatusOK || body != "{\"validationMessages\":[]}\n" {
		t.Fatalf("debug: %d %s", code, body)
	}
	if code, body := post("/mp/collect", s.site.APISecret, good); code != http.StatusNoContent {
		t.Fatalf("good request: %d %s", code, body)
	}
	// Beside the sent events, the session_start and first_visit the write
	// stage derives for each client's session: the reserved session_start
	// sent with /mp/partly is not among them (it would count twice).
	want := "first_visit /mp/home,first_visit /mp/partly,page_view /mp/home,page_view /mp/partly,purchase /mp/home," +
		"session_start /mp/home,session_start /mp/partly"
	eventually(t, 60*time.Second, "MP events in runReport", func() error {
		got, err := s.eventsByPage()
		if err != nil {
			return err
		}
		if strings.Join(got, ",") != want {
			return fmt.Errorf("runReport rows %q, want %q", got, want)
		}
		return nil
	})
	for reason, want := range map[string]float64{"api_secret": 2, "name_reserved": 1} {
		if got, err := metricValue(s.agent.ready["agent"], "analytics_mp_rejected_total", "reason", reason); err != nil || got != want {
			t.Errorf("analytics_mp_rejected_total{reason=%q} = %v (%v), want %v", reason, got, err, want)
		}
	}
}
