package query

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
	joinItemID        = &joinDef{alias: "d_item_id", column: "sku_id", profile: postgres.ItemProfile}
	joinItemName      = &joinDef{alias: "d_item_name", column: "item_name_id", profile: postgres.ItemProfile}
	joinItemBrand     = &joinDef{alias: "d_item_brand", column: "brand_id", profile: postgres.ItemProfile}
	joinItemCategory  = &joinDef{alias: "d_item_category", column: "category_id", profile: postgres.ItemProfile}
	joinItemCategory2 = &joinDef{alias: "d_item_category2", column: "category2_id", profile: postgres.ItemProfile}
	joinItemCategory3 = &joinDef{alias: "d_item_category3", column: "category3_id", profile: postgres.ItemProfile}
	joinItemCategory4 = &joinDef{alias: "d_item_category4", column: "category4_id", profile: postgres.ItemProfile}
	joinItemCategory5 = &joinDef{alias: "d_item_category5", column: "category5_id", profile: postgres.ItemProfile}
	joinItemVariant   = &joinDef{alias: "d_item_variant", column: "variant_id", profile: postgres.ItemProfile}
	joinItemList      = &joinDef{alias: "d_item_list", column: "list_id"}
	joinItemPromotion = &joinDef{alias: "d_item_promotion", column: "promotion_id"}
	joinTransaction   = &joinDef{alias: "d_transaction", column: "transaction_id", profile: postgres.CommerceProfile}
	joinCurrency      = &joinDef{alias: "d_currency", column: "currency_id", profile: postgres.CommerceProfile}
)

// itemDim is an item-scoped dimension showing one dictionary join.
func itemDim(name, uiName, desc string, j *joinDef) *dimDef {
	return &dimDef{name: name, uiName: uiName, category: "Ecommerce", desc: desc, item: dictValue(j), joins: []*joinDef{j}}
}

