package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/plan"
)

// commerceSeed is a shop on site 1 (New York, across the DST change of
// 2026-03-08): page views, item views, carts, purchases (some repeating a
// transaction id, some without one, in two currencies), in-app purchases
// and refunds over nine days.
func commerceSeed() []protocol.Event {
	rng := rand.New(rand.NewPCG(18, 19))
	loc, _ := time.LoadLocation("America/New_York")
	catalogue := []protocol.Item{
		{ID: "SKU-1", Name: "Shirt", Brand: "Avila", Category: "Apparel", Category2: "Men", Variant: "Red", ListName: "Summer", PromotionName: "Sale", Price: 10},
		{ID: "SKU-2", Name: "Socks", Brand: "Knit", Category: "Apparel", Price: 4},
		{ID: "SKU-3", Name: "Hat", Brand: "Avila", Category: "Accessories", Variant: "Blue", ListName: "Search", Price: 25.5},
		{ID: "SKU-4", Name: "Scarf", Brand: "Knit", Category: "Accessories", Category2: "Winter", Price: 12.25},
	}
	items := func() []protocol.Item {
		var out []protocol.Item
		for range 1 + rng.IntN(3) {
			it := catalogue[rng.IntN(len(catalogue))]
			it.Quantity = int64(rng.IntN(4)) // 0 counts as 1
			out = append(out, it)
		}
		return out
	}
	var out []protocol.Event
	for i := range 600 {
		ts := time.Date(2026, 3, 2+rng.IntN(9), 0, 0, 0, 0, loc).Add(time.Duration(rng.Int64N(int64(24 * time.Hour))))
		e := randomEvent(rng, 1, ts)
		e.Flags &^= protocol.FlagKeyEvent // the write stage marks key events
		switch k := rng.IntN(10); {
		case k < 3:
			e.Name = "page_view"
		case k < 5:
			e.Name, e.Items = "view_item", items()
		case k < 6:
			e.Name, e.Items, e.Value, e.Currency = "add_to_cart", items(), 20, "USD"
		case k < 8:
			e.Name, e.Items = "purchase", items()
			e.Value, e.Tax, e.Shipping = float64(rng.IntN(4000))/100, float64(rng.IntN(300))/100, float64(rng.IntN(2))*4.5
			if rng.IntN(5) > 0 {
				e.TransactionID = "T" + strconv.Itoa(rng.IntN(100)) // some repeat
			}
			if rng.IntN(3) == 0 {
				e.Currency = "EUR"
			}
		case k < 9:
			e.Name, e.Value, e.Currency = "in_app_purchase", float64(rng.IntN(1000))/100, "USD"
		default:
			e.Name, e.Value, e.TransactionID, e.Items = "refund", float64(rng.IntN(2000))/100, "T"+strconv.Itoa(i%100), items()[:1]
		}
		out = append(out, e)
	}
	return out
}

