package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

// shopItem is an item as the oracle sees it.
type shopItem struct {
	id, name, brand, variant, list, promo string
	cats                                  [5]string
	price                                 float64
	qty                                   int
}

// shopEvent is one event the test sends, as the oracle sees it: visitor
// is the sender's client (one visitor id and one session each), engaged
// whether the hit carries engagement time.
type shopEvent struct {
	wire       string // gtag, mp or tjs
	visitor    string
	name       string
	currency   string
	value, tax float64
	shipping   float64
	tx         string
	items      []shopItem
	engaged    bool
	page       string // page_location; "" for a page of its own
}

// gtagItem writes an item as gtag.js does (pr1=id…~nm…).
func (it shopItem) gtag() string {
	parts := []string{"id" + it.id, "nm" + it.name}
	for k, v := range map[string]string{"br": it.brand, "va": it.variant, "ln": it.list, "pn": it.promo,
		"ca": it.cats[0], "c2": it.cats[1], "c3": it.cats[2], "c4": it.cats[3], "c5": it.cats[4]} {
		if v != "" {
			parts = append(parts, k+v)
		}
	}
	sort.Strings(parts[2:])
	return strings.Join(append(parts, "pr"+strconv.FormatFloat(it.price, 'f', -1, 64), "qt"+strconv.Itoa(it.qty)), "~")
}

