package collect

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
)

// gtag.js's purchase: cu, ep.transaction_id, epn.value/tax/shipping and
// item strings pr1…prN with GA4's two-letter keys, in index order.
func TestGtagPurchaseItems(t *testing.T) {
	r := newRig(t)
	q := url.Values{
		"v": {"2"}, "tid": {testTID}, "cid": {"1.2"}, "en": {"purchase"}, "dl": {"https://shop.test/thanks"}, "cu": {"eur"},
		"ep.transaction_id": {"T-100"}, "epn.value": {"42.5"}, "epn.tax": {"3.1"}, "epn.shipping": {"4"}, "ep.coupon": {"XMAS"},
		"pr2": {"idSKU_2~nmSocks~qt3~pr2.5"},
		"pr1": {"idSKU_1~nmShirt~brAvila~caApparel~c2Men~c3Shirts~c4Summer~c5Sale~vaRed~pr20~qt1~ds1.5~cpSPRING~liL1~lnSearch results~pnSummer sale~afOnline~lp1~k0color~v0red"},
	}
	w := r.do(http.MethodGet, q.Encode(), "", nil, nil)
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q, want 204", w.Code, w.Body)
	}
	evs := r.q.events(t)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	want := protocol.Event{Currency: "EUR", Value: 42.5, Tax: 3.1, Shipping: 4, TransactionID: "T-100",
		Params: map[string]string{"coupon": "XMAS"},
		Items: []protocol.Item{
			{ID: "SKU_1", Name: "Shirt", Brand: "Avila", Category: "Apparel", Category2: "Men", Category3: "Shirts", Category4: "Summer",
				Category5: "Sale", Variant: "Red", Price: 20, Quantity: 1, Discount: 1.5, Coupon: "SPRING", ListID: "L1",
				ListName: "Search results", PromotionName: "Summer sale", Affiliation: "Online"},
			{ID: "SKU_2", Name: "Socks", Quantity: 3, Price: 2.5},
		}}
	got := protocol.Event{Currency: e.Currency, Value: e.Value, Tax: e.Tax, Shipping: e.Shipping, TransactionID: e.TransactionID,
		Params: e.Params, NumParams: e.NumParams, Items: e.Items}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("purchase (-want +got):\n%s", d)
	}
}

func TestGtagCommerceRefusals(t *testing.T) {
	r := newRig(t)
	base := "v=2&tid=" + testTID + "&cid=1.2&en=purchase&dl=https%3A%2F%2Fshop.test%2F"
	f := func(extra, wantInBody string) {
		t.Helper()
		w := r.do(http.MethodGet, base+extra, "", nil, nil)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), wantInBody) {
			t.Fatalf("%s: status %d %q, want 400 with %q", extra, w.Code, w.Body, wantInBody)
		}
	}
	f("&cu=EURO", "rule currency_code")
	f("&ep.currency=12", "rule currency_code")
	f("&pr201=idX", "rule item_count")
	f("&pr1=nmShirt~prabc", "rule item_number")
	f("&pr1=idX~qt1.5", "rule item_number")
	f("&pr1=idX~qt-1", "rule item_number")
	f("&pr1=brOnly", "rule item_id_required")
	f("&pr1=nm"+strings.Repeat("x", 101), "rule item_value_length")
	f("&ep.value=lots", "rule param_number")
}

// The Measurement Protocol's items list and ecommerce parameters; a bad
// item drops its event with GA4's validation code, as GA4 does.
func TestMPItems(t *testing.T) {
	r := newMPRig(t)
	body := `{"client_id":"1.2","events":[{"name":"purchase","params":{"currency":"usd","value":30,"transaction_id":"T-9",
		"tax":1.25,"shipping":2,"items":[{"item_id":"A","item_name":"Alpha","item_category":"Cat","price":"10","quantity":3,"index":0,"color":"red"},
		{"item_name":"Beta","item_list_name":"Home","promotion_name":"Promo","price":0,"quantity":"2"}]}}]}`
	w := r.mp("/mp/collect", mpQuery, []byte(body))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	evs := r.q.events(t)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	if e.Currency != "USD" || e.Value != 30 || e.Tax != 1.25 || e.Shipping != 2 || e.TransactionID != "T-9" || e.Params != nil || e.NumParams != nil {
		t.Fatalf("event %+v", e)
	}
	wantItems := []protocol.Item{{ID: "A", Name: "Alpha", Category: "Cat", Price: 10, Quantity: 3},
		{Name: "Beta", ListName: "Home", PromotionName: "Promo", Quantity: 2}}
	if d := cmp.Diff(wantItems, e.Items); d != "" {
		t.Fatalf("items (-want +got):\n%s", d)
	}

	for _, c := range []struct{ items, code string }{
		{`[{"price":1}]`, "VALUE_REQUIRED"},
		{`[{"item_id":"A","quantity":-2}]`, "VALUE_INVALID"},
		{`{"item_id":"A"}`, "VALUE_INVALID"},
		{`[{"item_id":"` + strings.Repeat("i", 101) + `"}]`, "VALUE_OUT_OF_BOUNDS"},
		{`[` + strings.TrimSuffix(strings.Repeat(`{"item_id":"A"},`, 201), ",") + `]`, "EXCEEDED_MAX_ENTITIES"},
	} {
		body := fmt.Sprintf(`{"client_id":"1.2","events":[{"name":"purchase","params":{"items":%s}}]}`, c.items)
		w := r.mp("/debug/mp/collect", mpQuery, []byte(body))
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), c.code) || !strings.Contains(w.Body.String(), "items") {
			t.Fatalf("items %.60s: %d %s, want a validation message %s", c.items, w.Code, w.Body, c.code)
		}
	}
}

