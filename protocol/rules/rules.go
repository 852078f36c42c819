package rules

// Action is what the agent does with an input that breaks a rule.
type Action uint8

const (
	// ActRefuse: the hit is answered 4xx naming the rule (a Measurement
	// Protocol event is dropped and named in the validation answer, as GA4
	// does); nothing is stored.
	ActRefuse Action = iota
	// ActRepair: the value is fixed as GA4 fixes it, the hit is stored and
	// answered 2xx, and the repair is counted per rule.
	ActRepair
)

func (a Action) String() string {
	if a == ActRepair {
		return "repair"
	}
	return "refuse"
}

// Rule is one limit or hygiene rule.
type Rule struct {
	Code   string // stable name: 4xx reasons, metric labels, README
	GA4    string // GA4's validationCode for it (Measurement Protocol validation)
	Action Action
	Limit  int    // characters (or entries for counts); 0 when not a limit
	Doc    string // what the rule says, for people
}

// GA4's Measurement Protocol validation codes.
const (
	CodeValueInvalid        = "VALUE_INVALID"
	CodeValueRequired       = "VALUE_REQUIRED"
	CodeNameInvalid         = "NAME_INVALID"
	CodeNameReserved        = "NAME_RESERVED"
	CodeValueOutOfBounds    = "VALUE_OUT_OF_BOUNDS"
	CodeExceededMaxEntities = "EXCEEDED_MAX_ENTITIES"
)

// GA4's limits, in characters (Unicode code points) unless said otherwise.
const (
	MaxEventNameLen     = 40
	MaxEventParams      = 25 // string and numeric parameters of one event together
	MaxParamNameLen     = 40
	MaxParamValueLen    = 100
	MaxUserProps        = 25
	MaxUserPropNameLen  = 24
	MaxUserPropValueLen = 36
	MaxUserIDLen        = 256
	MaxPageLocationLen  = 1000 // Event.Path (GA4 counts the encoded URL)
	MaxPageReferrerLen  = 420
	MaxPageTitleLen     = 300
	MaxItems            = 200 // items of one ecommerce event
	MaxItemValueLen     = 100 // an item parameter's text, as event parameter values
	// Not GA4 limits: bounds of the agent's own fields and of what a
	// sender may put in ul and sr, so a row stays small.
	MaxHostLen   = 253 // a DNS name
	MaxShortLen  = 100 // language, screen, geo, browser, OS, device
	MaxTextBytes = 2000
)