// json writes an item as the Measurement Protocol and t.js send it.
func (it shopItem) json() map[string]any {
	m := map[string]any{"item_id": it.id, "item_name": it.name, "price": it.price, "quantity": it.qty}
	for k, v := range map[string]string{"item_brand": it.brand, "item_variant": it.variant, "item_list_name": it.list,
		"promotion_name": it.promo, "item_category": it.cats[0], "item_category2": it.cats[1], "item_category3": it.cats[2],
		"item_category4": it.cats[3], "item_category5": it.cats[4]} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

// TestEcommerceOracle sends purchases, refunds, repeated transactions, item
// views and carts as gtag.js item strings, Measurement Protocol items and
// t.js purchases through a real agent and aggregator into PostgreSQL, and
// checks every ecommerce metric and dimension the query API offers against
// values the test computes from what it sent.
func TestEcommerceOracle(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	ctx := context.Background()
	if _, err := s.store.SetKeyEvents(ctx, s.site.ID, []string{"purchase", "sign_up"}); err != nil {
		t.Fatal(err)
	}
	const eurToUSD = 1.25 // the site reports in USD (the default)
	if err := s.store.SetCurrencyRate(ctx, postgres.CurrencyRate{Currency: "EUR", Reporting: "USD", Rate: eurToUSD}); err != nil {
		t.Fatal(err)
	}
	shirt := shopItem{id: "SKU-1", name: "Shirt", brand: "Avila", variant: "Red", list: "Summer", promo: "Promo 1",
		cats: [5]string{"Apparel", "Men", "Tops", "Cotton", "Sale"}, price: 10, qty: 2}
	socks := shopItem{id: "SKU-2", name: "Socks", brand: "Knit", cats: [5]string{"Apparel", "Men"}, price: 4, qty: 3}
	hat := shopItem{id: "SKU-3", name: "Hat", brand: "Avila", variant: "Blue", list: "Search", cats: [5]string{"Accessories"}, price: 25, qty: 2}
	one := func(it shopItem) shopItem { it.qty = 1; return it }
	sent := []shopEvent{
		{wire: "gtag", visitor: "a", name: "view_item", items: []shopItem{one(shirt)}, engaged: true},
		{wire: "gtag", visitor: "a", name: "add_to_cart", currency: "EUR", value: 10, items: []shopItem{one(shirt)}, engaged: true},
		{wire: "gtag", visitor: "a", name: "begin_checkout", engaged: true},
		{wire: "gtag", visitor: "a", name: "purchase", currency: "EUR", value: 32, tax: 4, shipping: 5, tx: "T1", items: []shopItem{shirt, socks}, engaged: true},
		{wire: "mp", visitor: "b", name: "view_item", items: []shopItem{one(hat), one(shirt)}, engaged: true},
		{wire: "mp", visitor: "b", name: "purchase", currency: "USD", value: 50, tax: 2, tx: "T2", items: []shopItem{hat}, engaged: true},
		{wire: "mp", visitor: "r", name: "refund", currency: "EUR", value: 8, tx: "T1", items: []shopItem{one(socks), one(socks)}, engaged: true},
		{wire: "tjs", visitor: "t", name: "view_item", items: []shopItem{one(socks)}},
		{wire: "tjs", visitor: "t", name: "add_to_cart", items: []shopItem{socks}},
		{wire: "tjs", visitor: "t", name: "purchase", value: 12, tx: "T3", items: []shopItem{socks}}, // no currency: the site's
		{wire: "tjs", visitor: "t", name: "sign_up"},
		// A browser session from a newsletter, then the server's purchase
		// with the browser's client_id and session_id: the purchase is the
		// browser session's, with its landing page and source.
		{wire: "gtag", visitor: "m", name: "page_view", page: "https://e2e.test/landing?utm_source=news&utm_medium=email", engaged: true},
		{wire: "mp", visitor: "m", name: "purchase", currency: "USD", value: 40, tx: "T4", items: []shopItem{one(socks)}, engaged: true},
		// Repeated transactions, sent once the first ones are derived: the
		// purchase derived first counts (within a derivation the earliest).
		{wire: "gtag", visitor: "d", name: "purchase", currency: "EUR", value: 32, tx: "T1", items: []shopItem{shirt}, engaged: true},
		{wire: "mp", visitor: "c", name: "purchase", currency: "USD", value: 50, tx: "T2", items: []shopItem{hat}, engaged: true},
		{wire: "gtag", visitor: "d", name: "page_view", engaged: true},
	}
	firstRepeat := slices.IndexFunc(sent, func(e shopEvent) bool { return e.visitor == "d" })
	for i, e := range sent[:firstRepeat] {
		s.sendShopEvent(t, i, e)
	}
	eventually(t, 60*time.Second, "the first purchases derived", func() error {
		if n, err := s.sentEvents(); err != nil || n != firstRepeat {
			return fmt.Errorf("%d events reported (%v), want %d", n, err, firstRepeat)
		}
		return nil
	})
	for i, e := range sent[firstRepeat:] {
		s.sendShopEvent(t, firstRepeat+i, e)
	}
	events := len(sent)
	defer func() {
		if t.Failed() {
			for _, u := range []string{s.agent.ready["agent"] + "/metrics", s.agg.ready["operator"] + "/metrics"} {
				if resp, err := http.Get(u); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					for _, l := range strings.Split(string(b), "\n") {
						if strings.HasPrefix(l, "analytics_") && !strings.HasSuffix(l, " 0") {
							t.Log(l)
						}
					}
				}
			}
		}
	}()
	eventually(t, 60*time.Second, "the shop's events derived", func() error {
		n, err := s.sentEvents()
		if err != nil {
			return err
		}
		if n != events {
			var dead, staged int
			_ = s.store.Pool.QueryRow(ctx, "SELECT (SELECT count(*) FROM dead_letters), (SELECT count(*) FROM staged_events)").Scan(&dead, &staged)
			return fmt.Errorf("%d events reported, want %d (%s; %d dead letters, %d staged rows)", n, events, s.danglingEvents(), dead, staged)
		}
		return nil
	})

	// The oracle: GA4's rules applied to what was sent, in send order.
	rate := func(e shopEvent) float64 {
		if e.currency == "EUR" {
			return eurToUSD
		}
		return 1
	}
	seenTx := map[string]bool{}
	counted := make([]bool, len(sent)) // false: a repeated purchase
	for i, e := range sent {
		counted[i] = !(e.name == "purchase" && e.tx != "" && seenTx[e.tx])
		if e.name == "purchase" && e.tx != "" {
			seenTx[e.tx] = true
		}
	}
	var want = map[string]float64{}
	visitors, active, purchasers, keyVisitors, firstBuyers := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	var purchaseRev, refund float64
	for i, e := range sent {
		visitors[e.visitor] = true
		if e.engaged {
			active[e.visitor] = true
		}
		r := rate(e)
		isKey := (e.name == "purchase" && counted[i]) || e.name == "sign_up"
		if isKey {
			want["keyEvents"]++
			keyVisitors[e.visitor] = true
		}
		if e.name == "sign_up" {
			want["keyEvents:sign_up"]++
		}
		switch e.name {
		case "purchase":
			if !counted[i] {
				continue
			}
			purchaseRev += e.value * r
			want["taxAmount"] += e.tax * r
			want["shippingAmount"] += e.shipping * r
			want["ecommercePurchases"]++
			if e.tx != "" {
				want["transactions"]++
			}
			if !purchasers[e.visitor] {
				firstBuyers[e.visitor] = true
			}
			purchasers[e.visitor] = true
		case "refund":
			refund += e.value * r
		case "add_to_cart":
			want["addToCarts"]++
		case "begin_checkout":
			want["checkouts"]++
		}
	}
	want["purchaseRevenue"] = purchaseRev - refund
	want["totalRevenue"] = purchaseRev - refund
	want["refundAmount"] = refund
	want["averagePurchaseRevenue"] = (purchaseRev - refund) / want["ecommercePurchases"]
	// Rates over active users, as GA4's: engagement time, an engaged
	// session or a first visit. Every visitor here is new, and the write
	// stage derives a first_visit for a new user, so each one is active
	// (the cookieless t.js visitor too, who sends no engagement time).
	for v := range visitors {
		active[v] = true
	}
	want["purchaserRate"] = float64(len(purchasers)) / float64(len(active))
	want["userKeyEventRate"] = float64(len(keyVisitors)) / float64(len(active))
	want["firstTimePurchasers"] = float64(len(firstBuyers))
	eventMetrics := []string{"totalRevenue", "purchaseRevenue", "refundAmount", "shippingAmount", "taxAmount", "transactions",
		"ecommercePurchases", "averagePurchaseRevenue", "purchaserRate", "firstTimePurchasers", "addToCarts", "checkouts",
		"keyEvents", "keyEvents:sign_up", "userKeyEventRate"}
	// eventMetrics[:8] are what the rollups' amounts hold: that report is
	// answered from rollup_days, the other from events.
	for _, part := range [][]string{eventMetrics[:8], eventMetrics[8:]} { // GA4 allows 10 metrics a report
		got := s.reportRows(t, reportBody(nil, part))
		if len(got) != 1 {
			t.Fatalf("event metrics: %d rows", len(got))
		}
		for i, m := range part {
			checkValue(t, m, got[0].metrics[i], want[m])
		}
	}

	// Sessions: one per visitor; a key event makes a session engaged
	// (nothing else here does: under 10 s and one page view at most).
	sess := s.reportRows(t, reportBody(nil, []string{"sessions", "engagedSessions", "sessionKeyEventRate"}))
	checkValue(t, "sessions", sess[0].metrics[0], float64(len(visitors)))
	checkValue(t, "engagedSessions", sess[0].metrics[1], float64(len(keyVisitors)))
	checkValue(t, "sessionKeyEventRate", sess[0].metrics[2], float64(len(keyVisitors))/float64(len(visitors)))

	// Revenue by the session's landing page and source: the server's
	// purchase joined the newsletter visitor's browser session, so its
	// revenue is the session's landing page's and source's; no revenue is
	// lost between the rows.
	for _, g := range []struct{ dim, value string }{{"landingPage", "/landing"}, {"sessionSource", "news"}} {
		rows := s.reportRows(t, reportBody([]string{g.dim}, []string{"totalRevenue"}))
		sum, found := 0.0, false
		for _, r := range rows {
			v, _ := strconv.ParseFloat(r.metrics[0], 64)
			sum += v
			if r.dims[0] == g.value {
				found = true
				checkValue(t, "totalRevenue of "+g.dim+" "+g.value, r.metrics[0], 40)
			}
		}
		if !found {
			t.Errorf("totalRevenue by %s: no row %q (rows %v)", g.dim, g.value, rows)
		}
		if math.Abs(sum-want["totalRevenue"]) > 1e-9 {
			t.Errorf("totalRevenue by %s sums to %v over %v, want %v", g.dim, sum, rows, want["totalRevenue"])
		}
	}

	// Event-scoped ecommerce dimensions.
	byTx := map[string][]float64{}
	byCur := map[string][]float64{}
	for i, e := range sent {
		if e.name != "purchase" && e.name != "refund" || !counted[i] {
			continue
		}
		sign := 1.0
		if e.name == "refund" {
			sign = -1
		}
		cur := e.currency
		if cur == "" {
			cur = "(not set)"
		}
		for _, g := range []struct {
			m   map[string][]float64
			key string
		}{{byTx, e.tx}, {byCur, cur}} {
			v := g.m[g.key]
			if v == nil {
				v = make([]float64, 2)
			}
			v[0] += sign * e.value * rate(e)
			if e.name == "purchase" {
				v[1]++
			}
			g.m[g.key] = v
		}
	}
	checkGrouped(t, s, "transactionId", []string{"purchaseRevenue", "ecommercePurchases"}, byTx)
	delete(byCur, "") // every counted purchase and refund here has a currency or (not set)
	checkGrouped(t, s, "currencyCode", []string{"purchaseRevenue", "ecommercePurchases"}, byCur)

	// Item-scoped: every item dimension with every item metric.
	itemMetrics := []string{"itemRevenue", "itemsPurchased", "itemsViewed", "itemsAddedToCart", "cartToViewRate", "purchaseToViewRate"}
	notSet := func(v string) string {
		if v == "" {
			return "(not set)"
		}
		return v
	}
	for _, dim := range []struct {
		name string
		key  func(shopItem) string
	}{
		{"itemId", func(it shopItem) string { return it.id }},
		{"itemName", func(it shopItem) string { return it.name }},
		{"itemBrand", func(it shopItem) string { return it.brand }},
		{"itemCategory", func(it shopItem) string { return it.cats[0] }},
		{"itemCategory2", func(it shopItem) string { return it.cats[1] }},
		{"itemCategory3", func(it shopItem) string { return it.cats[2] }},
		{"itemCategory4", func(it shopItem) string { return it.cats[3] }},
		{"itemCategory5", func(it shopItem) string { return it.cats[4] }},
		{"itemVariant", func(it shopItem) string { return it.variant }},
		{"itemListName", func(it shopItem) string { return it.list }},
		{"itemPromotionName", func(it shopItem) string { return it.promo }},
	} {
		type acc struct {
			revenue                    float64
			bought, viewed, carted     float64
			viewers, carters, purchase map[string]bool
		}
		groups := map[string]*acc{}
		for i, e := range sent {
			if !counted[i] {
				continue
			}
			for _, it := range e.items {
				k := notSet(dim.key(it))
				a := groups[k]
				if a == nil {
					a = &acc{viewers: map[string]bool{}, carters: map[string]bool{}, purchase: map[string]bool{}}
					groups[k] = a
				}
				amount := it.price * float64(it.qty) * rate(e)
				switch e.name {
				case "purchase":
					a.revenue += amount
					a.bought += float64(it.qty)
					a.purchase[e.visitor] = true
				case "refund":
					a.revenue -= amount
				case "view_item":
					a.viewed += float64(it.qty)
					a.viewers[e.visitor] = true
				case "add_to_cart":
					a.carted += float64(it.qty)
					a.carters[e.visitor] = true
				}
			}
		}
		wantRows := map[string][]float64{}
		for k, a := range groups {
			ratio := func(n map[string]bool) float64 {
				if len(a.viewers) == 0 {
					return 0
				}
				return float64(len(n)) / float64(len(a.viewers))
			}
			wantRows[k] = []float64{a.revenue, a.bought, a.viewed, a.carted, ratio(a.carters), ratio(a.purchase)}
		}
		checkGrouped(t, s, dim.name, itemMetrics, wantRows)
		// Without the rates over visitors the rollups answer (the item
		// kinds' rows): the same numbers.
		rolled := map[string][]float64{}
		for k, w := range wantRows {
			rolled[k] = w[:4]
		}
		checkGrouped(t, s, dim.name, itemMetrics[:4], rolled)
	}

	// GA4's compatibility: item dimensions do not go with event metrics.
	code, body := s.postReport(t, reportBody([]string{"itemName"}, []string{"eventCount"}))
	if code != http.StatusBadRequest || !strings.Contains(body, "incompatible with the item-scoped dimension itemName") {
		t.Fatalf("itemName with eventCount: %d %s; want 400 naming the pair", code, body)
	}

	// The metadata lists every ecommerce name and the site's key events.
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1beta/properties/%d/metadata", s.agg.ready["api"], s.site.ID), nil)
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range append(append(slices.Clone(eventMetrics), itemMetrics...), "keyEvents:purchase", "sessionKeyEventRate",
		"transactionId", "currencyCode", "itemId", "itemName", "itemBrand", "itemCategory", "itemCategory2", "itemCategory3",
		"itemCategory4", "itemCategory5", "itemVariant", "itemListName", "itemPromotionName") {
		if name == "keyEvents:sign_up" {
			continue // listed as keyEvents:sign_up below
		}
		if !strings.Contains(string(md), `"apiName":"`+name+`"`) {
			t.Errorf("metadata lacks %s", name)
		}
	}
	if !strings.Contains(string(md), `"apiName":"keyEvents:sign_up"`) {
		t.Errorf("metadata lacks keyEvents:sign_up")
	}
}

