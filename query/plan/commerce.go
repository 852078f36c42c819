package plan

import (
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Ecommerce and key events (storage/postgres commerce.go, migration 015).
//
// Event-scoped ecommerce metrics read the event's event_commerce row,
// joined through events.commerce_id (postgres.CommerceProfile, alias
// event_commerce): its revenue, tax and shipping in the site's reporting
// currency (converted by the operator's rates, else as sent), its
// transaction id and currency. Repeated purchases have no such row (the
// write stage deduplicates them by transaction id, as GA4 does), so they
// count in eventCount but not in revenue or purchases.
//
// Item-scoped reports (an item dimension or metric anywhere) read
// event_items instead of events, one row per item of an ecommerce event,
// as session reports read sessions: its event columns carry the events'
// names, so event-scoped dimensions (date, country, eventName,
// transactionId …) work there except custom parameters and those reading
// engagement time; event-scoped metrics are refused, as GA4 refuses
// item-scoped dimensions with event-scoped metrics.

// typeCurrency is GA4's MetricType of amounts of money.
const typeCurrency = "TYPE_CURRENCY"

// eventNameID is the dims id of event name n, looked up once per
// statement (an InitPlan). n is a constant of this file, never input.
func eventNameID(n string) string {
	return "(SELECT id FROM dims WHERE site_id = $1 AND kind = " + strconv.Itoa(int(postgres.DimEventName)) + " AND value = '" + n + "')"
}

// named is SQL testing that the row's event is named n.
func named(n string) string { return "e.name_id = " + eventNameID(n) }

// Ecommerce joins: the item profile's columns, the item's list and
// promotion (dims ids on event_items), the event's transaction and currency
// (on event_commerce).
var (
	joinItemID        = &JoinDef{Alias: "d_item_id", Column: "sku_id", Profile: postgres.ItemProfile}
	joinItemName      = &JoinDef{Alias: "d_item_name", Column: "item_name_id", Profile: postgres.ItemProfile}
	joinItemBrand     = &JoinDef{Alias: "d_item_brand", Column: "brand_id", Profile: postgres.ItemProfile}
	joinItemCategory  = &JoinDef{Alias: "d_item_category", Column: "category_id", Profile: postgres.ItemProfile}
	joinItemCategory2 = &JoinDef{Alias: "d_item_category2", Column: "category2_id", Profile: postgres.ItemProfile}
	joinItemCategory3 = &JoinDef{Alias: "d_item_category3", Column: "category3_id", Profile: postgres.ItemProfile}
	joinItemCategory4 = &JoinDef{Alias: "d_item_category4", Column: "category4_id", Profile: postgres.ItemProfile}
	joinItemCategory5 = &JoinDef{Alias: "d_item_category5", Column: "category5_id", Profile: postgres.ItemProfile}
	joinItemVariant   = &JoinDef{Alias: "d_item_variant", Column: "variant_id", Profile: postgres.ItemProfile}
	joinItemList      = &JoinDef{Alias: "d_item_list", Column: "list_id"}
	joinItemPromotion = &JoinDef{Alias: "d_item_promotion", Column: "promotion_id"}
	joinTransaction   = &JoinDef{Alias: "d_transaction", Column: "transaction_id", Profile: postgres.CommerceProfile}
	joinCurrency      = &JoinDef{Alias: "d_currency", Column: "currency_id", Profile: postgres.CommerceProfile}
)

// itemDim is an item-scoped dimension showing one dictionary join.
func itemDim(name, uiName, desc string, j *JoinDef) *DimDef {
	return &DimDef{Name: name, UIName: uiName, Category: "Ecommerce", Desc: desc, Item: dictValue(j), Joins: []*JoinDef{j}}
}

var CommerceDimensions = []*DimDef{
	dictDim("transactionId", "Transaction ID", "Ecommerce", "The transaction_id of the ecommerce event.", joinTransaction),
	dictDim("currencyCode", "Currency", "Ecommerce",
		"The currency the ecommerce event was sent in (ISO 4217); amounts are reported in the property's currency.", joinCurrency),
	itemDim("itemId", "Item ID", "The item_id of the item.", joinItemID),
	itemDim("itemName", "Item name", "The item_name of the item.", joinItemName),
	itemDim("itemBrand", "Item brand", "The item_brand of the item.", joinItemBrand),
	itemDim("itemCategory", "Item category", "The item_category of the item.", joinItemCategory),
	itemDim("itemCategory2", "Item category 2", "The item_category2 of the item.", joinItemCategory2),
	itemDim("itemCategory3", "Item category 3", "The item_category3 of the item.", joinItemCategory3),
	itemDim("itemCategory4", "Item category 4", "The item_category4 of the item.", joinItemCategory4),
	itemDim("itemCategory5", "Item category 5", "The item_category5 of the item.", joinItemCategory5),
	itemDim("itemVariant", "Item variant", "The item_variant of the item.", joinItemVariant),
	itemDim("itemListName", "Item list name", "The item_list_name of the item.", joinItemList),
	itemDim("itemPromotionName", "Item promotion name", "The promotion_name of the item.", joinItemPromotion),
}

// Expressions over events rows joined to event_commerce.
var (
	purchaseSum = func(col string) string {
		return "COALESCE(sum(event_commerce." + col + ") FILTER (WHERE " + named("purchase") + "), 0)"
	}
	refundSum          = "COALESCE(sum(event_commerce.revenue) FILTER (WHERE " + named("refund") + "), 0)"
	purchaseRevenue    = "(" + purchaseSum("revenue") + " - " + refundSum + ")"
	ecommercePurchases = "count(event_commerce.id) FILTER (WHERE " + named("purchase") + ")"
	keyEventFlag       = flagSet(protocol.FlagKeyEvent)
)

// itemSum sums the item rows' col of events named n.
func itemSum(col, n string) string {
	return "COALESCE(sum(e." + col + ") FILTER (WHERE " + named(n) + "), 0)"
}

// itemUsers counts the visitors with item rows of events named n.
func itemUsers(n string) string {
	return "count(DISTINCT e.visitor_id) FILTER (WHERE " + named(n) + ")"
}

var CommerceMetrics = []*MetricDef{
	{Name: "totalRevenue", UIName: "Total revenue", Category: "Revenue", Typ: typeCurrency, eventOnly: true,
		Desc: "The value of purchase and in_app_purchase events minus the value of refund events, in the property's currency.",
		Expr: "(COALESCE(sum(event_commerce.revenue) FILTER (WHERE e.name_id IN (" + eventNameID("purchase") + ", " + eventNameID("in_app_purchase") + ")), 0) - " + refundSum + ")"},
	{Name: "purchaseRevenue", UIName: "Purchase revenue", Category: "Revenue", Typ: typeCurrency, eventOnly: true,
		Desc: "The value of purchase events minus the value of refund events, in the property's currency.", Expr: purchaseRevenue},
	{Name: "refundAmount", UIName: "Refund amount", Category: "Revenue", Typ: typeCurrency, eventOnly: true,
		Desc: "The value of refund events, in the property's currency.", Expr: refundSum},
	{Name: "shippingAmount", UIName: "Shipping amount", Category: "Revenue", Typ: typeCurrency, eventOnly: true,
		Desc: "The shipping of purchase events, in the property's currency.", Expr: purchaseSum("shipping")},
	{Name: "taxAmount", UIName: "Tax amount", Category: "Revenue", Typ: typeCurrency, eventOnly: true,
		Desc: "The tax of purchase events, in the property's currency.", Expr: purchaseSum("tax")},
	{Name: "transactions", UIName: "Transactions", Category: "Ecommerce", Typ: TypeInteger, eventOnly: true,
		Desc: "The number of purchase events with a transaction_id (a repeated transaction_id counts once).",
		Expr: "count(event_commerce.id) FILTER (WHERE " + named("purchase") + " AND event_commerce.transaction_id <> 0)"},
	{Name: "ecommercePurchases", UIName: "Ecommerce purchases", Category: "Ecommerce", Typ: TypeInteger, eventOnly: true,
		Desc: "The number of purchase events (a repeated transaction_id counts once).", Expr: ecommercePurchases},
	{Name: "averagePurchaseRevenue", UIName: "Average purchase revenue", Category: "Revenue", Typ: typeCurrency, eventOnly: true,
		Desc: "purchaseRevenue divided by ecommercePurchases; 0 without purchases.",
		Expr: "COALESCE(" + purchaseRevenue + "::float8 / NULLIF(" + ecommercePurchases + ", 0), 0)"},
	{Name: "purchaserRate", UIName: "Purchaser rate", Category: "Ecommerce", Typ: TypeFloat, eventOnly: true,
		Desc: "The share of active users who made a purchase; 0 without active users.",
		Expr: "COALESCE(count(DISTINCT e.visitor_id) FILTER (WHERE " + named("purchase") + " AND event_commerce.id IS NOT NULL)::float8 / NULLIF(" + activeUsersExpr + ", 0), 0)"},
	{Name: "firstTimePurchasers", UIName: "First time purchasers", Category: "Ecommerce", Typ: TypeInteger, eventOnly: true,
		Desc: "The number of visitors whose first purchase is in the range (visitor ids are daily, so a visitor is first-time once per visitor id).",
		Expr: "count(DISTINCT e.visitor_id) FILTER (WHERE event_commerce.flags & " + strconv.Itoa(int(postgres.CommerceFirstPurchase)) + " <> 0)"},
	{Name: "addToCarts", UIName: "Add to carts", Category: "Ecommerce", Typ: TypeInteger, eventOnly: true,
		Desc: "The number of add_to_cart events.", Expr: "count(*) FILTER (WHERE " + named("add_to_cart") + ")"},
	{Name: "checkouts", UIName: "Checkouts", Category: "Ecommerce", Typ: TypeInteger, eventOnly: true,
		Desc: "The number of begin_checkout events.", Expr: "count(*) FILTER (WHERE " + named("begin_checkout") + ")"},
	{Name: "sessionKeyEventRate", UIName: "Session key event rate", Category: "Session", Typ: TypeFloat,
		Desc: "The share of sessions with a key event; 0 without sessions.", Sess: perSession("count(*) FILTER (WHERE e.key_events > 0)")},
	{Name: "userKeyEventRate", UIName: "User key event rate", Category: "User", Typ: TypeFloat, eventOnly: true,
		Desc: "The share of active users with a key event; 0 without active users.",
		Expr: "COALESCE(count(DISTINCT e.visitor_id) FILTER (WHERE " + keyEventFlag + ")::float8 / NULLIF(" + activeUsersExpr + ", 0), 0)"},

	// Item-scoped: read the item rows.
	{Name: "itemRevenue", UIName: "Item revenue", Category: "Ecommerce", Typ: typeCurrency,
		Desc: "price × quantity of items purchased minus that of items refunded, in the property's currency.",
		Item: "(" + itemSum("revenue", "purchase") + " - " + itemSum("revenue", "refund") + ")"},
	{Name: "itemsPurchased", UIName: "Items purchased", Category: "Ecommerce", Typ: TypeInteger,
		Desc: "The quantity of items in purchase events.", Item: itemSum("quantity", "purchase") + "::bigint"},
	{Name: "itemsViewed", UIName: "Items viewed", Category: "Ecommerce", Typ: TypeInteger,
		Desc: "The quantity of items in view_item events.", Item: itemSum("quantity", "view_item") + "::bigint"},
	{Name: "itemsAddedToCart", UIName: "Items added to cart", Category: "Ecommerce", Typ: TypeInteger,
		Desc: "The quantity of items in add_to_cart events.", Item: itemSum("quantity", "add_to_cart") + "::bigint"},
	{Name: "cartToViewRate", UIName: "Cart-to-view rate", Category: "Ecommerce", Typ: TypeFloat,
		Desc: "Visitors who added the items to a cart divided by visitors who viewed them; 0 without views.",
		Item: "COALESCE(" + itemUsers("add_to_cart") + "::float8 / NULLIF(" + itemUsers("view_item") + ", 0), 0)"},
	{Name: "purchaseToViewRate", UIName: "Purchase-to-view rate", Category: "Ecommerce", Typ: TypeFloat,
		Desc: "Visitors who purchased the items divided by visitors who viewed them; 0 without views.",
		Item: "COALESCE(" + itemUsers("purchase") + "::float8 / NULLIF(" + itemUsers("view_item") + ", 0), 0)"},
}

// Commerce metrics in event-session reports (a session metric with an
// event-scoped dimension, or with session dimensions, which sessions rows
// cannot give revenue by): each group's per-session rows x carry the
// metric's value over the group's events of the session, so a page's
// revenue is that of its events, as in an event report, beside the
// sessions in which the page occurred.
func init() {
	col := func(name string) MixedColumn {
		return MixedColumn{Name: "c_" + strings.ToLower(name), Inner: MetricsByName[name].Expr, Merge: "sum"}
	}
	for _, name := range []string{"totalRevenue", "purchaseRevenue", "refundAmount", "shippingAmount", "taxAmount",
		"transactions", "ecommercePurchases", "addToCarts", "checkouts"} {
		m, c := MetricsByName[name], col(name)
		m.MixedCols, m.Mixed = []MixedColumn{c}, "COALESCE(sum(x."+c.Name+"), 0)::"+m.SQLType()
	}
	rev, purchases := col("purchaseRevenue"), col("ecommercePurchases")
	m := MetricsByName["averagePurchaseRevenue"]
	m.MixedCols = []MixedColumn{rev, purchases}
	m.Mixed = "COALESCE(sum(x." + rev.Name + ")::float8 / NULLIF(sum(x." + purchases.Name + "), 0), 0)"
	purchaser := MixedColumn{Name: "c_purchaser", Inner: "COALESCE(bool_or(" + named("purchase") + " AND event_commerce.id IS NOT NULL), false)", Merge: "bool_or"}
	m = MetricsByName["purchaserRate"]
	m.MixedCols = []MixedColumn{purchaser}
	m.Mixed = "COALESCE(count(DISTINCT x.v) FILTER (WHERE x.c_purchaser)::float8 / NULLIF(" + mixedActive + ", 0), 0)"
	first := MixedColumn{Name: "c_first_purchase", Inner: "COALESCE(bool_or(event_commerce.flags & " + strconv.Itoa(int(postgres.CommerceFirstPurchase)) + " <> 0), false)", Merge: "bool_or"}
	m = MetricsByName["firstTimePurchasers"]
	m.MixedCols = []MixedColumn{first}
	m.Mixed = "count(DISTINCT x.v) FILTER (WHERE x.c_first_purchase)"
	MetricsByName["userKeyEventRate"].Mixed = "COALESCE(count(DISTINCT x.v) FILTER (WHERE x.ke > 0)::float8 / NULLIF(" + mixedActive + ", 0), 0)"
}

// KeyEventsPrefix is GA4's per-event key event metric, keyEvents:<event_name>.
const KeyEventsPrefix = "keyEvents:"

// LookupKeyEventsMetric resolves keyEvents:<event_name>: the key events
// named so; the name is bound, never written into the statement.
func LookupKeyEventsMetric(name string) (m *MetricDef, ok bool, msg string) {
	ev, found := strings.CutPrefix(name, KeyEventsPrefix)
	if !found {
		return nil, false, ""
	}
	if !paramName.MatchString(ev) {
		return nil, false, "the event name after " + KeyEventsPrefix + " must be a letter followed by up to 39 letters, digits or underscores"
	}
	// Beside session metrics, its per-session column is named by a hash of
	// the name: the statement holds the name only as a bound value.
	h := fnv.New64a()
	h.Write([]byte(ev))
	col := MixedColumn{Name: "c_ke_" + strconv.FormatUint(h.Sum64(), 36), Merge: "sum", Param: ev}
	return &MetricDef{Name: name, UIName: "Key events (" + ev + ")", Category: "Event", Typ: TypeInteger, eventOnly: true,
		Desc: "The number of " + ev + " key events.", Param: ev,
		MixedCols: []MixedColumn{col}, Mixed: "COALESCE(sum(x." + col.Name + "), 0)::bigint"}, true, ""
}

// KeyEventsOf is the expression of keyEvents:<event_name> with the name
// bound at ph.
func KeyEventsOf(ph string) string {
	return "count(*) FILTER (WHERE " + keyEventFlag + " AND e.name_id = (SELECT id FROM dims WHERE site_id = $1 AND kind = " +
		strconv.Itoa(int(postgres.DimEventName)) + " AND value = " + ph + "::text))"
}

// ReadsCommerce reports whether SQL x reads the event's event_commerce row.
func ReadsCommerce(x string) bool { return strings.Contains(x, "event_commerce.") }

// itemRowsLack reports whether dimension d reads what item rows do not
// hold (custom parameters, engagement time): refused in item reports.
func itemRowsLack(d *DimDef) bool {
	return d.Param != "" || strings.Contains(d.Expr, "e.params") || strings.Contains(d.Expr, "e.engagement_ms")
}
