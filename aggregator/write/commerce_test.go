package write

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// The derivation writes one event_commerce row per ecommerce event and one
// item row per item, converts with the operator's rate, drops repeated
// purchases (also across derivations), marks key events by the site's list
// and the visitor's first purchase.
func TestDeriveCommerce(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetKeyEvents(ctx, site.ID, []string{"purchase", "sign_up"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCurrencyRate(ctx, postgres.CurrencyRate{Currency: "EUR", Reporting: "USD", Rate: 2}); err != nil {
		t.Fatal(err)
	}
	at := func(min int) int64 { return day0.Add(time.Duration(min) * time.Minute).UnixMicro() }
	ev := func(min int, visitor uint64, name string) protocol.Event {
		return protocol.Event{Site: site.ID, TimeMicros: at(min), Name: name, Visitor: visitor, Host: "shop.test", Path: "/"}
	}
	p1 := ev(1, 1, "purchase")
	p1.Currency, p1.Value, p1.Tax, p1.Shipping, p1.TransactionID = "EUR", 10, 1, 2, "T1"
	p1.Items = []protocol.Item{{ID: "A", Name: "Alpha", Price: 3, Quantity: 2}, {ID: "B", Price: 4, ListName: "Home"}}
	dupSame := ev(2, 2, "purchase") // same transaction id in the same batch, later: a duplicate
	dupSame.Value, dupSame.TransactionID, dupSame.Items = 99, "T1", []protocol.Item{{ID: "A", Price: 99}}
	signUp := ev(3, 3, "sign_up")
	view := ev(4, 3, "view_item")
	view.Items = []protocol.Item{{ID: "A", Name: "Alpha"}}
	if _, err := s.WriteBatch(ctx, "edge", 1, []protocol.Event{dupSame, p1, signUp, view}, nil); err != nil {
		t.Fatal(err)
	}
	p2 := ev(10, 1, "purchase") // the same visitor's second purchase, no currency: as sent
	p2.Value, p2.TransactionID = 5, "T2"
	dupLater := ev(11, 4, "purchase") // T1 again, in a later derivation
	dupLater.Value, dupLater.TransactionID = 10, "T1"
	refund := ev(12, 1, "refund")
	refund.Currency, refund.Value, refund.TransactionID = "EUR", 3, "T1"
	if _, err := s.WriteBatch(ctx, "edge", 2, []protocol.Event{p2, dupLater, refund}, nil); err != nil {
		t.Fatal(err)
	}

	var revenue, tax, shipping float64
	var first int
	if err := s.Pool.QueryRow(ctx, `SELECT sum(c.revenue) FILTER (WHERE d.value = 'purchase'), sum(c.tax), sum(c.shipping),
			count(*) FILTER (WHERE c.flags & 1 <> 0)::int
		FROM event_commerce c JOIN dims d ON d.id = c.name_id WHERE c.site_id = $1`, int32(site.ID)).Scan(&revenue, &tax, &shipping, &first); err != nil {
		t.Fatal(err)
	}
	if revenue != 10*2+5 || tax != 2 || shipping != 4 || first != 1 {
		t.Fatalf("purchase revenue %v tax %v shipping %v first purchases %d; want 25, 2, 4, 1", revenue, tax, shipping, first)
	}
	if n := count(t, s, "SELECT count(*) FROM event_commerce WHERE site_id = $1", int32(site.ID)); n != 4 {
		t.Fatalf("%d commerce rows, want 4 (two purchases, a refund and the view with items; duplicates have none)", n)
	}
	if n := count(t, s, `SELECT count(*) FROM events e JOIN dims d ON d.id = e.name_id
		WHERE e.site_id = $1 AND d.value = 'purchase' AND e.commerce_id = 0`, int32(site.ID)); n != 2 {
		t.Fatalf("%d purchase events without commerce row, want the 2 duplicates", n)
	}
	// Key events: the two counted purchases and the sign-up.
	if n := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1 AND flags & $2 <> 0", int32(site.ID), int16(protocol.FlagKeyEvent)); n != 3 {
		t.Fatalf("%d key events, want 3", n)
	}
	if n := count(t, s, "SELECT sum(key_events)::int FROM sessions WHERE site_id = $1", int32(site.ID)); n != 3 {
		t.Fatalf("sessions count %d key events, want 3", n)
	}
	var itemRevenue float64
	var units, rows int
	if err := s.Pool.QueryRow(ctx, `SELECT sum(i.revenue) FILTER (WHERE d.value = 'purchase'), sum(i.quantity)::int, count(*)::int
		FROM event_items i JOIN dims d ON d.id = i.name_id WHERE i.site_id = $1`, int32(site.ID)).Scan(&itemRevenue, &units, &rows); err != nil {
		t.Fatal(err)
	}
	if math.Abs(itemRevenue-(3*2+4)*2) > 1e-9 || units != 4 || rows != 3 {
		t.Fatalf("item revenue %v, units %d, rows %d; want 20, 4, 3", itemRevenue, units, rows)
	}
	if n := count(t, s, `SELECT count(*) FROM event_items i JOIN item_profiles p ON p.id = i.item_profile_id
		JOIN dims d ON d.id = p.item_name_id WHERE i.site_id = $1 AND d.value = 'Alpha'`, int32(site.ID)); n != 2 {
		t.Fatalf("%d item rows named Alpha, want 2 (one profile shared)", n)
	}
	items, commerce, err := s.ItemRowsOf(ctx, site.ID, []int64{1}, true)
	if err != nil || items != 2 || commerce != 3 {
		t.Fatalf("erasure of visitor 1: %d items, %d commerce rows, %v; want 2 and 3", items, commerce, err)
	}
}