// TestCommerceRollupsMatchEvents: revenue, purchases, transactions and item
// reports by day and by one dimension (and the cross-scope page reports:
// events by landing page, sessions by page) come from the rollups (written by the
// derivation, packed by the upkeep, rewritten by a rebuild) with the
// numbers the raw engine reads from events joined to their ecommerce rows,
// and the revenue card's totals equal an oracle of GA4's rules over what
// was sent.
func TestCommerceRollupsMatchEvents(t *testing.T) {
	f, seed := commerceFixture(t)
	ctx := context.Background()
	// The oracle: the first purchase derived of a transaction id counts
	// (batches derive in send order; within one, the earliest in time).
	var purchaseRev, refunds, inApp float64
	var purchases int
	seen := map[string]bool{}
	for b := 0; b < len(seed); b += 150 {
		batch := append([]protocol.Event(nil), seed[b:b+150]...)
		order := make([]int, len(batch))
		for i := range order {
			order[i] = i
		}
		// Stable by time, as the write stage orders a derivation's purchases.
		sortStableBy(order, func(i int) int64 { return batch[i].TimeMicros })
		for _, i := range order {
			e := batch[i]
			switch e.Name {
			case "purchase":
				if e.TransactionID != "" && seen[e.TransactionID] {
					continue
				}
				seen[e.TransactionID] = e.TransactionID != ""
				purchaseRev += e.Value
				purchases++
			case "refund":
				refunds += e.Value
			case "in_app_purchase":
				inApp += e.Value
			}
		}
	}
	month := []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}
	reqs := []plan.RunReportRequest{
		{Metrics: mets("totalRevenue", "purchaseRevenue", "refundAmount", "shippingAmount", "taxAmount", "transactions",
			"ecommercePurchases", "averagePurchaseRevenue"), DateRanges: month},
		{Dimensions: dims("date"), Metrics: mets("totalRevenue", "ecommercePurchases", "transactions"), DateRanges: month},
		{Dimensions: dims("pagePath"), Metrics: mets("purchaseRevenue", "eventCount", "activeUsers"), DateRanges: month, MetricAggregations: allAggs},
		{Dimensions: dims("country"), Metrics: mets("totalRevenue", "refundAmount"), DateRanges: month, Limit: 3,
			OrderBys: []plan.OrderBy{{Metric: &plan.MetricOrderBy{MetricName: "totalRevenue"}, Desc: true}}},
		{Dimensions: dims("hour"), Metrics: mets("totalRevenue", "taxAmount"), DateRanges: month},
		{Dimensions: dims("eventName"), Metrics: mets("totalRevenue", "eventCount"), DateRanges: []plan.DateRange{
			{StartDate: "2026-03-02", EndDate: "2026-03-05"}, {StartDate: "2026-03-06", EndDate: "today"}}},
		{Dimensions: dims("itemName"), Metrics: mets("itemRevenue", "itemsPurchased"), DateRanges: month, Limit: 10,
			OrderBys: []plan.OrderBy{{Metric: &plan.MetricOrderBy{MetricName: "itemRevenue"}, Desc: true}}},
		{Dimensions: dims("date"), Metrics: mets("itemRevenue", "itemsViewed", "itemsAddedToCart"), DateRanges: month},
		{Metrics: mets("itemRevenue", "itemsPurchased", "itemsViewed", "itemsAddedToCart"), DateRanges: month},
		{Dimensions: dims("itemBrand"), Metrics: mets("itemRevenue"), DateRanges: month,
			DimensionFilter: ptr(strF("itemBrand", "EXACT", "Avila", true))},
		// The cross-scope page rows, packed and rebuilt like the others.
		{Dimensions: dims("landingPage"), Metrics: mets("eventCount", "screenPageViews", "keyEvents"), DateRanges: month, MetricAggregations: allAggs},
		{Dimensions: dims("date", "pagePath"), Metrics: mets("sessions", "eventCount"), DateRanges: month, MetricAggregations: allAggs},
		{Dimensions: dims("pageTitle"), Metrics: mets("sessions"), DateRanges: month},
	}
	for _, d := range []string{"itemId", "itemCategory", "itemCategory2", "itemVariant", "itemListName", "itemPromotionName"} {
		reqs = append(reqs, plan.RunReportRequest{Dimensions: dims(d), Metrics: mets("itemRevenue", "itemsPurchased", "itemsViewed", "itemsAddedToCart"),
			DateRanges: month, MetricAggregations: allAggs})
	}
	events, rollups := f.routedHandler(t, plan.RouteEvents), f.routedHandler(t, plan.RouteRollups)
	check := func(phase string) {
		t.Helper()
		for _, req := range reqs {
			name := phase + ": " + strings.Join(mnames(req), ",") + " by " + strings.Join(dnames(req), ",")
			if !f.coveredByRollups(t, 1, req) {
				t.Errorf("%s: not covered by the rollups", name)
				continue
			}
			want, got := runOn(t, events, req), runOn(t, rollups, req)
			if len(want.Rows) == 0 {
				t.Errorf("%s: no rows", name)
			}
			compareReports(t, name, want, got)
		}
		card := runOn(t, rollups, reqs[0])
		for i, w := range []float64{purchaseRev + inApp - refunds, purchaseRev - refunds, refunds} {
			if g := number(t, card.Rows[0].MetricValues[i].Value); math.Abs(g-w) > 1e-6 {
				t.Errorf("%s: %s = %v, oracle %v", phase, reqs[0].Metrics[i].Name, g, w)
			}
		}
		if g := card.Rows[0].MetricValues[6].Value; g != strconv.Itoa(purchases) {
			t.Errorf("%s: ecommercePurchases = %s, oracle %d", phase, g, purchases)
		}
	}
	t.Logf("oracle: purchase revenue %v, refunds %v, in-app %v, purchases %d", purchaseRev, refunds, inApp, purchases)
	check("derived")
	if err := f.store.PackRollups(ctx, fixtureNow); err != nil {
		t.Fatal(err)
	}
	var packed int
	if err := f.pool.QueryRow(ctx, "SELECT count(*) FROM rollup_packs WHERE site_id = 1 AND amounts IS NOT NULL AND kind = $1",
		int16(101)).Scan(&packed); err != nil || packed == 0 {
		t.Fatalf("packed item rollups with amounts: %d, %v", packed, err)
	}
	check("packed")
	if err := f.store.RebuildRollups(ctx, 1); err != nil {
		t.Fatal(err)
	}
	check("rebuilt")
	// Item rows of settled days move into item_packs (events into
	// event_packs) in parts of at most 40; the raw engine's item reports
	// read rows and packs as before, and a rebuild reads items from both.
	before := make([]*plan.RunReportResponse, len(reqs))
	for i, req := range reqs {
		before[i] = runOn(t, events, req)
	}
	f.store.SetPackPartEvents(40)
	packAt := fixtureNow.Add(24 * time.Hour) // days through 2026-03-07 (UTC) settled
	for _, pack := range []func(context.Context, time.Time) (int, error){f.store.PackEvents, f.store.PackItems} {
		if days, err := pack(ctx, packAt); err != nil || days == 0 {
			t.Fatalf("pack: %d days, %v", days, err)
		}
	}
	var packs, parts, packedItems, rows, late int
	if err := f.pool.QueryRow(ctx, `SELECT count(DISTINCT day), count(*), COALESCE(sum(items), 0),
			(SELECT count(*) FROM event_items WHERE ts < '2026-03-08'), (SELECT count(*) FROM event_items WHERE ts >= '2026-03-08')
		FROM item_packs WHERE site_id = 1`).Scan(&packs, &parts, &packedItems, &rows, &late); err != nil {
		t.Fatal(err)
	}
	if packs < 4 || parts <= packs || packedItems == 0 || rows != 0 || late == 0 {
		t.Fatalf("item packs: %d days in %d parts holding %d items, %d settled rows left, %d rows after", packs, parts, packedItems, rows, late)
	}
	for i, req := range reqs {
		compareReports(t, "items packed: raw "+strings.Join(mnames(req), ",")+" by "+strings.Join(dnames(req), ","), before[i], runOn(t, events, req))
	}
	check("items packed")
	if err := f.store.RebuildRollups(ctx, 1); err != nil {
		t.Fatal(err)
	}
	check("rebuilt from item packs")
}

