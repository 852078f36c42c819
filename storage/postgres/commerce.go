package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Ecommerce tables (migration 015): event_commerce (one row per ecommerce
// event, reached by events.commerce_id), event_items (item-scoped rows),
// item_profiles, currency_rates and sites.key_events. The rules that fill
// them (deduplication, conversion, first purchases, key events) are the
// write stage's (aggregator/write); this file stores what it decided.

// Dims kinds of ecommerce strings (see DimKind: never renumber).
const (
	DimTransaction   DimKind = 40 // transaction_id
	DimCurrency      DimKind = 41 // currency as sent
	DimItemID        DimKind = 42
	DimItemName      DimKind = 43
	DimItemBrand     DimKind = 44
	DimItemCategory  DimKind = 45
	DimItemCategory2 DimKind = 46
	DimItemCategory3 DimKind = 47
	DimItemCategory4 DimKind = 48
	DimItemCategory5 DimKind = 49
	DimItemVariant   DimKind = 50
	DimItemListName  DimKind = 51
	DimItemPromotion DimKind = 52
)

// ItemProfile holds an item's own dimensions; event_items rows point at it.
var ItemProfile = &Profile{Table: "item_profiles", Column: "item_profile_id",
	Kinds: []DimKind{DimItemID, DimItemName, DimItemBrand, DimItemCategory, DimItemCategory2, DimItemCategory3,
		DimItemCategory4, DimItemCategory5, DimItemVariant}}

// CommerceProfile is event_commerce seen as a profile of events and
// event_items rows (their commerce_id): the dims ids of the transaction and
// currency, beside the amounts. Readers join it; ResolveEventsTo does not
// write it.
var CommerceProfile = &Profile{Table: "event_commerce", Column: "commerce_id",
	Kinds: []DimKind{DimTransaction, DimCurrency}}

func init() {
	for k, c := range map[DimKind]string{
		DimTransaction: "transaction_id", DimCurrency: "currency_id",
		DimItemID: "sku_id", DimItemName: "item_name_id", DimItemBrand: "brand_id", DimItemCategory: "category_id",
		DimItemCategory2: "category2_id", DimItemCategory3: "category3_id", DimItemCategory4: "category4_id",
		DimItemCategory5: "category5_id", DimItemVariant: "variant_id",
		DimItemListName: "list_id", DimItemPromotion: "promotion_id",
	} {
		DimColumns[k] = c
	}
}

// CommerceFirstPurchase flags (event_commerce.flags) a visitor's first
// purchase.
const CommerceFirstPurchase int16 = 1

// CommerceRow is one event_commerce row.
type CommerceRow struct {
	TS                     time.Time
	Visitor                int64
	Revenue, Tax, Shipping float64
	Name                   int32 // dims id of the event name
	Transaction, Currency  int32 // dims ids; 0: none
	Flags                  int16
}

// ItemRow is one event_items row.
type ItemRow struct {
	TS                   time.Time
	Visitor, Session     int64
	Revenue              float64
	Site, Name, Referrer int32
	Content, Client      int32
	Traffic, Commerce    int32
	Profile              int32 // item_profiles id
	List, Promotion      int32 // dims ids
	Quantity             int32
	Flags                int16
	// Not columns, for rollups: the item profile's dims ids
	// (ItemProfile.Kinds order) and the row's amounts.
	Dims    [9]int32
	Amounts Amounts
}

// rollupDim is the row's dims id of item kind k (ItemRollupKinds).
func (r *ItemRow) rollupDim(k DimKind) int32 {
	switch k {
	case DimItemListName:
		return r.List
	case DimItemPromotion:
		return r.Promotion
	}
	for i, pk := range ItemProfile.Kinds {
		if pk == k {
			return r.Dims[i]
		}
	}
	return 0
}

var itemColumns = []string{"ts", "visitor_id", "session_id", "revenue", "site_id", "name_id", "referrer_id", "content_id",
	"client_id", "traffic_id", "commerce_id", "item_profile_id", "list_id", "promotion_id", "quantity", "flags"}

// ItemKey is an item's dimension strings in ItemProfile.Kinds order.
type ItemKey [9]string

// ResolveItems returns the item_profiles id of each key of site (parallel),
// inserting the strings and profiles not known yet, in their own short
// transactions like ResolveEventsTo.
func (s *Store) ResolveItems(ctx context.Context, site uint32, keys []ItemKey) ([]int32, error) {
	out, _, err := s.ResolveItemDims(ctx, site, keys)
	return out, err
}

// ResolveItemDims is ResolveItems, also returning each key's dims ids
// (ItemProfile.Kinds order).
func (s *Store) ResolveItemDims(ctx context.Context, site uint32, keys []ItemKey) ([]int32, [][9]int32, error) {
	kinds := make([]DimKind, 0, len(keys)*len(ItemProfile.Kinds))
	values := make([]string, 0, cap(kinds))
	for _, k := range keys {
		for j, kind := range ItemProfile.Kinds {
			kinds, values = append(kinds, kind), append(values, k[j])
		}
	}
	ids, err := s.ResolveStrings(ctx, site, kinds, values)
	if err != nil {
		return nil, nil, err
	}
	pkeys := make([]profileKey, len(keys))
	dims := make([][9]int32, len(keys))
	n := len(ItemProfile.Kinds)
	for i := range keys {
		pkeys[i].site = int32(site)
		copy(pkeys[i].ids[:n], ids[i*n:(i+1)*n])
		copy(dims[i][:], ids[i*n:(i+1)*n])
	}
	out := make([]int32, len(keys))
	if err := s.profileIDs(ctx, ItemProfile, s.items, pkeys, out); err != nil {
		return nil, nil, err
	}
	return out, dims, nil
}

// ResolveStrings returns the dims id of each (kinds[i], values[i]) of site;
// "" is 0. Strings not known yet are inserted in their own short
// transaction (resolveDims).
func (s *Store) ResolveStrings(ctx context.Context, site uint32, kinds []DimKind, values []string) ([]int32, error) {
	out := make([]int32, len(values))
	r := &dimResolver{ids: map[dimKey]int32{}}
	seen := map[dimKey]bool{}
	s.dims.mu.Lock()
	for i, v := range values {
		if v == "" {
			continue
		}
		k := dimKey{site, kinds[i], v}
		if id, ok := s.dims.get(k); ok {
			out[i] = id
			continue
		}
		if !seen[k] {
			seen[k] = true
			r.missing = append(r.missing, k)
		}
	}
	s.dims.mu.Unlock()
	if err := s.resolveDims(ctx, r); err != nil {
		return nil, err
	}
	for i, v := range values {
		if id, ok := r.ids[dimKey{site, kinds[i], v}]; ok && v != "" {
			out[i] = id
		}
	}
	return out, nil
}

// KeyEvents are the event names the site counts as key events.
func (d *DeriveTx) KeyEvents() []string { return d.keyEvents }

// Currency is the site's reporting currency (ISO 4217).
func (d *DeriveTx) Currency() string { return d.currency }

// Rates returns the operator's exchange rates into the site's reporting
// currency, by the currency converted from.
func (d *DeriveTx) Rates(ctx context.Context) (map[string]float64, error) {
	rows, err := d.tx.Query(ctx, "SELECT currency, rate FROM currency_rates WHERE reporting = $1", d.currency)
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: read currency rates: %w", d.site, err)
	}
	out := map[string]float64{}
	var cur string
	var rate float64
	_, err = pgx.ForEachRow(rows, []any{&cur, &rate}, func() error { out[cur] = rate; return nil })
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: read currency rates: %w", d.site, err)
	}
	return out, nil
}