// sendShopEvent sends e on its wire format through the agent and wants a
// 204.
func (s *stack) sendShopEvent(t *testing.T, i int, e shopEvent) {
	t.Helper()
	agent := s.agent.ready["agent"]
	page := fmt.Sprintf("https://e2e.test/shop/%d", i)
	if e.page != "" {
		page = e.page
	}
	var resp *http.Response
	var err error
	switch e.wire {
	case "gtag":
		q := url.Values{"v": {"2"}, "tid": {s.site.MeasurementID}, "cid": {e.visitor + ".1764000000"}, "sid": {"1764000000"},
			"sct": {"1"}, "en": {e.name}, "dl": {page}}
		if e.engaged {
			q.Set("_et", "100")
		}
		if e.currency != "" {
			q.Set("cu", e.currency)
		}
		if e.tx != "" {
			q.Set("ep.transaction_id", e.tx)
		}
		for k, v := range map[string]float64{"value": e.value, "tax": e.tax, "shipping": e.shipping} {
			if v != 0 {
				q.Set("epn."+k, strconv.FormatFloat(v, 'f', -1, 64))
			}
		}
		for j, it := range e.items {
			q.Set("pr"+strconv.Itoa(j+1), it.gtag())
		}
		req, _ := http.NewRequest(http.MethodGet, agent+"/g/collect?"+q.Encode(), nil)
		req.Header.Set("User-Agent", browserUA) // Go's own would be filtered as a bot
		resp, err = http.DefaultClient.Do(req)
	case "mp", "tjs":
		params := map[string]any{}
		if e.currency != "" {
			params["currency"] = e.currency
		}
		if e.tx != "" {
			params["transaction_id"] = e.tx
		}
		for k, v := range map[string]float64{"value": e.value, "tax": e.tax, "shipping": e.shipping} {
			if v != 0 {
				params[k] = v
			}
		}
		if len(e.items) > 0 {
			var items []map[string]any
			for _, it := range e.items {
				items = append(items, it.json())
			}
			params["items"] = items
		}
		if e.wire == "tjs" {
			// What avila('purchase', {...}) posts.
			b, _ := json.Marshal(map[string]any{"m": s.site.MeasurementID, "n": e.name, "u": page, "r": "", "t": "Shop",
				"l": "en-US", "s": "1920x1080", "p": params})
			req, _ := http.NewRequest(http.MethodPost, agent+"/api/event", bytes.NewReader(b))
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Set("User-Agent", browserUA)
			resp, err = http.DefaultClient.Do(req)
			break
		}
		params["page_location"] = page
		params["session_id"] = "1764000000"
		if e.engaged {
			params["engagement_time_msec"] = 100
		}
		b, _ := json.Marshal(map[string]any{"client_id": e.visitor + ".1764000000", "events": []any{map[string]any{"name": e.name, "params": params}}})
		q := url.Values{"measurement_id": {s.site.MeasurementID}, "api_secret": {s.site.APISecret}}
		resp, err = http.Post(agent+"/mp/collect?"+q.Encode(), "application/json", bytes.NewReader(b))
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Avila-Validation") != "" {
		t.Fatalf("event %d (%s %s): %d %s %s", i, e.wire, e.name, resp.StatusCode, b, resp.Header.Get("Avila-Validation"))
	}
	time.Sleep(2 * time.Millisecond) // distinct event times, in send order
}