var commerceDimensions = []*dimDef{
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

var commerceMetrics = []*metricDef{
	{name: "totalRevenue", uiName: "Total revenue", category: "Revenue", typ: typeCurrency, eventOnly: true,
		desc: "The value of purchase and in_app_purchase events minus the value of refund events, in the property's currency.",
		expr: "(COALESCE(sum(event_commerce.revenue) FILTER (WHERE e.name_id IN (" + eventNameID("purchase") + ", " + eventNameID("in_app_purchase") + ")), 0) - " + refundSum + ")"},
	{name: "purchaseRevenue", uiName: "Purchase revenue", category: "Revenue", typ: typeCurrency, eventOnly: true,
		desc: "The value of purchase events minus the value of refund events, in the property's currency.", expr: purchaseRevenue},
	{name: "refundAmount", uiName: "Refund amount", category: "Revenue", typ: typeCurrency, eventOnly: true,
		desc: "The value of refund events, in the property's currency.", expr: refundSum},
	{name: "shippingAmount", uiName: "Shipping amount", category: "Revenue", typ: typeCurrency, eventOnly: true,
		desc: "The shipping of purchase events, in the property's currency.", expr: purchaseSum("shipping")},
	{name: "taxAmount", uiName: "Tax amount", category: "Revenue", typ: typeCurrency, eventOnly: true,
		desc: "The tax of purchase events, in the property's currency.", expr: purchaseSum("tax")},
	{name: "transactions", uiName: "Transactions", category: "Ecommerce", typ: typeInteger, eventOnly: true,
		desc: "The number of purchase events with a transaction_id (a repeated transaction_id counts once).",
		expr: "count(event_commerce.id) FILTER (WHERE " + named("purchase") + " AND event_commerce.transaction_id <> 0)"},
	{name: "ecommercePurchases", uiName: "Ecommerce purchases", category: "Ecommerce", typ: typeInteger, eventOnly: true,
		desc: "The number of purchase events (a repeated transaction_id counts once).", expr: ecommercePurchases},
	{name: "averagePurchaseRevenue", uiName: "Average purchase revenue", category: "Revenue", typ: typeCurrency, eventOnly: true,
		desc: "purchaseRevenue divided by ecommercePurchases; 0 without purchases.",
		expr: "COALESCE(" + purchaseRevenue + "::float8 / NULLIF(" + ecommercePurchases + ", 0), 0)"},
	{name: "purchaserRate", uiName: "Purchaser rate", category: "Ecommerce", typ: typeFloat, eventOnly: true,
		desc: "The share of active users who made a purchase; 0 without active users.",
		expr: "COALESCE(count(DISTINCT e.visitor_id) FILTER (WHERE " + named("purchase") + " AND event_commerce.id IS NOT NULL)::float8 / NULLIF(" + activeUsersExpr + ", 0), 0)"},
	{name: "firstTimePurchasers", uiName: "First time purchasers", category: "Ecommerce", typ: typeInteger, eventOnly: true,
		desc: "The number of visitors whose first purchase is in the range (visitor ids are daily, so a visitor is first-time once per visitor id).",
		expr: "count(DISTINCT e.visitor_id) FILTER (WHERE event_commerce.flags & " + strconv.Itoa(int(postgres.CommerceFirstPurchase)) + " <> 0)"},
	{name: "addToCarts", uiName: "Add to carts", category: "Ecommerce", typ: typeInteger, eventOnly: true,
		desc: "The number of add_to_cart events.", expr: "count(*) FILTER (WHERE " + named("add_to_cart") + ")"},
	{name: "checkouts", uiName: "Checkouts", category: "Ecommerce", typ: typeInteger, eventOnly: true,
		desc: "The number of begin_checkout events.", expr: "count(*) FILTER (WHERE " + named("begin_checkout") + ")"},
	{name: "sessionKeyEventRate", uiName: "Session key event rate", category: "Session", typ: typeFloat,
		desc: "The share of sessions with a key event; 0 without sessions.", sess: perSession("count(*) FILTER (WHERE e.key_events > 0)")},
	{name: "userKeyEventRate", uiName: "User key event rate", category: "User", typ: typeFloat, eventOnly: true,
		desc: "The share of active users with a key event; 0 without active users.",
		expr: "COALESCE(count(DISTINCT e.visitor_id) FILTER (WHERE " + keyEventFlag + ")::float8 / NULLIF(" + activeUsersExpr + ", 0), 0)"},

	// Item-scoped: read the item rows.
	{name: "itemRevenue", uiName: "Item revenue", category: "Ecommerce", typ: typeCurrency,
		desc: "price × quantity of items purchased minus that of items refunded, in the property's currency.",
		item: "(" + itemSum("revenue", "purchase") + " - " + itemSum("revenue", "refund") + ")"},
	{name: "itemsPurchased", uiName: "Items purchased", category: "Ecommerce", typ: typeInteger,
		desc: "The quantity of items in purchase events.", item: itemSum("quantity", "purchase") + "::bigint"},
	{name: "itemsViewed", uiName: "Items viewed", category: "Ecommerce", typ: typeInteger,
		desc: "The quantity of items in view_item events.", item: itemSum("quantity", "view_item") + "::bigint"},
	{name: "itemsAddedToCart", uiName: "Items added to cart", category: "Ecommerce", typ: typeInteger,
		desc: "The quantity of items in add_to_cart events.", item: itemSum("quantity", "add_to_cart") + "::bigint"},
	{name: "cartToViewRate", uiName: "Cart-to-view rate", category: "Ecommerce", typ: typeFloat,
		desc: "Visitors who added the items to a cart divided by visitors who viewed them; 0 without views.",
		item: "COALESCE(" + itemUsers("add_to_cart") + "::float8 / NULLIF(" + itemUsers("view_item") + ", 0), 0)"},
	{name: "purchaseToViewRate", uiName: "Purchase-to-view rate", category: "Ecommerce", typ: typeFloat,
		desc: "Visitors who purchased the items divided by visitors who viewed them; 0 without views.",
		item: "COALESCE(" + itemUsers("purchase") + "::float8 / NULLIF(" + itemUsers("view_item") + ", 0), 0)"},
}

// Commerce metrics in event-session reports (a session metric with an
// event-scoped dimension, or with session dimensions, which sessions rows
// cannot give revenue by): each group's per-session rows x carry the
// metric's value over the group's events of the session, so a page's
// revenue is that of its events, as in an event report, beside the
// sessions in which the page occurred.
func init() {
	col := func(name string) mixedColumn {
		return mixedColumn{name: "c_" + strings.ToLower(name), inner: metricsByName[name].expr, merge: "sum"}
	}
	for _, name := range []string{"totalRevenue", "purchaseRevenue", "refundAmount", "shippingAmount", "taxAmount",
		"transactions", "ecommercePurchases", "addToCarts", "checkouts"} {
		m, c := metricsByName[name], col(name)
		m.mixedCols, m.mixed = []mixedColumn{c}, "COALESCE(sum(x."+c.name+"), 0)::"+m.sqlType()
	}
	rev, purchases := col("purchaseRevenue"), col("ecommercePurchases")
	m := metricsByName["averagePurchaseRevenue"]
	m.mixedCols = []mixedColumn{rev, purchases}
	m.mixed = "COALESCE(sum(x." + rev.name + ")::float8 / NULLIF(sum(x." + purchases.name + "), 0), 0)"
	purchaser := mixedColumn{name: "c_purchaser", inner: "COALESCE(bool_or(" + named("purchase") + " AND event_commerce.id IS NOT NULL), false)", merge: "bool_or"}
	m = metricsByName["purchaserRate"]
	m.mixedCols = []mixedColumn{purchaser}
	m.mixed = "COALESCE(count(DISTINCT x.v) FILTER (WHERE x.c_purchaser)::float8 / NULLIF(" + mixedActive + ", 0), 0)"
	first := mixedColumn{name: "c_first_purchase", inner: "COALESCE(bool_or(event_commerce.flags & " + strconv.Itoa(int(postgres.CommerceFirstPurchase)) + " <> 0), false)", merge: "bool_or"}
	m = metricsByName["firstTimePurchasers"]
	m.mixedCols = []mixedColumn{first}
	m.mixed = "count(DISTINCT x.v) FILTER (WHERE x.c_first_purchase)"
	metricsByName["userKeyEventRate"].mixed = "COALESCE(count(DISTINCT x.v) FILTER (WHERE x.ke > 0)::float8 / NULLIF(" + mixedActive + ", 0), 0)"
}

// keyEventsPrefix is GA4's per-event key event metric, keyEvents:<event_name>.
const keyEventsPrefix = "keyEvents:"

// lookupKeyEventsMetric resolves keyEvents:<event_name>: the key events
// named so; the name is bound, never written into the statement.
func lookupKeyEventsMetric(name string) (m *metricDef, ok bool, msg string) {
	ev, found := strings.CutPrefix(name, keyEventsPrefix)
	if !found {
		return nil, false, ""
	}
	if !paramName.MatchString(ev) {
		return nil, false, "the event name after " + keyEventsPrefix + " must be a letter followed by up to 39 letters, digits or underscores"
	}
	// Beside session metrics, its per-session column is named by a hash of
	// the name: the statement holds the name only as a bound value.
	h := fnv.New64a()
	h.Write([]byte(ev))
	col := mixedColumn{name: "c_ke_" + strconv.FormatUint(h.Sum64(), 36), merge: "sum", param: ev}
	return &metricDef{name: name, uiName: "Key events (" + ev + ")", category: "Event", typ: typeInteger, eventOnly: true,
		desc: "The number of " + ev + " key events.", param: ev,
		mixedCols: []mixedColumn{col}, mixed: "COALESCE(sum(x." + col.name + "), 0)::bigint"}, true, ""
}

// keyEventsOf is the expression of keyEvents:<event_name> with the name
// bound at ph.
func keyEventsOf(ph string) string {
	return "count(*) FILTER (WHERE " + keyEventFlag + " AND e.name_id = (SELECT id FROM dims WHERE site_id = $1 AND kind = " +
		strconv.Itoa(int(postgres.DimEventName)) + " AND value = " + ph + "::text))"
}

// readsCommerce reports whether SQL x reads the event's event_commerce row.
func readsCommerce(x string) bool { return strings.Contains(x, "event_commerce.") }

// itemRowsLack reports whether dimension d reads what item rows do not
// hold (custom parameters, engagement time): refused in item reports.
func itemRowsLack(d *dimDef) bool {
	return d.param != "" || strings.Contains(d.expr, "e.params") || strings.Contains(d.expr, "e.engagement_ms")
}