// Transactions returns which of the transaction ids (dims ids) a stored
// event named name (dims id) of the site already carries.
func (d *DeriveTx) Transactions(ctx context.Context, name int32, ids []int32) (map[int32]bool, error) {
	out := map[int32]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := d.tx.Query(ctx, `SELECT DISTINCT transaction_id FROM event_commerce
		WHERE site_id = $1 AND transaction_id = ANY($2) AND name_id = $3`, int32(d.site), ids, name)
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: read transactions: %w", d.site, err)
	}
	var id int32
	if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { out[id] = true; return nil }); err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: read transactions: %w", d.site, err)
	}
	return out, nil
}

// Purchasers returns which of the visitors made a purchase stored before
// (a row flagged CommerceFirstPurchase).
func (d *DeriveTx) Purchasers(ctx context.Context, visitors []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(visitors) == 0 {
		return out, nil
	}
	rows, err := d.tx.Query(ctx, `SELECT DISTINCT visitor_id FROM event_commerce
		WHERE site_id = $1 AND visitor_id = ANY($2) AND flags & 1 <> 0`, int32(d.site), visitors)
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: read purchasers: %w", d.site, err)
	}
	var v int64
	if _, err := pgx.ForEachRow(rows, []any{&v}, func() error { out[v] = true; return nil }); err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: read purchasers: %w", d.site, err)
	}
	return out, nil
}

