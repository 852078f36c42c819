package protocol

// Version is the wire version carried in every Batch and Config.
const Version = 1

// Event flags (Event.Flags bit set).
const (
	FlagSessionStart   uint8 = 1 << iota // GA4 _ss or first hit of a new session
	FlagFirstVisit                       // GA4 _fv: first visit of this client
	FlagEngaged                          // GA4 seg=1: the session is engaged
	FlagNonInteraction                   // GA4 ni (non_interaction): not a user interaction
	FlagKeyEvent                         // the event is a key event (conversion)
)

// Event is one analytics hit after the agent's privacy and enrichment steps.
// It carries no raw IP address or user agent: those never leave the agent.
// Short msgpack keys keep the wire small; empty fields are omitted.
type Event struct {
	Site       uint32             `msgpack:"s"`            // property id the measurement id belongs to
	TimeMicros int64              `msgpack:"t"`            // event time, Unix microseconds, UTC
	Name       string             `msgpack:"n"`            // GA4 event name (page_view, click, …)
	Visitor    uint64             `msgpack:"v"`            // keyed daily hash of the visitor; never reversible
	User       uint64             `msgpack:"u,omitempty"`  // keyed hash of uid when consented
	SessionID  int64              `msgpack:"si,omitempty"` // GA4 sid (session start, Unix seconds) when sent
	SessionNum int32              `msgpack:"sc,omitempty"` // GA4 sct: session count of this client
	Flags      uint8              `msgpack:"f,omitempty"`  // Flag* bits
	EngageMs   int64              `msgpack:"e,omitempty"`  // GA4 _et: engagement time in milliseconds
	Host       string             `msgpack:"h,omitempty"`  // page host name
	Path       string             `msgpack:"p,omitempty"`  // page path with allowlisted query parameters
	Title      string             `msgpack:"tt,omitempty"` // page title
	Referrer   string             `msgpack:"r,omitempty"`  // referrer URL, scrubbed; empty for self-referrals
	Language   string             `msgpack:"l,omitempty"`  // ul, lower case (en-us)
	Screen     string             `msgpack:"sr,omitempty"` // sr, e.g. 1920x1080
	Country    string             `msgpack:"c,omitempty"`  // ISO 3166-1 alpha-2
	Region     string             `msgpack:"rg,omitempty"` // region name
	City       string             `msgpack:"ci,omitempty"` // city name
	Browser    string             `msgpack:"b,omitempty"`  // browser family
	BrowserVer string             `msgpack:"bv,omitempty"` // browser major version
	OS         string             `msgpack:"o,omitempty"`  // operating system family
	Device     string             `msgpack:"d,omitempty"`  // desktop, mobile, tablet
	Params     map[string]string  `msgpack:"ps,omitempty"` // ep.* string parameters
	NumParams  map[string]float64 `msgpack:"pn,omitempty"` // epn.* numeric parameters
	UserProps  map[string]string  `msgpack:"up,omitempty"` // up.* / upn.* user properties, as text

	// Ecommerce (GA4's event parameters currency, value, tax, shipping,
	// transaction_id and items), taken out of Params and NumParams by the
	// agent. Amounts are in Currency as sent; an empty Currency means the
	// site's reporting currency.
	Currency      string  `msgpack:"cu,omitempty"` // ISO 4217 code, upper case
	Value         float64 `msgpack:"va,omitempty"` // value: the event's revenue (refund: the amount refunded)
	Tax           float64 `msgpack:"tx,omitempty"` // tax
	Shipping      float64 `msgpack:"sh,omitempty"` // shipping
	TransactionID string  `msgpack:"ti,omitempty"` // transaction_id
	Items         []Item  `msgpack:"it,omitempty"` // items, at most rules.MaxItems
}

// Item is one entry of an ecommerce event's items (GA4's item parameters;
// gtag.js sends them as pr1…prN strings). Item-scoped reports group by its
// dimensions; price and quantity are in the event's Currency.
type Item struct {
	ID            string  `msgpack:"i,omitempty"`  // item_id
	Name          string  `msgpack:"n,omitempty"`  // item_name
	Brand         string  `msgpack:"b,omitempty"`  // item_brand
	Category      string  `msgpack:"c,omitempty"`  // item_category
	Category2     string  `msgpack:"c2,omitempty"` // item_category2
	Category3     string  `msgpack:"c3,omitempty"` // item_category3
	Category4     string  `msgpack:"c4,omitempty"` // item_category4
	Category5     string  `msgpack:"c5,omitempty"` // item_category5
	Variant       string  `msgpack:"va,omitempty"` // item_variant
	ListID        string  `msgpack:"li,omitempty"` // item_list_id
	ListName      string  `msgpack:"ln,omitempty"` // item_list_name
	PromotionName string  `msgpack:"pn,omitempty"` // promotion_name
	Affiliation   string  `msgpack:"af,omitempty"` // affiliation
	Coupon        string  `msgpack:"cp,omitempty"` // coupon
	Price         float64 `msgpack:"pr,omitempty"` // price of one unit
	Discount      float64 `msgpack:"ds,omitempty"` // discount of one unit
	Quantity      int64   `msgpack:"q,omitempty"`  // quantity; 0 when not sent (counts as 1)
}

// Texts lists the item's text fields with GA4's parameter names, in a
// fixed order: the edge rules check and repair each.
func (it *Item) Texts() [14]ItemText {
	return [14]ItemText{
		{"item_id", &it.ID}, {"item_name", &it.Name}, {"item_brand", &it.Brand},
		{"item_category", &it.Category}, {"item_category2", &it.Category2}, {"item_category3", &it.Category3},
		{"item_category4", &it.Category4}, {"item_category5", &it.Category5}, {"item_variant", &it.Variant},
		{"item_list_id", &it.ListID}, {"item_list_name", &it.ListName}, {"promotion_name", &it.PromotionName},
		{"affiliation", &it.Affiliation}, {"coupon", &it.Coupon},
	}
}

// ItemText is one text field of an Item: its GA4 name and value.
type ItemText struct {
	Name  string
	Value *string
}

// Units is the item's quantity as GA4 counts it: 1 when not sent.
func (it *Item) Units() int64 {
	if it.Quantity == 0 {
		return 1
	}
	return it.Quantity
}

// Commerce reports whether e carries ecommerce data.
func (e *Event) Commerce() bool {
	return e.Currency != "" || e.Value != 0 || e.Tax != 0 || e.Shipping != 0 || e.TransactionID != "" || len(e.Items) > 0
}

// Batch is one shipped queue segment. (AgentID, Seq) identifies it for ever:
// Seq increases by one per segment of an agent, and a resent segment carries
// exactly the same events.
type Batch struct {
	Version uint8   `msgpack:"ver"`
	AgentID string  `msgpack:"a"`
	Seq     uint64  `msgpack:"q"`
	Created int64   `msgpack:"c"` // when the agent sealed the segment, Unix microseconds
	Events  []Event `msgpack:"e"`
}
