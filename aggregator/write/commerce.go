package write

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// GA4's ecommerce event names the write stage treats specially.
const (
	purchaseName = "purchase"
	refundName   = "refund"
)

// KeyEvents is a site's key event names (sites.key_events; GA4's
// conversions). The one rule of what a key event is: session rules
// (engaged sessions) and reports count an event as a key event when Has
// says so, and the derivation marks it with protocol.FlagKeyEvent.
type KeyEvents []string

// DefaultKeyEvents are the key events of a new site, as in GA4: purchase.
var DefaultKeyEvents = KeyEvents{purchaseName}

// Has reports whether an event named name is a key event.
func (k KeyEvents) Has(name string) bool { return slices.Contains(k, name) }

// IsKeyEvent reports whether e counts as a key event of a site with key
// event names keys: its name is one, and it is not a purchase repeating a
// transaction id seen before (duplicate reports whether it is).
func IsKeyEvent(keys KeyEvents, e *protocol.Event, duplicate bool) bool {
	return keys.Has(e.Name) && !duplicate
}

// commercePlan is what a derivation decided about its events' ecommerce
// data before writing them (prepareCommerce).
type commercePlan struct {
	duplicate []bool  // by event: a purchase whose transaction id was seen before
	tx        []int32 // by event: dims id of its transaction id
	keys      KeyEvents
}

// prepareCommerce marks the events' key events (before sessions count
// them) and finds repeated purchases: GA4 deduplicates purchase events
// with the same transaction id, so the purchase of a transaction id that
// is derived first counts (within one derivation the earliest in event
// time) and later ones keep their event but lose their revenue, items and
// key event mark. Batches may reach the aggregator out of order, so of two
// purchases in different batches the one derived first wins, as GA4 keeps
// the one it processed first. An event without a transaction id is never
// a duplicate.
// The plan is made in p, over what it held.
func prepareCommerce(ctx context.Context, store *postgres.Store, d *postgres.DeriveTx, events []protocol.Event, p *commercePlan) (*commercePlan, error) {
	p.keys = KeyEvents(d.KeyEvents())
	p.duplicate, p.tx = grownTo(p.duplicate, len(events)), grownTo(p.tx, len(events))
	clear(p.duplicate)
	clear(p.tx)
	var idx []int
	for i := range events {
		if events[i].TransactionID != "" {
			idx = append(idx, i)
		}
	}
	if len(idx) > 0 {
		kinds := make([]postgres.DimKind, len(idx))
		values := make([]string, len(idx))
		for j, i := range idx {
			kinds[j], values[j] = postgres.DimTransaction, events[i].TransactionID
		}
		ids, err := store.ResolveStrings(ctx, d.Site(), kinds, values)
		if err != nil {
			return nil, fmt.Errorf("write: derive site %d: %w", d.Site(), err)
		}
		var purchases []int32
		for j, i := range idx {
			p.tx[i] = ids[j]
			if events[i].Name == purchaseName {
				purchases = append(purchases, ids[j])
			}
		}
		if len(purchases) > 0 {
			name, err := store.ResolveStrings(ctx, d.Site(), []postgres.DimKind{postgres.DimEventName}, []string{purchaseName})
			if err != nil {
				return nil, fmt.Errorf("write: derive site %d: %w", d.Site(), err)
			}
			seen, err := d.Transactions(ctx, name[0], purchases)
			if err != nil {
				return nil, err
			}
			byTime := slices.Clone(idx)
			sort.SliceStable(byTime, func(a, b int) bool { return events[byTime[a]].TimeMicros < events[byTime[b]].TimeMicros })
			for _, i := range byTime {
				if events[i].Name != purchaseName {
					continue
				}
				p.duplicate[i] = seen[p.tx[i]]
				seen[p.tx[i]] = true
			}
		}
	}
	for i := range events {
		e := &events[i]
		switch {
		case p.duplicate[i]:
			e.Flags &^= protocol.FlagKeyEvent
		case IsKeyEvent(p.keys, e, false):
			e.Flags |= protocol.FlagKeyEvent
		}
	}
	return p, nil
}

// hasCommerce reports whether event i gets an event_commerce row: a
// purchase or refund, or any event with ecommerce data, unless it is a
// duplicate purchase.
func (p *commercePlan) hasCommerce(e *protocol.Event, i int) bool {
	return !p.duplicate[i] && (e.Name == purchaseName || e.Name == refundName || e.Commerce())
}