// commerceFixture is a fixture holding commerceSeed, written in batches of
// 150 events, each derived before the next.
func commerceFixture(t *testing.T) (*fixture, []protocol.Event) {
	f := newFixture(t, 0)
	seed := commerceSeed()
	for i := 0; i < len(seed); i += 150 {
		if _, err := f.writeBatch(context.Background(), "shop", uint64(i), seed[i:i+150], nil); err != nil {
			t.Fatal(err)
		}
	}
	return f, seed
}

func sortStableBy(idx []int, key func(int) int64) {
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && key(idx[j]) < key(idx[j-1]); j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
}

func runOn(t *testing.T, h *handler, req plan.RunReportRequest) *plan.RunReportResponse {
	t.Helper()
	code, body := post(t, h, "1", testKey, req)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var resp plan.RunReportResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

// compareReports wants got's rows, totals, maximums and minimums equal to
// want's: the same dimension values in the same order, metrics equal up to
// float rounding of sums taken in another order (user counts within 2%).
func compareReports(t *testing.T, name string, want, got *plan.RunReportResponse) {
	t.Helper()
	rows := func(r *plan.RunReportResponse) []plan.Row {
		out := append([]plan.Row(nil), r.Rows...)
		out = append(out, r.Totals...)
		out = append(out, r.Maximums...)
		return append(out, r.Minimums...)
	}
	w, g := rows(want), rows(got)
	if len(w) != len(g) || want.RowCount != got.RowCount {
		t.Errorf("%s: %d rows (rowCount %d) from the rollups, %d (%d) from events", name, len(g), got.RowCount, len(w), want.RowCount)
		return
	}
	for i := range w {
		if fmt.Sprint(w[i].DimensionValues) != fmt.Sprint(g[i].DimensionValues) {
			t.Errorf("%s: row %d is %v from the rollups, %v from events", name, i, g[i].DimensionValues, w[i].DimensionValues)
			continue
		}
		for j := range w[i].MetricValues {
			a, b := number(t, w[i].MetricValues[j].Value), number(t, g[i].MetricValues[j].Value)
			tol := 1e-6 * math.Max(1, math.Abs(a))
			if strings.Contains(name, "activeUsers") && j == 2 {
				tol = 0.02 * a // a user count merged from sketches
			}
			if math.Abs(a-b) > tol {
				t.Errorf("%s: row %v metric %d = %v from the rollups, %v from events", name, w[i].DimensionValues, j, b, a)
			}
		}
	}
}

// TestItemReportsWithUsersAndSessions: GA4 reports item-scoped dimensions
// with item-scoped, user and session metrics, and refuses event-scoped
// ones (eventCount, newUsers, ecommercePurchases …). Users by item are the
// visitors with an item row of the item.
func TestItemReportsWithUsersAndSessions(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	seed := commerceSeed()[:150] // one derivation: no repeated transaction is derived before its first
	if _, err := f.writeBatch(ctx, "shop", 1, seed, nil); err != nil {
		t.Fatal(err)
	}
	// The oracle: item names' visitors, a repeated purchase's items not
	// counted (the earliest purchase of a transaction id counts).
	first := map[string]int64{}
	for _, e := range seed {
		if e.Name == "purchase" && e.TransactionID != "" {
			if t0, ok := first[e.TransactionID]; !ok || e.TimeMicros < t0 {
				first[e.TransactionID] = e.TimeMicros
			}
		}
	}
	users := map[string]map[uint64]bool{}
	for _, e := range seed {
		if e.Name == "purchase" && e.TransactionID != "" && e.TimeMicros != first[e.TransactionID] {
			continue
		}
		for _, it := range e.Items {
			if users[it.Name] == nil {
				users[it.Name] = map[uint64]bool{}
			}
			users[it.Name][e.Visitor] = true
		}
	}
	h := f.handler(t)
	req := plan.RunReportRequest{Dimensions: dims("itemName"), Metrics: mets("totalUsers", "sessions", "activeUsers", "itemsViewed"),
		DateRanges: []plan.DateRange{{StartDate: "2026-03-01", EndDate: "today"}}}
	got := runOn(t, h.(*handler), req)
	if len(got.Rows) != len(users) {
		t.Fatalf("%d item rows, want %d", len(got.Rows), len(users))
	}
	for _, r := range got.Rows {
		name := r.DimensionValues[0].Value
		if u := r.MetricValues[0].Value; u != strconv.Itoa(len(users[name])) {
			t.Errorf("%s: totalUsers %s, want %d", name, u, len(users[name]))
		}
		if s := number(t, r.MetricValues[1].Value); s < float64(len(users[name])) {
			t.Errorf("%s: %v sessions for %d users", name, s, len(users[name]))
		}
	}
	// checkCompatibility says the same: itemName goes with item metrics,
	// sessions and users, not with event-scoped metrics.
	compat := httptest.NewRequest(http.MethodPost, "/v1beta/properties/1:checkCompatibility",
		strings.NewReader(`{"dimensions":[{"name":"itemName"}]}`))
	compat.Header.Set("Authorization", "Bearer "+testKey)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, compat)
	var cc struct {
		MetricCompatibilities []struct {
			MetricMetadata struct{ APIName string } `json:"metricMetadata"`
			Compatibility  string                   `json:"compatibility"`
		} `json:"metricCompatibilities"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &cc); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("checkCompatibility: %d %s (%v)", rec.Code, rec.Body, err)
	}
	compatible := map[string]string{}
	for _, m := range cc.MetricCompatibilities {
		compatible[m.MetricMetadata.APIName] = m.Compatibility
	}
	for m, want := range map[string]string{"sessions": "COMPATIBLE", "totalUsers": "COMPATIBLE", "activeUsers": "COMPATIBLE",
		"itemRevenue": "COMPATIBLE", "eventCount": "INCOMPATIBLE", "newUsers": "INCOMPATIBLE", "ecommercePurchases": "INCOMPATIBLE"} {
		if compatible[m] != want {
			t.Errorf("checkCompatibility: itemName with %s is %q, want %s", m, compatible[m], want)
		}
	}
	for _, m := range []string{"eventCount", "newUsers", "ecommercePurchases"} {
		req.Metrics = mets("itemRevenue", m)
		if code, body := post(t, h, "1", testKey, req); code != 400 || !strings.Contains(string(body), `metric \"`+m+`\"`) {
			t.Errorf("itemName with %s: %d %s, want 400 naming the pair", m, code, body)
		}
	}
}