// t.js: avila('purchase', {...}) posts the items list in p.
func TestTrackerPurchase(t *testing.T) {
	h, err := ParseTrackerEvent([]byte(`{"m":"G-X","n":"purchase","u":"https://shop.test/","p":{"transaction_id":"T-7",
		"value":"19.90","currency":"CHF","items":[{"item_id":"S","item_brand":"B","price":9.95,"quantity":2}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := commerce{Currency: "CHF", Value: 19.9, TransactionID: "T-7", Items: []protocol.Item{{ID: "S", Brand: "B", Price: 9.95, Quantity: 2}}}
	if d := cmp.Diff(want, h.commerce); d != "" || h.Params != nil || h.NumParams != nil {
		t.Fatalf("commerce (-want +got):\n%s\nparams %v %v", d, h.Params, h.NumParams)
	}
	if _, err := ParseTrackerEvent([]byte(`{"m":"G-X","n":"purchase","p":{"items":[{"item_id":"S","price":"x"}]}}`)); err == nil ||
		!strings.Contains(err.Error(), "item_number") {
		t.Fatalf("bad price: %v, want rule item_number", err)
	}
}

// isCommerceParam names every parameter takeCommerce takes out of a hit's
// parameters (and may name more): a gtag.js hit whose parameters have none
// of those names
// skips the look-ups, so a name takeCommerce read but isCommerceParam did
// not know would stay a plain parameter.
func TestIsCommerceParamNamesWhatTakeCommerceTakes(t *testing.T) {
	names := []string{"currency", "transaction_id", "value", "tax", "shipping", "coupon", "affiliation",
		"items", "price", "quantity", "discount", "payment_type", "shipping_tier", "item_list_id", "percent_scrolled"}
	for _, numeric := range []bool{false, true} {
		h := Hit{Params: map[string]string{}, NumParams: map[string]float64{}}
		for _, n := range names {
			switch {
			case n == "currency" && !numeric:
				h.Params[n] = "EUR"
			case numeric:
				h.NumParams[n] = 1
			default:
				h.Params[n] = "1"
			}
		}
		if err := takeCommerce(&h, "ep."); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			_, kept := h.Params[n]
			if _, ok := h.NumParams[n]; ok {
				kept = true
			}
			if !kept && !isCommerceParam(n) {
				t.Errorf("numeric %v: takeCommerce took %s, which isCommerceParam does not name", numeric, n)
			}
		}
	}
}

// A gtag.js hit reads its ecommerce parameters whether or not the line
// or the query string holds them, and one without any keeps its own.
func TestGtagCommerceParamsEitherPlace(t *testing.T) {
	f := func(query, line string, want commerce, wantParams map[string]string, wantNum map[string]float64) {
		t.Helper()
		hits, err := ParseGtag(query, []byte(line))
		if err != nil {
			t.Fatal(err)
		}
		h := hits[0]
		if diff := cmp.Diff(want, h.commerce); diff != "" {
			t.Errorf("%s + %s: commerce (-want +got):\n%s", query, line, diff)
		}
		if !cmp.Equal(wantParams, h.Params, cmp.Comparer(func(a, b map[string]string) bool { return fmt.Sprint(a) == fmt.Sprint(b) })) ||
			!cmp.Equal(wantNum, h.NumParams, cmp.Comparer(func(a, b map[string]float64) bool { return fmt.Sprint(a) == fmt.Sprint(b) })) {
			t.Errorf("%s + %s: params %v %v, want %v %v", query, line, h.Params, h.NumParams, wantParams, wantNum)
		}
	}
	q := "v=2&tid=G-X&cid=1.2&en=purchase"
	f(q, "ep.link=a&epn.value=12.5&cu=eur", commerce{Currency: "EUR", Value: 12.5}, map[string]string{"link": "a"}, nil)
	f(q+"&epn.tax=2&ep.transaction_id=T1", "ep.link=a", commerce{Tax: 2, TransactionID: "T1"}, map[string]string{"link": "a"}, nil)
	f(q+"&ep.shipping=3", "epn.percent=90", commerce{Shipping: 3}, nil, map[string]float64{"percent": 90})
	f(q, "ep.link=a&epn.percent=90", commerce{}, map[string]string{"link": "a"}, map[string]float64{"percent": 90})
}