// AddCommerce writes rows to event_commerce and returns their ids
// (parallel to rows), for the events' commerce_id.
func (d *DeriveTx) AddCommerce(ctx context.Context, rows []CommerceRow) ([]int32, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]int32, 0, len(rows))
	r, err := d.tx.Query(ctx, "SELECT nextval(pg_get_serial_sequence('event_commerce', 'id'))::integer FROM generate_series(1, $1)", len(rows))
	if err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: commerce ids: %w", d.site, err)
	}
	if ids, err = pgx.AppendRows(ids, r, pgx.RowTo[int32]); err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: commerce ids: %w", d.site, err)
	}
	ts := make([]time.Time, len(rows))
	visitors := make([]int64, len(rows))
	rev, tax, ship := make([]float64, len(rows)), make([]float64, len(rows)), make([]float64, len(rows))
	names, txs, curs := make([]int32, len(rows)), make([]int32, len(rows)), make([]int32, len(rows))
	flags := make([]int16, len(rows))
	for i, c := range rows {
		ts[i], visitors[i], rev[i], tax[i], ship[i] = c.TS, c.Visitor, c.Revenue, c.Tax, c.Shipping
		names[i], txs[i], curs[i], flags[i] = c.Name, c.Transaction, c.Currency, c.Flags
	}
	if _, err := d.tx.Exec(ctx, `INSERT INTO event_commerce (id, site_id, ts, visitor_id, revenue, tax, shipping, name_id,
			transaction_id, currency_id, flags) OVERRIDING SYSTEM VALUE
		SELECT u.id, $1, u.ts, u.visitor_id, u.revenue, u.tax, u.shipping, u.name_id, u.transaction_id, u.currency_id, u.flags
		FROM unnest($2::integer[], $3::timestamptz[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[], $8::integer[],
			$9::integer[], $10::integer[], $11::smallint[])
			AS u(id, ts, visitor_id, revenue, tax, shipping, name_id, transaction_id, currency_id, flags)`,
		int32(d.site), ids, ts, visitors, rev, tax, ship, names, txs, curs, flags); err != nil {
		return nil, fmt.Errorf("postgres: derive site %d: write event_commerce: %w", d.site, err)
	}
	return ids, nil
}

// CopyItems writes item-scoped rows.
func (d *DeriveTx) CopyItems(ctx context.Context, rows []ItemRow) error {
	if len(rows) == 0 {
		return nil
	}
	src := pgx.CopyFromSlice(len(rows), func(i int) ([]any, error) {
		r := &rows[i]
		return []any{r.TS, r.Visitor, r.Session, r.Revenue, r.Site, r.Name, r.Referrer, r.Content, r.Client, r.Traffic,
			r.Commerce, r.Profile, r.List, r.Promotion, r.Quantity, r.Flags}, nil
	})
	if _, err := d.tx.CopyFrom(ctx, pgx.Identifier{"event_items"}, itemColumns, src); err != nil {
		return fmt.Errorf("postgres: derive site %d: copy event_items: %w", d.site, err)
	}
	return nil
}

// SetKeyEvents replaces the event names site counts as key events (GA4's
// conversions; purchase by default) and returns them; an unknown site
// gives ErrNotFound. Events derived from then on are marked by them.
func (s *Store) SetKeyEvents(ctx context.Context, id uint32, names []string) ([]string, error) {
	if names == nil {
		names = []string{}
	}
	var out []string
	err := s.pool.QueryRow(ctx, "UPDATE sites SET key_events = $2 WHERE id = $1 RETURNING key_events", int64(id), names).Scan(&out)
	return out, siteUpdateErr(id, "key events", err)
}