// reportBody is a runReport of today by dims with metrics.
func reportBody(dims, metrics []string) string {
	var d, m []string
	for _, x := range dims {
		d = append(d, fmt.Sprintf(`{"name":%q}`, x))
	}
	for _, x := range metrics {
		m = append(m, fmt.Sprintf(`{"name":%q}`, x))
	}
	return `{"dateRanges":[{"startDate":"yesterday","endDate":"today"}],"dimensions":[` + strings.Join(d, ",") +
		`],"metrics":[` + strings.Join(m, ",") + `],"keepEmptyRows":true}`
}

func (s *stack) postReport(t *testing.T, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/v1beta/properties/%d:runReport", s.agg.ready["api"], s.site.ID),
		strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type reportRow struct {
	dims    []string
	metrics []string
}

func (s *stack) reportRows(t *testing.T, body string) []reportRow {
	t.Helper()
	code, b := s.postReport(t, body)
	if code != http.StatusOK {
		t.Fatalf("runReport %s: %d %s", body, code, b)
	}
	var rep struct {
		Rows []struct {
			DimensionValues []struct{ Value string } `json:"dimensionValues"`
			MetricValues    []struct{ Value string } `json:"metricValues"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(b), &rep); err != nil {
		t.Fatal(err)
	}
	var out []reportRow
	for _, r := range rep.Rows {
		var row reportRow
		for _, v := range r.DimensionValues {
			row.dims = append(row.dims, v.Value)
		}
		for _, v := range r.MetricValues {
			row.metrics = append(row.metrics, v.Value)
		}
		out = append(out, row)
	}
	return out
}

func checkValue(t *testing.T, what, got string, want float64) {
	t.Helper()
	f, err := strconv.ParseFloat(got, 64)
	if err != nil || math.Abs(f-want) > 1e-9 {
		t.Errorf("%s = %q, want %v", what, got, want)
	}
}

// checkGrouped runs a report by dim with metrics and compares it with want
// (by dimension value, the metrics in order).
func checkGrouped(t *testing.T, s *stack, dim string, metrics []string, want map[string][]float64) {
	t.Helper()
	rows := s.reportRows(t, strings.Replace(reportBody([]string{dim}, metrics), `,"keepEmptyRows":true`, "", 1))
	got := map[string][]string{}
	for _, r := range rows {
		got[r.dims[0]] = r.metrics
	}
	if len(got) != len(want) {
		t.Errorf("%s: rows %v, want %v", dim, got, want)
		return
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: no row %q (rows %v)", dim, k, got)
			continue
		}
		for i, m := range metrics {
			checkValue(t, dim+"="+k+" "+m, g[i], w[i])
		}
	}
}