// writeCommerce writes the events' event_commerce rows (setting their rows'
// Commerce ids and rollup amounts) and item rows, which it returns for
// the rollups. Amounts in another currency than the site's are converted
// with the operator's rate, or kept as sent when there is none. rows are
// the events' rows with sessions assigned.
func (p *commercePlan) write(ctx context.Context, store *postgres.Store, d *postgres.DeriveTx, events []protocol.Event, rows []postgres.EventRow) ([]postgres.ItemRow, error) {
	var idx []int
	for i := range events {
		if p.hasCommerce(&events[i], i) {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return nil, nil
	}
	site := d.Site()
	rates, err := d.Rates(ctx)
	if err != nil {
		return nil, err
	}
	rate := func(e *protocol.Event) float64 {
		if r, ok := rates[e.Currency]; ok && e.Currency != "" && e.Currency != d.Currency() {
			return r
		}
		return 1
	}
	// First purchases: the visitor's earliest stored purchase.
	var visitors []int64
	for _, i := range idx {
		if events[i].Name == purchaseName {
			visitors = append(visitors, int64(events[i].Visitor))
		}
	}
	bought, err := d.Purchasers(ctx, visitors)
	if err != nil {
		return nil, err
	}
	byTime := slices.Clone(idx)
	sort.SliceStable(byTime, func(a, b int) bool { return events[byTime[a]].TimeMicros < events[byTime[b]].TimeMicros })
	first := make(map[int]bool)
	for _, i := range byTime {
		if v := int64(events[i].Visitor); events[i].Name == purchaseName && !bought[v] {
			bought[v] = true
			first[i] = true
		}
	}
	kinds := make([]postgres.DimKind, len(idx))
	values := make([]string, len(idx))
	for j, i := range idx {
		kinds[j], values[j] = postgres.DimCurrency, events[i].Currency
	}
	currencies, err := store.ResolveStrings(ctx, site, kinds, values)
	if err != nil {
		return nil, fmt.Errorf("write: derive site %d: %w", site, err)
	}
	crows := make([]postgres.CommerceRow, len(idx))
	for j, i := range idx {
		e, r := &events[i], rate(&events[i])
		crows[j] = postgres.CommerceRow{TS: time.UnixMicro(e.TimeMicros).UTC(), Visitor: int64(e.Visitor),
			Revenue: e.Value * r, Tax: e.Tax * r, Shipping: e.Shipping * r, Name: rows[i].Dims[postgres.DimEventName-1],
			Transaction: p.tx[i], Currency: currencies[j]}
		if first[i] {
			crows[j].Flags |= postgres.CommerceFirstPurchase
		}
	}
	ids, err := d.AddCommerce(ctx, crows)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		rows[i].Commerce = ids[j]
		rows[i].Amounts = postgres.EventAmounts(events[i].Name, &crows[j])
	}
	return p.writeItems(ctx, store, d, events, rows, idx, rate)
}

// writeItems writes the item rows of the events idx and returns them.
func (p *commercePlan) writeItems(ctx context.Context, store *postgres.Store, d *postgres.DeriveTx, events []protocol.Event,
	rows []postgres.EventRow, idx []int, rate func(*protocol.Event) float64) ([]postgres.ItemRow, error) {
	var keys []postgres.ItemKey
	var kinds []postgres.DimKind
	var values []string
	for _, i := range idx {
		for k := range events[i].Items {
			it := &events[i].Items[k]
			keys = append(keys, postgres.ItemKey{it.ID, it.Name, it.Brand, it.Category, it.Category2, it.Category3,
				it.Category4, it.Category5, it.Variant})
			kinds = append(kinds, postgres.DimItemListName, postgres.DimItemPromotion)
			values = append(values, it.ListName, it.PromotionName)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	site := d.Site()
	profiles, itemDims, err := store.ResolveItemDims(ctx, site, keys)
	if err != nil {
		return nil, fmt.Errorf("write: derive site %d: %w", site, err)
	}
	dims, err := store.ResolveStrings(ctx, site, kinds, values)
	if err != nil {
		return nil, fmt.Errorf("write: derive site %d: %w", site, err)
	}
	items := make([]postgres.ItemRow, 0, len(keys))
	n := 0
	for _, i := range idx {
		e, row, r := &events[i], &rows[i], rate(&events[i])
		for k := range e.Items {
			it := &e.Items[k]
			revenue := it.Price * float64(it.Units()) * r
			items = append(items, postgres.ItemRow{TS: row.TS, Visitor: row.Visitor, Session: row.Session,
				Revenue: revenue, Site: row.Site, Name: row.Dims[postgres.DimEventName-1],
				Referrer: row.Dims[postgres.DimReferrer-1], Content: row.Content, Client: row.Client, Traffic: row.Traffic,
				Commerce: row.Commerce, Profile: profiles[n], List: dims[2*n], Promotion: dims[2*n+1],
				Quantity: int32(it.Units()), Flags: row.Flags, Dims: itemDims[n],
				Amounts: postgres.ItemAmounts(e.Name, revenue, int32(it.Units()))})
			n++
		}
	}
	if err := d.CopyItems(ctx, items); err != nil {
		return nil, err
	}
	return items, nil
}