// KeyEvents returns the event names site counts as key events.
func (s *Store) KeyEvents(ctx context.Context, id uint32) ([]string, error) {
	var out []string
	err := s.pool.QueryRow(ctx, "SELECT key_events FROM sites WHERE id = $1", int64(id)).Scan(&out)
	return out, siteUpdateErr(id, "key events", err)
}

// SetCurrency sets site's reporting currency (an upper-case ISO 4217 code).
func (s *Store) SetCurrency(ctx context.Context, id uint32, code string) (Site, error) {
	site, err := scanSite(s.pool.QueryRow(ctx, "UPDATE sites SET currency_code = $2 WHERE id = $1 RETURNING "+siteColumns,
		int64(id), code))
	return site, siteUpdateErr(id, "currency", err)
}

// CurrencyRate is one operator-maintained exchange rate: an amount in
// Currency times Rate is the amount in Reporting.
type CurrencyRate struct {
	Currency, Reporting string
	Rate                float64
	UpdatedAt           time.Time
}

// SetCurrencyRate sets (or replaces) a rate; derivations after it convert
// with it. Events derived before keep their amounts.
func (s *Store) SetCurrencyRate(ctx context.Context, r CurrencyRate) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO currency_rates (currency, reporting, rate) VALUES ($1, $2, $3)
		ON CONFLICT (currency, reporting) DO UPDATE SET rate = EXCLUDED.rate, updated_at = now()`,
		r.Currency, r.Reporting, r.Rate); err != nil {
		return fmt.Errorf("postgres: set currency rate %s→%s: %w", r.Currency, r.Reporting, err)
	}
	return nil
}

// DeleteCurrencyRate removes a rate; false when there was none.
func (s *Store) DeleteCurrencyRate(ctx context.Context, currency, reporting string) (bool, error) {
	tag, err := s.pool.Exec(ctx, "DELETE FROM currency_rates WHERE currency = $1 AND reporting = $2", currency, reporting)
	if err != nil {
		return false, fmt.Errorf("postgres: delete currency rate %s→%s: %w", currency, reporting, err)
	}
	return tag.RowsAffected() > 0, nil
}

// CurrencyRates lists every rate, by currency and reporting currency.
func (s *Store) CurrencyRates(ctx context.Context) ([]CurrencyRate, error) {
	rows, err := s.pool.Query(ctx, "SELECT currency, reporting, rate, updated_at FROM currency_rates ORDER BY 1, 2")
	if err != nil {
		return nil, fmt.Errorf("postgres: list currency rates: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CurrencyRate])
	if err != nil {
		return nil, fmt.Errorf("postgres: list currency rates: %w", err)
	}
	return out, nil
}

// ItemRowsOf counts a site's item rows (packed or not) whose visitor is one
// of visitors, and deletes them with remove: erasure of a subject's data must reach the
// item-scoped rows and the events' commerce rows as well as events.
func (s *Store) ItemRowsOf(ctx context.Context, site uint32, visitors []int64, remove bool) (items, commerce int64, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: item rows of site %d: %w", site, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	verb := "SELECT count(*) FROM"
	var packed int64
	if remove {
		verb = "WITH d AS (DELETE FROM"
		if packed, err = eraseSubjectItemPacks(ctx, tx, int32(site), visitors); err != nil {
			return 0, 0, fmt.Errorf("postgres: item rows of site %d: %w", site, err)
		}
	}
	for _, q := range []struct {
		table string
		n     *int64
	}{{"event_items", &items}, {"event_commerce", &commerce}} {
		sql := verb + " " + q.table + " WHERE site_id = $1 AND visitor_id = ANY($2)"
		switch {
		case remove:
			sql += " RETURNING 1) SELECT count(*) FROM d"
		case q.table == "event_items":
			sql = "SELECT count(*) FROM " + ItemsOf("$1", "$2::bigint[]", []string{"ts"}) + " i"
		}
		if err := tx.QueryRow(ctx, sql, int32(site), visitors).Scan(q.n); err != nil {
			return 0, 0, fmt.Errorf("postgres: item rows of site %d: %s: %w", site, q.table, err)
		}
	}
	items += packed
	if err := tx.Commit(ctx); err != nil {
		return 0, 0, fmt.Errorf("postgres: item rows of site %d: commit: %w", site, err)
	}
	return items, commerce, nil
}