// The rules. Codes are stable; never rename one.
var (
	EventNameRequired = &Rule{Code: "event_name_required", GA4: CodeValueRequired, Action: ActRefuse,
		Doc: "an event has a name"}
	EventNameLength = &Rule{Code: "event_name_length", GA4: CodeValueOutOfBounds, Action: ActRefuse, Limit: MaxEventNameLen,
		Doc: "event names have at most 40 characters"}
	NameEncoding = &Rule{Code: "name_encoding", GA4: CodeNameInvalid, Action: ActRefuse,
		Doc: "event, parameter and user property names are valid UTF-8 without NUL"}
	ParamCount = &Rule{Code: "param_count", GA4: CodeExceededMaxEntities, Action: ActRefuse, Limit: MaxEventParams,
		Doc: "an event has at most 25 parameters"}
	ParamNameRequired = &Rule{Code: "param_name_required", GA4: CodeValueRequired, Action: ActRefuse,
		Doc: "parameter and user property names are not empty"}
	ParamNameLength = &Rule{Code: "param_name_length", GA4: CodeValueOutOfBounds, Action: ActRefuse, Limit: MaxParamNameLen,
		Doc: "parameter names have at most 40 characters"}
	ParamValueLength = &Rule{Code: "param_value_length", GA4: CodeValueOutOfBounds, Action: ActRefuse, Limit: MaxParamValueLen,
		Doc: "parameter values have at most 100 characters"}
	ParamNumber = &Rule{Code: "param_number", GA4: CodeValueInvalid, Action: ActRefuse,
		Doc: "numeric parameters are finite numbers"}
	UserPropCount = &Rule{Code: "user_property_count", GA4: CodeExceededMaxEntities, Action: ActRefuse, Limit: MaxUserProps,
		Doc: "at most 25 user properties"}
	UserPropNameLength = &Rule{Code: "user_property_name_length", GA4: CodeValueOutOfBounds, Action: ActRefuse, Limit: MaxUserPropNameLen,
		Doc: "user property names have at most 24 characters"}
	UserPropValueLength = &Rule{Code: "user_property_value_length", GA4: CodeValueOutOfBounds, Action: ActRefuse, Limit: MaxUserPropValueLen,
		Doc: "user property values have at most 36 characters"}
	NamePattern = &Rule{Code: "name_pattern", GA4: CodeNameInvalid, Action: ActRefuse,
		Doc: "Measurement Protocol and t.js names start with a letter and hold only letters, digits and underscores"}
	NameReserved = &Rule{Code: "name_reserved", GA4: CodeNameReserved, Action: ActRefuse,
		Doc: "Measurement Protocol and t.js names avoid GA4's reserved names and prefixes (_, firebase_, ga_, google_, gtag.)"}
	ItemCount = &Rule{Code: "item_count", GA4: CodeExceededMaxEntities, Action: ActRefuse, Limit: MaxItems,
		Doc: "an ecommerce event has at most 200 items"}
	ItemRequired = &Rule{Code: "item_id_required", GA4: CodeValueRequired, Action: ActRefuse,
		Doc: "every item has an item_id or an item_name"}
	ItemValueLength = &Rule{Code: "item_value_length", GA4: CodeValueOutOfBounds, Action: ActRefuse, Limit: MaxItemValueLen,
		Doc: "item parameter values (item_id, item_name, item_brand, item_category…5, item_variant, list, promotion, affiliation, coupon) have at most 100 characters"}
	ItemNumber = &Rule{Code: "item_number", GA4: CodeValueInvalid, Action: ActRefuse,
		Doc: "item price and discount are finite numbers, quantity a whole number from 0 to 1000000000"}
	CurrencyCode = &Rule{Code: "currency_code", GA4: CodeValueInvalid, Action: ActRefuse,
		Doc: "currency is a three-letter ISO 4217 code (upper or lower case)"}
	EventTime = &Rule{Code: "event_time", GA4: CodeValueInvalid, Action: ActRefuse,
		Doc: "the event time is after 2000-01-01 and not ahead of the aggregator's clock by more than its --max-future"}

	PageLocationLength = &Rule{Code: "page_location_length", GA4: CodeValueOutOfBounds, Action: ActRepair, Limit: MaxPageLocationLen,
		Doc: "page paths are cut to 1000 characters"}
	PageReferrerLength = &Rule{Code: "page_referrer_length", GA4: CodeValueOutOfBounds, Action: ActRepair, Limit: MaxPageReferrerLen,
		Doc: "referrers are cut to 420 characters"}
	PageTitleLength = &Rule{Code: "page_title_length", GA4: CodeValueOutOfBounds, Action: ActRepair, Limit: MaxPageTitleLen,
		Doc: "page titles are cut to 300 characters"}
	HostLength = &Rule{Code: "host_length", GA4: CodeValueOutOfBounds, Action: ActRepair, Limit: MaxHostLen,
		Doc: "page host names are cut to 253 characters"}
	FieldLength = &Rule{Code: "field_length", GA4: CodeValueOutOfBounds, Action: ActRepair, Limit: MaxShortLen,
		Doc: "language (ul), screen (sr) and the agent's geo and device fields are cut to 100 characters"}
	TextBytes = &Rule{Code: "text_bytes", GA4: CodeValueOutOfBounds, Action: ActRepair, Limit: MaxTextBytes,
		Doc: "any text is cut to 2000 bytes (storage's bound; reached only by characters of 3 or 4 bytes)"}
	InvalidUTF8 = &Rule{Code: "invalid_utf8", GA4: CodeValueInvalid, Action: ActRepair,
		Doc: "invalid UTF-8 in values is replaced with U+FFFD"}
	NulByte = &Rule{Code: "nul_byte", GA4: CodeValueInvalid, Action: ActRepair,
		Doc: "NUL characters in values are dropped"}
)

// All lists every rule, refusals first, in a fixed order: metrics export
// them all from the start, and README's limits table follows it.
var All = []*Rule{
	EventNameRequired, EventNameLength, NameEncoding, ParamCount, ParamNameRequired, ParamNameLength,
	ParamValueLength, ParamNumber, UserPropCount, UserPropNameLength, UserPropValueLength, NamePattern, NameReserved,
	ItemCount, ItemRequired, ItemValueLength, ItemNumber, CurrencyCode, EventTime,
	PageLocationLength, PageReferrerLength, PageTitleLength, HostLength, FieldLength, TextBytes, InvalidUTF8, NulByte,
}
