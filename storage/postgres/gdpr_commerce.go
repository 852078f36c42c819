package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SubjectCommerce is one stored ecommerce row (event_commerce) of a
// subject: the amounts of one of its events (a purchase, a refund …), in
// the site's reporting currency when a rate converted them.
type SubjectCommerce struct {
	Time          time.Time `json:"time"` // the event's
	Key           uint64    `json:"key"`
	Name          string    `json:"event_name"`
	Revenue       float64   `json:"value"`
	Tax           float64   `json:"tax"`
	Shipping      float64   `json:"shipping"`
	TransactionID string    `json:"transaction_id,omitempty"`
	Currency      string    `json:"currency,omitempty"` // as sent
	FirstPurchase bool      `json:"first_purchase"`
}

// SubjectItem is one stored item row (event_items) of a subject.
type SubjectItem struct {
	Time      time.Time         `json:"time"` // the event's
	Key       uint64            `json:"key"`
	SessionID int64             `json:"session_id"`
	Name      string            `json:"event_name"`
	Quantity  int32             `json:"quantity"`
	Revenue   float64           `json:"item_revenue"` // price × quantity
	Dims      map[string]string `json:"dimensions,omitempty"`
}

// ItemDimNames name the item dimension kinds in exports.
var ItemDimNames = map[DimKind]string{
	DimItemID: "item_id", DimItemName: "item_name", DimItemBrand: "item_brand", DimItemCategory: "item_category",
	DimItemCategory2: "item_category2", DimItemCategory3: "item_category3", DimItemCategory4: "item_category4",
	DimItemCategory5: "item_category5", DimItemVariant: "item_variant", DimItemListName: "item_list_name",
	DimItemPromotion: "promotion_name",
}

// subjectCommerce reads the subject keys' event_commerce and event_items
// rows on site, dictionary ids resolved to their strings.
func subjectCommerce(ctx context.Context, tx pgx.Tx, site int32, keys []int64) ([]SubjectCommerce, []SubjectItem, error) {
	commerce, items := []SubjectCommerce{}, []SubjectItem{}
	rows, err := tx.Query(ctx, `SELECT c.ts, c.visitor_id, n.value, c.revenue, c.tax, c.shipping, COALESCE(t.value, ''),
			COALESCE(cu.value, ''), c.flags & $3 <> 0
		FROM event_commerce c LEFT JOIN dims n ON n.id = c.name_id LEFT JOIN dims t ON t.id = c.transaction_id
			LEFT JOIN dims cu ON cu.id = c.currency_id
		WHERE c.site_id = $1 AND c.visitor_id = ANY($2) ORDER BY c.ts, c.id`, site, keys, CommerceFirstPurchase)
	if err != nil {
		return nil, nil, fmt.Errorf("commerce: %w", err)
	}
	var c SubjectCommerce
	var visitor int64
	var name *string
	if _, err := pgx.ForEachRow(rows, []any{&c.Time, &visitor, &name, &c.Revenue, &c.Tax, &c.Shipping, &c.TransactionID, &c.Currency,
		&c.FirstPurchase}, func() error {
		c.Time, c.Key = c.Time.UTC(), uint64(visitor)
		c.Name = deref(name)
		commerce = append(commerce, c)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("commerce: %w", err)
	}
	kinds := append(append([]DimKind{}, ItemProfile.Kinds...), DimItemListName, DimItemPromotion)
	cols := make([]string, len(kinds))
	joins := ""
	for i, k := range kinds {
		src := "p." + DimColumns[k]
		if !slices.Contains(ItemProfile.Kinds, k) {
			src = "i." + DimColumns[k]
		}
		alias := fmt.Sprintf("d%d", i)
		joins += " LEFT JOIN dims " + alias + " ON " + alias + ".id = " + src
		cols[i] = "COALESCE(" + alias + ".value, '')"
	}
	rows, err = tx.Query(ctx, `SELECT i.ts, i.visitor_id, i.session_id, n.value, i.quantity, i.revenue, `+strings.Join(cols, ", ")+`
		FROM `+ItemsOf("$1", "$2::bigint[]", ItemColumns())+` i LEFT JOIN item_profiles p ON p.id = i.item_profile_id
			LEFT JOIN dims n ON n.id = i.name_id`+joins+`
		ORDER BY i.ts, i.commerce_id, i.item_profile_id, i.list_id, i.promotion_id, i.quantity, i.revenue`, site, keys)
	if err != nil {
		return nil, nil, fmt.Errorf("items: %w", err)
	}
	var it SubjectItem
	vals := make([]string, len(kinds))
	dest := []any{&it.Time, &visitor, &it.SessionID, &name, &it.Quantity, &it.Revenue}
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	if _, err := pgx.ForEachRow(rows, dest, func() error {
		row := it
		row.Time, row.Key, row.Name = it.Time.UTC(), uint64(visitor), deref(name)
		row.Dims = map[string]string{}
		for i, k := range kinds {
			if vals[i] != "" {
				row.Dims[ItemDimNames[k]] = vals[i]
			}
		}
		items = append(items, row)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("items: %w", err)
	}
	return commerce, items, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
