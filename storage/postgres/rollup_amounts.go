package postgres

import (
	"math"
	"strconv"
	"strings"
)

// Amounts are a rollup cell's ecommerce counters by slot (rollup_days and
// rollup_packs amounts, migration 019): additive, so a cell's amounts are
// the sum of its events' and items' amounts, and a contribution is taken
// out by adding its negation (rollup_amounts_add). The write stage decides
// what an event or item adds (aggregator/write commerce.go); rebuilds
// restate it in SQL (rebuildDay).
type Amounts [NumAmounts]float64

// Slots of Amounts. Event kinds fill the event slots, item kinds the item
// slots. Never renumber: stored arrays are read by position.
const (
	AmountPurchaseRevenue = iota // value of purchases (purchase events with an event_commerce row)
	AmountInAppRevenue           // value of in_app_purchase events
	AmountRefund                 // value of refund events
	AmountTax                    // tax of purchases
	AmountShipping               // shipping of purchases
	AmountPurchases              // purchases
	AmountTransactions           // purchases with a transaction id
	AmountItemRevenue            // items of purchases: price × quantity
	AmountItemRefund             // items of refunds: price × quantity
	AmountItemsPurchased         // items of purchases: quantity
	AmountItemsViewed            // items of view_item events: quantity
	AmountItemsAdded             // items of add_to_cart events: quantity
	NumAmounts
)

// RollupItems is the rollup kind of every item row of a local day (dim_id
// 0), as kind 0 is of every event. Not a dims kind.
const RollupItems DimKind = 101

// ItemRollupKinds are the dims kinds of item dimensions with rows in
// rollup_days: dim_id is the item row's dims id of the kind (through its
// item profile, or its list and promotion columns).
var ItemRollupKinds = []DimKind{DimItemID, DimItemName, DimItemBrand, DimItemCategory, DimItemCategory2, DimItemCategory3,
	DimItemCategory4, DimItemCategory5, DimItemVariant, DimItemListName, DimItemPromotion}

// add adds b into a.
func (a *Amounts) add(b *Amounts) {
	for i := range a {
		a[i] += b[i]
	}
}

// addTimes adds b times sign (1 or -1) into a. A slot that subtraction
// leaves within rounding of 0 (a sum of float8 values less one of them
// need not be exactly the sum of the others) is 0: the cell holds none of
// it, as a rebuild from the remaining rows would store.
func (a *Amounts) addTimes(b *Amounts, sign float64) {
	for i := range a {
		v := a[i] + sign*b[i]
		if sign < 0 && math.Abs(v) <= amountsEpsilon*math.Max(math.Abs(a[i]), math.Abs(b[i])) {
			v = 0
		}
		a[i] = v
	}
}

// amountsEpsilon is the relative rounding of float8 sums addTimes treats as
// 0 when subtracting: sums of up to millions of amounts are off by at most
// a few ulps each.
const amountsEpsilon = 1e-9

// zero reports whether every slot of a is 0.
func (a *Amounts) zero() bool { return *a == Amounts{} }

// amountsText is a as a float8[] literal ("{1.5,NULL,…}", zero slots
// NULL), or nil (NULL) when every slot is 0 or a is nil. Floats are
// written in their shortest exact form, which PostgreSQL reads back to the
// same float8.
func amountsText(a *Amounts) *string {
	if a == nil || a.zero() {
		return nil
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, v := range a {
		if i > 0 {
			b.WriteByte(',')
		}
		if v == 0 {
			b.WriteString("NULL")
		} else {
			b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	b.WriteByte('}')
	s := b.String()
	return &s
}

// amountsOf reads a stored amounts array (NULL elements 0; nil: none).
func amountsOf(stored []*float64) *Amounts {
	if len(stored) == 0 {
		return nil
	}
	a := new(Amounts)
	for i, v := range stored {
		if v != nil && i < len(a) {
			a[i] = *v
		}
	}
	if a.zero() {
		return nil
	}
	return a
}

// appendPackAmounts appends a's slots to a pack's flat amounts (nil: NULLs).
func appendPackAmounts(flat []*float64, a *Amounts) []*float64 {
	for i := range NumAmounts {
		if a == nil || a[i] == 0 {
			flat = append(flat, nil)
			continue
		}
		v := a[i]
		flat = append(flat, &v)
	}
	return flat
}

// Event names whose events and items fill amounts (GA4's ecommerce events).
const (
	purchaseEvent  = "purchase"
	inAppEvent     = "in_app_purchase"
	refundEvent    = "refund"
	viewItemEvent  = "view_item"
	addToCartEvent = "add_to_cart"
)

// EventAmounts are the amounts an event named name with commerce row c
// (nil: none) adds to its rollup cells, nil for none: a purchase its
// value, tax, shipping, one purchase and one transaction when it has a
// transaction id; an in-app purchase its value; a refund its value. These
// are the reports' definitions (query commerce.go) summed ahead.
func EventAmounts(name string, c *CommerceRow) *Amounts {
	if c == nil {
		return nil
	}
	a := new(Amounts)
	switch name {
	case purchaseEvent:
		a[AmountPurchaseRevenue], a[AmountTax], a[AmountShipping], a[AmountPurchases] = c.Revenue, c.Tax, c.Shipping, 1
		if c.Transaction != 0 {
			a[AmountTransactions] = 1
		}
	case inAppEvent:
		a[AmountInAppRevenue] = c.Revenue
	case refundEvent:
		a[AmountRefund] = c.Revenue
	default:
		return nil
	}
	return a
}

// ItemAmounts are the amounts an item row of an event named name adds to
// the item kinds' cells.
func ItemAmounts(name string, revenue float64, quantity int32) Amounts {
	var a Amounts
	switch name {
	case purchaseEvent:
		a[AmountItemRevenue], a[AmountItemsPurchased] = revenue, float64(quantity)
	case refundEvent:
		a[AmountItemRefund] = revenue
	case viewItemEvent:
		a[AmountItemsViewed] = float64(quantity)
	case addToCartEvent:
		a[AmountItemsAdded] = float64(quantity)
	}
	return a
}
