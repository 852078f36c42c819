package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/avila-analytics/avila/internal/testenv"
)

// dashboardView is what a person sees on the dashboard, read from the page.
type dashboardView struct {
	State      string     `json:"state"`
	Hash       string     `json:"hash"`
	LoginShown bool       `json:"loginShown"`
	LoginError string     `json:"loginError"`
	Views      string     `json:"views"`
	Users      string     `json:"users"`
	Sessions   string     `json:"sessions"`
	Sources    [][]string `json:"sources"`
	Series     string     `json:"series"`
	Pages      [][]string `json:"pages"`
	Status     string     `json:"status"`
	Revenue    string     `json:"revenue"`
	Products   [][]string `json:"products"`
	ShopShown  bool       `json:"shopShown"`
}

// readDashboard snapshots the dashboard's visible figures.
const readDashboard = `(() => {
  const text = (id) => document.getElementById(id).textContent.trim();
  const rows = (id) => [...document.querySelectorAll("#" + id + " tbody tr")]
    .map((tr) => [...tr.cells].map((td) => td.textContent.trim()));
  return {
    state: document.getElementById("report").dataset.state,
    hash: location.hash,
    loginShown: !document.getElementById("login").hidden,
    loginError: text("login-error"),
    views: text("total-screenPageViews"),
    users: text("total-activeUsers"),
    sessions: text("total-sessions"),
    sources: rows("top-sources"),
    series: document.getElementById("series-views").dataset.values || "",
    pages: rows("top-pages"),
    status: text("status"),
    revenue: text("total-totalRevenue"),
    products: rows("top-products"),
    shopShown: !document.getElementById("card-revenue").hidden && !document.getElementById("top-products").hidden,
  };
})()`

