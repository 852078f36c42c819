package governance_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/identity"
	"github.com/avila-analytics/avila/query"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// stack is a migrated database with the write stage and the Data API over
// it, as an aggregator wires them.
type stack struct {
	store  *postgres.Store
	db     *pgxpool.Pool // the test's own, for checks in SQL
	writer *write.Writer
	api    http.Handler
	seq    uint64
}

// allSites is what the stub key may read.
type allSites struct{}

func (allSites) LookupAPIKey(context.Context, string) ([]uint32, error) {
	return []uint32{1, 2, 3, 4, 5, 6, 7, 8}, nil
}

func newStack(t testing.TB) *stack {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	store, err := postgres.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	reports, err := postgres.OpenReportPool(ctx, url, nil, postgres.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reports.Close)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := store.EnsurePartitions(ctx, now.AddDate(0, 0, -40), now.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	// The tests count the events they send, so the write stage adds no
	// session_start or first_visit of its own; a subject's derived events
	// are rows under the same key and go with the rest.
	return &stack{store: store, db: testenv.Pool(t, url), writer: write.New(write.Config{NoDerivedEvents: true}, store),
		api: query.NewHandler(query.Options{}, reports, allSites{})}
}

// secret is every test site's identity secret.
var secret = bytes.Repeat([]byte{42}, identity.SecretLen)

// site creates a site in Madrid time with the test identity secret.
func (s *stack) site(t testing.TB, name string) uint32 {
	t.Helper()
	ctx := context.Background()
	site, err := s.store.CreateSite(ctx, postgres.SiteSpec{Name: name, Domains: []string{name + ".example"}, TimeZone: "Europe/Madrid"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.store.SetIdentitySecret(ctx, site.ID, secret); err != nil {
		t.Fatal(err)
	}
	return site.ID
}

// write stages events through the write stage in batches of 200 and
// derives them.
func (s *stack) write(t testing.TB, events []protocol.Event) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < len(events); i += 200 {
		s.seq++
		if _, err := s.writer.WriteBatch(ctx, "test-agent", s.seq, events[i:min(i+200, len(events))], nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.writer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// pack packs settled events and closed days' rollups, as the upkeep does.
func (s *stack) pack(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if err := s.store.PackRollups(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, pack := range []func(context.Context, time.Time) (int, error){s.store.PackEvents, s.store.PackItems} {
		for {
			n, err := pack(ctx, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
}

var (
	paths     = []string{"/", "/pricing", "/blog/a", "/blog/b", "/docs"}
	countries = []string{"DE", "ES", "FR", "US"}
	browsers  = []string{"Chrome", "Firefox", "Safari"}
	referrers = []string{"", "https://www.google.com/", "https://news.example.org/x"}
	names     = []string{"page_view", "page_view", "scroll", "click", "sign_up"}
)

// visit makes one session of visitor on site starting at start: a page
// view first, then n-1 events a minute or two apart.
func visit(rng *rand.Rand, site uint32, visitor uint64, start time.Time, n int, first bool) []protocol.Event {
	country, browser := countries[rng.IntN(len(countries))], browsers[rng.IntN(len(browsers))]
	var out []protocol.Event
	ts := start
	for i := range n {
		e := protocol.Event{Site: site, TimeMicros: ts.Truncate(time.Microsecond).UnixMicro(), Name: names[rng.IntN(len(names))],
			Visitor: visitor, Host: "www.example.com", Path: paths[rng.IntN(len(paths))], Title: "Title",
			Country: country, City: "City " + country, Browser: browser, OS: "Linux", Device: "desktop", Language: "en-us",
			EngageMs: int64(rng.IntN(20000))}
		if i == 0 {
			e.Name = "page_view"
			e.Flags |= protocol.FlagSessionStart
			e.Referrer = referrers[rng.IntN(len(referrers))]
			if first {
				e.Flags |= protocol.FlagFirstVisit
			}
		}
		if i == 1 {
			e.Flags |= protocol.FlagEngaged
		}
		if e.Name == "sign_up" {
			e.Flags |= protocol.FlagKeyEvent
			e.Params = map[string]string{"method": "email"}
		}
		out = append(out, e)
		ts = ts.Add(time.Duration(30+rng.IntN(90)) * time.Second)
	}
	// A third of the visits end in a purchase of one item.
	if n > 1 && rng.IntN(3) == 0 {
		purchase(rng, &out[n-1])
	}
	return out
}

// purchase makes e a purchase of one item, under a transaction id of its
// own.
func purchase(rng *rand.Rand, e *protocol.Event) {
	e.Name, e.Flags = "purchase", e.Flags|protocol.FlagKeyEvent
	e.Value, e.Tax, e.Currency = float64(5+rng.IntN(50)), 1.5, "USD"
	e.TransactionID = fmt.Sprintf("T-%x-%d", e.Visitor, e.TimeMicros)
	e.Items = []protocol.Item{{ID: "SKU-" + strconv.Itoa(rng.IntN(3)), Name: "Item " + strconv.Itoa(rng.IntN(3)), Price: e.Value, Quantity: 1}}
}

// seed makes visitors' sessions on site over the days before now (0 is
// today), sorted by time as agents ship them.
func seed(rng *rand.Rand, site uint32, visitors int, days int, now time.Time) []protocol.Event {
	var out []protocol.Event
	for v := range visitors {
		visitor := uint64(v+1)<<40 | 0x5eed
		for s := range 1 + rng.IntN(3) {
			start := now.AddDate(0, 0, -rng.IntN(days)).Add(-time.Duration(rng.IntN(20*3600)) * time.Second)
			out = append(out, visit(rng, site, visitor, start, 2+rng.IntN(5), s == 0)...)
		}
	}
	sortByTime(out)
	return out
}

func sortByTime(events []protocol.Event) {
	slices.SortStableFunc(events, func(a, b protocol.Event) int { return cmp.Compare(a.TimeMicros, b.TimeMicros) })
}

// onSite copies events for another site.
func onSite(events []protocol.Event, site uint32) []protocol.Event {
	out := slices.Clone(events)
	for i := range out {
		out[i].Site = site
	}
	return out
}

// report runs a runReport body on site and returns the answer's JSON.
func (s *stack) report(t testing.TB, site uint32, body map[string]any) string {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/v1beta/properties/%d:runReport", site), bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer avk_test")
	rec := httptest.NewRecorder()
	s.api.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("report %s on site %d: %d %s", raw, site, rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// reports is the table of reports compared: event and session scoped,
// from rollups and from raw events, by day, hour and dimension.
func reports(from string) []map[string]any {
	dr := []map[string]any{{"startDate": from, "endDate": "today"}}
	dims := func(names ...string) []map[string]any {
		var out []map[string]any
		for _, n := range names {
			out = append(out, map[string]any{"name": n})
		}
		return out
	}
	mets := dims
	all := mets("eventCount", "screenPageViews", "keyEvents", "totalUsers", "activeUsers", "newUsers", "userEngagementDuration")
	sess := mets("sessions", "engagedSessions", "bounceRate", "averageSessionDuration", "screenPageViewsPerSession")
	byDims := func(names ...string) []map[string]any {
		var out []map[string]any
		for _, n := range names {
			out = append(out, map[string]any{"dimension": map[string]any{"dimensionName": n}})
		}
		return out
	}
	return []map[string]any{
		{"dateRanges": dr, "metrics": all},
		{"dateRanges": dr, "dimensions": dims("date"), "metrics": mets("totalRevenue", "ecommercePurchases", "taxAmount"), "orderBys": byDims("date")},
		{"dateRanges": dr, "dimensions": dims("itemName"), "metrics": mets("itemRevenue", "itemsPurchased"), "orderBys": byDims("itemName")},
		{"dateRanges": dr, "dimensions": dims("date", "itemId"), "metrics": mets("itemRevenue", "itemsPurchased"), "orderBys": byDims("date", "itemId")},
		{"dateRanges": dr, "dimensions": dims("date"), "metrics": mets("itemRevenue", "itemsPurchased"), "orderBys": byDims("date")},
		{"dateRanges": dr, "dimensions": dims("sessionSource"), "metrics": all, "orderBys": byDims("sessionSource")},
		{"dateRanges": dr, "dimensions": dims("date", "sessionMedium"), "metrics": mets("eventCount", "totalUsers", "totalRevenue", "ecommercePurchases"),
			"orderBys": byDims("date", "sessionMedium")},
		{"dateRanges": dr, "dimensions": dims("date"), "metrics": all, "orderBys": byDims("date")},
		{"dateRanges": dr, "dimensions": dims("dateHour"), "metrics": mets("eventCount", "activeUsers"), "orderBys": byDims("dateHour")},
		{"dateRanges": dr, "dimensions": dims("eventName"), "metrics": all, "orderBys": byDims("eventName")},
		{"dateRanges": dr, "dimensions": dims("pagePath"), "metrics": all, "orderBys": byDims("pagePath")},
		{"dateRanges": dr, "dimensions": dims("country"), "metrics": all, "orderBys": byDims("country")},
		{"dateRanges": dr, "dimensions": dims("date", "browser"), "metrics": all, "orderBys": byDims("date", "browser")},
		{"dateRanges": dr, "dimensions": dims("eventName", "pagePath"), "metrics": mets("eventCount", "totalUsers"), "orderBys": byDims("eventName", "pagePath")},
		{"dateRanges": dr, "metrics": sess},
		{"dateRanges": dr, "dimensions": dims("date"), "metrics": sess, "orderBys": byDims("date")},
		{"dateRanges": dr, "dimensions": dims("sessionSource"), "metrics": sess, "orderBys": byDims("sessionSource")},
		{"dateRanges": dr, "dimensions": dims("landingPage"), "metrics": sess, "orderBys": byDims("landingPage")},
		{"dateRanges": dr, "dimensions": dims("newVsReturning"), "metrics": mets("sessions", "activeUsers"), "orderBys": byDims("newVsReturning")},
		{"dateRanges": dr, "metrics": mets("sessions", "activeUsers")},
		{"dateRanges": dr, "dimensions": dims("date", "sessionSource"), "metrics": mets("sessions", "activeUsers"), "orderBys": byDims("date", "sessionSource")},
		{"dateRanges": dr, "dimensions": dims("landingPage"), "metrics": mets("sessions", "activeUsers"), "orderBys": byDims("landingPage")},
		{"dateRanges": dr, "dimensions": dims("date", "country"), "metrics": sess, "orderBys": byDims("date", "country")},
		{"dateRanges": dr, "dimensions": dims("landingPage"), "metrics": mets("eventCount", "screenPageViews", "keyEvents", "userEngagementDuration"),
			"orderBys": byDims("landingPage")},
		{"dateRanges": dr, "dimensions": dims("date", "pagePath"), "metrics": mets("sessions", "screenPageViews"), "orderBys": byDims("date", "pagePath")},
		{"dateRanges": dr, "dimensions": dims("pageTitle"), "metrics": mets("sessions", "eventCount"), "orderBys": byDims("pageTitle")},
	}
}
