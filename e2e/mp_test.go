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
// to the real agent: a wrong secret and a request breaking a rule are
// refused and stored nowhere, the debug endpoint stores nothing, and a good
// request's events are found once each in runReport.
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

	if code, body := post("/mp/collect", "wrong", good); code != http.StatusForbidden {
		t.Fatalf("wrong secret: %d %s", code, body)
	}
	bad := `{"client_id":"42.1","events":[` + page("page_view", "/mp/bad") + `,{"name":"session_start"}]}`
	if code, body := post("/mp/collect", s.site.APISecret, bad); code != http.StatusBadRequest || !strings.Contains(body, "NAME_RESERVED") {
		t.Fatalf("reserved name: %d %s", code, body)
	}
	if code, body := post("/debug/mp/collect", s.site.APISecret, good); code != http.StatusOK || body != "{\"validationMessages\":[]}\n" {
		t.Fatalf("debug: %d %s", code, body)
	}
	if code, body := post("/mp/collect", s.site.APISecret, good); code != http.StatusNoContent {
		t.Fatalf("good request: %d %s", code, body)
	}
	want := "page_view /mp/home,purchase /mp/home"
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
}
