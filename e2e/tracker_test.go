package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/avila-analytics/avila/internal/testenv"
)

// desktopChrome is the user agent of an ordinary desktop Chrome.
const desktopChrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// chromiumPath finds Debian's chromium; the test fails (never skips) when
// it is missing, naming the package.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install it (Debian: apt-get install -y chromium)")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile and returns
// a context for driving one tab.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		// Headless Chromium names itself HeadlessChrome, which the agent
		// rightly counts as a bot and does not store; this test stands for
		// a person's browser.
		chromedp.UserAgent(desktopChrome),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	return ctx
}

// TestTrackerInChromium loads a page with t.js from the agent in a real
// browser, navigates the way a single-page app does (pushState), clicks an
// outbound link and fires a custom event, then finds exactly those events,
// on the right pages, in runReport.
func TestTrackerInChromium(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	agentURL := s.agent.ready["agent"]
	page := fmt.Sprintf(`<!doctype html><html><head><title>Landing</title>
<script>window.avila = window.avila || function () { (window.avila.q = window.avila.q || []).push(arguments); };</script>
<script defer src="%s/t.js" data-id="%s"></script></head>
<body><a id="out" href="https://elsewhere.test/offer?session=42" onclick="return false">offer</a></body></html>`,
		agentURL, s.site.MeasurementID)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	}))
	t.Cleanup(site.Close)

	ctx := newBrowser(t)
	// The first call starts the browser, whose life is its context's: no
	// timeout there, only on the steps after it.
	if err := chromedp.Do(ctx, chromedp.Navigate(site.URL+"/tjs/landing?email=someone%40mail.test")); err != nil {
		t.Fatalf("chromium: load the page: %v", err)
	}
	steps, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(steps,
		chromedp.Poll[chromedp.Void](`typeof window.avila === "function" && !window.avila.q`),
		chromedp.Evaluate[chromedp.Void](`history.pushState({}, "", "/tjs/cart"); document.title = "Cart"`),
		chromedp.Click(chromedp.CSS("#out")),
		chromedp.Evaluate[chromedp.Void](`avila("signup", {plan: "pro", seats: 3})`),
	)
	if err != nil {
		t.Fatalf("chromium: navigate, click, fire an event: %v", err)
	}

	// One session of a new visitor: GA4's session_start and first_visit
	// on its first page beside the events t.js sent.
	want := []string{"click /tjs/cart", "first_visit /tjs/landing", "page_view /tjs/cart", "page_view /tjs/landing",
		"session_start /tjs/landing", "signup /tjs/cart"}
	eventually(t, 60*time.Second, "t.js events in runReport", func() error {
		got, err := s.eventsByPage()
		if err != nil {
			return err
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("runReport rows %q, want %q (one each)", got, want)
		}
		return nil
	})
}

// eventsByPage asks runReport for eventCount by eventName and pagePath and
// renders each row as "name path", once per counted event, sorted.
func (s *stack) eventsByPage() ([]string, error) {
	body := `{"dateRanges":[{"startDate":"2daysAgo","endDate":"today"}],` +
		`"dimensions":[{"name":"eventName"},{"name":"pagePath"}],"metrics":[{"name":"eventCount"}]}`
	url := fmt.Sprintf("%s/v1beta/properties/%d:runReport", s.agg.ready["api"], s.site.ID)
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("runReport %d: %s", resp.StatusCode, b)
	}
	var rep struct {
		Rows []struct {
			DimensionValues []struct{ Value string } `json:"dimensionValues"`
			MetricValues    []struct{ Value string } `json:"metricValues"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("runReport answer %s: %w", b, err)
	}
	var out []string
	for _, row := range rep.Rows {
		var n int
		if _, err := fmt.Sscan(row.MetricValues[0].Value, &n); err != nil {
			return nil, fmt.Errorf("eventCount %q: %w", row.MetricValues[0].Value, err)
		}
		for range n {
			out = append(out, row.DimensionValues[0].Value+" "+row.DimensionValues[1].Value)
		}
	}
	sort.Strings(out)
	return out, nil
}