// TestDashboardInChromium opens the dashboard the aggregator serves in a
// real browser with the key in the URL fragment, and finds on the page the
// figures the Data API gives for the same hits; then a wrong key puts the
// viewer back at the form with the API's refusal.
func TestDashboardInChromium(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	hits := []int{1, 1, 1, 2, 2, 3}
	for _, n := range hits {
		resp, err := browserGet(http.DefaultClient, s.hitURL(n))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("hit %d: status %d", n, resp.StatusCode)
		}
	}
	// A purchase in visitor 1's session: the revenue card and the top
	// products appear (as sent: no rate from EUR to the site's USD).
	purchase := strings.Replace(s.hitURL(1), "en=page_view", "en=purchase&cu=EUR&epn.value=42.5&ep.transaction_id=D1&pr1=idSKU-9~nmDashboard%20Mug~pr21.25~qt2", 1)
	if resp, err := browserGet(http.DefaultClient, purchase); err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("purchase: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	eventually(t, 60*time.Second, "hits stored", func() error {
		n, err := s.eventCount()
		if err == nil && n != len(hits)+1 {
			err = fmt.Errorf("eventCount %d, want %d", n, len(hits)+1)
		}
		return err
	})
	users, sessions := s.reportTotal(t, "activeUsers"), s.reportTotal(t, "sessions")

	api := s.agg.ready["api"]
	ctx := newBrowser(t)
	open := fmt.Sprintf("%s/#property=%d&key=%s", api, s.site.ID, url.QueryEscape(s.apiKey))
	if err := chromedp.Do(ctx, chromedp.Navigate(open)); err != nil {
		t.Fatalf("chromium: open the dashboard: %v", err)
	}
	steps, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(steps, chromedp.Poll[chromedp.Void](`document.getElementById("report").dataset.state === "ready"`)); err != nil {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[dashboardView](readDashboard))
		t.Fatalf("dashboard never became ready: %v; page shows %+v", err, v)
	}
	v, err := chromedp.Run(steps, chromedp.Evaluate[dashboardView](readDashboard))
	if err != nil {
		t.Fatal(err)
	}
	if v.Hash != "" {
		t.Errorf("the key stayed in the address bar: hash %q", v.Hash)
	}
	if v.Views != "6" {
		t.Errorf("page views card %q, want 6", v.Views)
	}
	if v.Users != users {
		t.Errorf("users card %q, runReport says %s", v.Users, users)
	}
	// Three visitors, one session each, all without a referrer.
	if v.Sessions != sessions || sessions != "3" {
		t.Errorf("sessions card %q, runReport says %s, want 3", v.Sessions, sessions)
	}
	if len(v.Sources) != 1 || len(v.Sources[0]) != 3 || v.Sources[0][0] != "(direct)" || v.Sources[0][1] != "3" {
		t.Errorf("sources %q, want (direct) with 3 sessions", v.Sources)
	}
	if !v.ShopShown || !strings.Contains(v.Revenue, "42.50") {
		t.Errorf("revenue card %q (shown %v), want 42.50 in the site's currency", v.Revenue, v.ShopShown)
	}
	if len(v.Products) != 1 || len(v.Products[0]) != 3 || v.Products[0][0] != "Dashboard Mug" || v.Products[0][2] != "2" {
		t.Errorf("top products %q, want Dashboard Mug with 2 items", v.Products)
	}
	series := strings.Split(v.Series, ",")
	if len(series) != 30 || series[len(series)-1] != "6" {
		t.Errorf("daily page views %q: want 30 days ending with today's 6", v.Series)
	}
	wantPages := [][]string{{"/p/1", "3"}, {"/p/2", "2"}, {"/p/3", "1"}}
	if len(v.Pages) != len(wantPages) {
		t.Fatalf("top pages %q, want %q", v.Pages, wantPages)
	}
	for i, want := range wantPages {
		if got := v.Pages[i]; len(got) != 3 || got[0] != want[0] || got[1] != want[1] {
			t.Errorf("top pages row %d = %q, want page %s with %s views", i, got, want[0], want[1])
		}
	}

	// The live card follows the realtime WebSocket: a new visitor's hit
	// shows up without a reload.
	live := `(() => { const c = document.getElementById("card-realtime");
		return c.hidden ? "" : c.dataset.source + " " + document.getElementById("realtime-users").textContent.trim(); })()`
	liveUsers := s.realtimeUsers(t)
	if err := chromedp.Do(steps, chromedp.Poll[chromedp.Void](live+` === "socket `+liveUsers+`"`)); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](live))
		t.Fatalf("live card %q, want %q from the WebSocket: %v", got, "socket "+liveUsers, err)
	}
	// A new client's first hit carries _fv=1, as gtag.js sends it: the
	// visitor is an active user from its first event.
	resp, err := browserGet(http.DefaultClient, strings.Replace(s.hitURL(4), "cid=4.", "cid=9004.", 1)+"&_fv=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	eventually(t, 60*time.Second, "the new visitor in runRealtimeReport", func() error {
		if got := s.realtimeUsers(t); got == liveUsers {
			return fmt.Errorf("realtime activeUsers still %s", got)
		}
		return nil
	})
	liveUsers = s.realtimeUsers(t)
	if err := chromedp.Do(steps, chromedp.Poll[chromedp.Void](live+` === "socket `+liveUsers+`"`)); err != nil {
		got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](live))
		t.Fatalf("live card %q after a new visitor, want %q: %v", got, "socket "+liveUsers, err)
	}

	// A 7-day period asks the API again and redraws.
	if err := chromedp.Do(steps,
		chromedp.SetValue(chromedp.CSS("#range"), "7"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("range").dispatchEvent(new Event("change"))`),
		chromedp.Poll[chromedp.Void](`document.getElementById("report").dataset.state === "ready" &&
			document.getElementById("series-views").dataset.values.split(",").length === 7`),
	); err != nil {
		t.Fatalf("dashboard did not redraw for 7 days: %v", err)
	}

	// A key the API refuses: back to the form, with the API's reason.
	bad := fmt.Sprintf("%s/#property=%d&key=not-a-key", api, s.site.ID)
	if err := chromedp.Do(steps,
		chromedp.Navigate(bad),
		chromedp.Reload(),
		chromedp.Poll[chromedp.Void](`!document.getElementById("login").hidden &&
			document.getElementById("login-error").textContent !== ""`),
	); err != nil {
		t.Fatalf("wrong key: the form did not come back: %v", err)
	}
	v, err = chromedp.Run(steps, chromedp.Evaluate[dashboardView](readDashboard))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.LoginError, "The API refused the key") {
		t.Errorf("login error %q, want the API's refusal", v.LoginError)
	}
}

// realtimeUsers asks runRealtimeReport for activeUsers of the last 30 minutes.
func (s *stack) realtimeUsers(t *testing.T) string {
	t.Helper()
	return s.postMetric(t, "runRealtimeReport", `{"metrics":[{"name":"activeUsers"}]}`)
}

// reportTotal asks runReport for one metric over the last days.
func (s *stack) reportTotal(t *testing.T, metric string) string {
	t.Helper()
	return s.postMetric(t, "runReport", fmt.Sprintf(`{"dateRanges":[{"startDate":"29daysAgo","endDate":"today"}],"metrics":[{"name":%q}]}`, metric))
}

// postMetric runs a report method whose one metric has no dimension and
// returns its value ("0" without rows).
func (s *stack) postMetric(t *testing.T, method, body string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost,
		fmt.Sprintf("%s/v1beta/properties/%d:%s", s.agg.ready["api"], s.site.ID, method), bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var rep struct {
		Rows []struct {
			MetricValues []struct{ Value string } `json:"metricValues"`
		} `json:"rows"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &rep) != nil {
		t.Fatalf("%s: %d %s", method, resp.StatusCode, b)
	}
	if len(rep.Rows) == 0 {
		return "0"
	}
	return rep.Rows[0].MetricValues[0].Value
}
