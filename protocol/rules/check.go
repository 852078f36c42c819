package rules

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/avila-analytics/avila/protocol"
)

// MinEventTime: earlier event times are clock garbage (and would create
// ancient partitions).
var MinEventTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Violation is a broken rule: which, where, and what was found.
type Violation struct {
	Rule   *Rule
	Field  string // the event field or wire parameter, e.g. "title", "param \"plan\""
	Detail string // what was found, for people; never echoes a long input
}

// Reason is the detail followed by the rule's code, for 4xx answers.
func (v *Violation) Reason() string { return v.Detail + " (rule " + v.Rule.Code + ")" }

func (v *Violation) Error() string { return v.Field + ": " + v.Reason() }

func violation(r *Rule, field, format string, args ...any) *Violation {
	return &Violation{Rule: r, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// text is one text field of an Event with its limits.
type text struct {
	name  string
	s     *string
	limit int   // characters
	rule  *Rule // the length rule
}

// texts lists e's text fields. The array lives on the caller's stack.
func texts(e *protocol.Event) [13]text {
	return [13]text{
		{"path", &e.Path, MaxPageLocationLen, PageLocationLength},
		{"referrer", &e.Referrer, MaxPageReferrerLen, PageReferrerLength},
		{"title", &e.Title, MaxPageTitleLen, PageTitleLength},
		{"host", &e.Host, MaxHostLen, HostLength},
		{"language", &e.Language, MaxShortLen, FieldLength},
		{"screen", &e.Screen, MaxShortLen, FieldLength},
		{"country", &e.Country, MaxShortLen, FieldLength},
		{"region", &e.Region, MaxShortLen, FieldLength},
		{"city", &e.City, MaxShortLen, FieldLength},
		{"browser", &e.Browser, MaxShortLen, FieldLength},
		{"browser version", &e.BrowserVer, MaxShortLen, FieldLength},
		{"os", &e.OS, MaxShortLen, FieldLength},
		{"device", &e.Device, MaxShortLen, FieldLength},
	}
}

// Check returns the first rule e breaks, or nil. It is the aggregator's
// guard; the agent calls it (through Repair) before it answers, so an event
// it accepted always passes. Event time against a clock is CheckTime's.
func Check(e *protocol.Event) *Violation {
	if passes(e) {
		return nil
	}
	return check(e)
}

// minEventMicros is MinEventTime in Unix microseconds.
var minEventMicros = MinEventTime.UnixMicro()

// passes reports, in one pass over e, that e breaks no rule of Check's in
// the way nearly every event does not: its texts and names ASCII without
// NUL within their limits in bytes (so in characters), its numbers
// finite, without ecommerce data. false: check tells (which rule comes
// first, or none).
func passes(e *protocol.Event) bool {
	return passesOwn(e) && passesShared(e)
}

// passesShared is passes for the texts of e that the events of one
// request usually share: host, language, screen, place and user agent.
func passesShared(e *protocol.Event) bool {
	return short(e.Host, MaxHostLen) && short(e.Language, MaxShortLen) && short(e.Screen, MaxShortLen) &&
		short(e.Country, MaxShortLen) && short(e.Region, MaxShortLen) && short(e.City, MaxShortLen) &&
		short(e.Browser, MaxShortLen) && short(e.BrowserVer, MaxShortLen) && short(e.OS, MaxShortLen) &&
		short(e.Device, MaxShortLen)
}

// passesOwn is passes without passesShared: the event's own scalars and
// texts, then each parameter map's entries (SharedTexts.passesOwn takes
// the same parts, with maps that passed last taken at once). Most events
// have no parameters of a kind: the test of a map's length spares its
// call.
func passesOwn(e *protocol.Event) bool {
	return passesScalars(e) && (len(e.Params) == 0 || paramsPass(e.Params)) &&
		(len(e.NumParams) == 0 || numParamsPass(e.NumParams)) && (len(e.UserProps) == 0 || userPropsPass(e.UserProps))
}

// passesScalars is passesOwn without the parameter maps' entries.
func passesScalars(e *protocol.Event) bool {
	if n := e.Name; n == "" || !short(n, MaxEventNameLen) {
		return false
	}
	if e.TimeMicros < minEventMicros || len(e.Params)+len(e.NumParams) > MaxEventParams || len(e.UserProps) > MaxUserProps || e.Commerce() {
		return false
	}
	return short(e.Path, MaxPageLocationLen) && short(e.Referrer, MaxPageReferrerLen) && short(e.Title, MaxPageTitleLen)
}

// paramsPass is passesOwn for the entries of an event's Params.
func paramsPass(params map[string]string) bool {
	for k, v := range params {
		if k == "" || !short(k, MaxParamNameLen) || !short(v, MaxParamValueLen) {
			return false
		}
	}
	return true
}

// numParamsPass is passesOwn for the entries of an event's NumParams.
func numParamsPass(params map[string]float64) bool {
	for k, f := range params {
		if k == "" || !short(k, MaxParamNameLen) || math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
	}
	return true
}

// userPropsPass is passesOwn for the entries of an event's UserProps.
func userPropsPass(props map[string]string) bool {
	for k, v := range props {
		if k == "" || !short(k, MaxUserPropNameLen) || !short(v, MaxUserPropValueLen) {
			return false
		}
	}
	return true
}

// short reports whether s is ASCII without NUL (plain) of at most limit
// bytes: a text or name that passes its rules.
func short(s string, limit int) bool { return len(s) <= limit && (s == "" || plain(s)) }

// check is Check without its shortcut (passes).
func check(e *protocol.Event) *Violation {
	if v := checkEvent(e); v != nil {
		return v
	}
	for _, f := range texts(e) {
		if r := textRule(*f.s, f.limit, f.rule); r != nil {
			return textViolation(r, f.name, *f.s, f.limit)
		}
	}
	for k, v := range e.Params {
		if r := textRule(v, MaxParamValueLen, ParamValueLength); r != nil {
			return textViolation(r, "param "+quote(k), v, MaxParamValueLen)
		}
	}
	for k, v := range e.UserProps {
		if r := textRule(v, MaxUserPropValueLen, UserPropValueLength); r != nil {
			return textViolation(r, "user property "+quote(k), v, MaxUserPropValueLen)
		}
	}
	if r := textRule(e.TransactionID, MaxParamValueLen, ParamValueLength); r != nil {
		return textViolation(r, "transaction_id", e.TransactionID, MaxParamValueLen)
	}
	for i := range e.Items {
		for _, f := range e.Items[i].Texts() {
			if r := textRule(*f.Value, MaxItemValueLen, ItemValueLength); r != nil {
				return textViolation(r, itemField(i, f.Name), *f.Value, MaxItemValueLen)
			}
		}
	}
	return nil
}

// MaxItemQuantity bounds an item's quantity, so sums stay exact.
const MaxItemQuantity = 1_000_000_000

// checkCommerce checks an event's ecommerce fields: what Repair cannot fix.
func checkCommerce(e *protocol.Event) *Violation {
	if e.Currency != "" {
		if v := Currency("currency", e.Currency); v != nil {
			return v
		}
	}
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"value", e.Value}, {"tax", e.Tax}, {"shipping", e.Shipping}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return violation(ParamNumber, "param "+quote(f.name), "not a finite number")
		}
	}
	if n := len(e.Items); n > MaxItems {
		return violation(ItemCount, "items", "%d items, GA4 allows %d", n, MaxItems)
	}
	for i := range e.Items {
		if v := CheckItem(itemField(i, ""), &e.Items[i]); v != nil {
			return v
		}
	}
	return nil
}

// CheckItem checks what an item must have and its numbers; field prefixes
// the names in a violation (items[3]., pr4.).
func CheckItem(field string, it *protocol.Item) *Violation {
	if it.ID == "" && it.Name == "" {
		return violation(ItemRequired, field+"item_id", "an item needs an item_id or an item_name")
	}
	for _, f := range [...]struct {
		name string
		v    float64
	}{{"price", it.Price}, {"discount", it.Discount}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return violation(ItemNumber, field+f.name, "not a finite number")
		}
	}
	if it.Quantity < 0 || it.Quantity > MaxItemQuantity {
		return violation(ItemNumber, field+"quantity", "%d is outside 0..%d", it.Quantity, MaxItemQuantity)
	}
	return nil
}

// ItemValue checks an item parameter's text as sent.
func ItemValue(field, v string) *Violation {
	return valueLength(field, v, MaxItemValueLen, ItemValueLength)
}

// Currency checks a currency code as sent: three ASCII letters. Senders
// may use lower case; the agent stores it upper case (NormalizeCurrency).
func Currency(field, code string) *Violation {
	if len(code) != 3 {
		return violation(CurrencyCode, field, "%s is not a three-letter ISO 4217 code", quote(code))
	}
	for i := 0; i < 3; i++ {
		if c := code[i] | 0x20; c < 'a' || c > 'z' {
			return violation(CurrencyCode, field, "%s is not a three-letter ISO 4217 code", quote(code))
		}
	}
	return nil
}

// NormalizeCurrency is a valid code (Currency) in upper case.
func NormalizeCurrency(code string) string {
	b := []byte(code)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 0x20
		}
	}
	return string(b)
}

// itemField names item i's field name in a violation.
func itemField(i int, name string) string {
	return "items[" + strconv.Itoa(i) + "]." + name
}

// checkEvent checks what Repair cannot fix: names, counts, numbers, time.
func checkEvent(e *protocol.Event) *Violation { return checkEventFixes(e, nil) }

// valueFixes tells which parameter maps hold a value Repair changes (one
// textRule refuses as it is).
type valueFixes struct{ params, userProps bool }

// checkEventFixes is checkEvent; with fix, it also reads, in the same
// ranges over the maps as their names, which maps hold a value to repair,
// so Repair ranges over only those again.
func checkEventFixes(e *protocol.Event, fix *valueFixes) *Violation {
	if v := EventName("name", e.Name); v != nil {
		return v
	}
	if t := time.UnixMicro(e.TimeMicros); t.Before(MinEventTime) {
		return violation(EventTime, "time", "event time %s is before %s", t.UTC().Format(time.RFC3339), MinEventTime.Format(time.DateOnly))
	}
	if n := len(e.Params) + len(e.NumParams); n > MaxEventParams {
		return violation(ParamCount, "params", "%d parameters, GA4 allows %d", n, MaxEventParams)
	}
	if n := len(e.UserProps); n > MaxUserProps {
		return violation(UserPropCount, "user properties", "%d user properties, GA4 allows %d", n, MaxUserProps)
	}
	for k, val := range e.Params {
		if v := ParamName("param", k); v != nil {
			return v
		}
		if fix != nil && !fix.params && textRule(val, MaxParamValueLen, ParamValueLength) != nil {
			fix.params = true
		}
	}
	for k, f := range e.NumParams {
		if v := ParamName("param", k); v != nil {
			return v
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return violation(ParamNumber, "param "+quote(k), "not a finite number")
		}
	}
	for k, val := range e.UserProps {
		if v := UserPropName("user property", k); v != nil {
			return v
		}
		if fix != nil && !fix.userProps && textRule(val, MaxUserPropValueLen, UserPropValueLength) != nil {
			fix.userProps = true
		}
	}
	if e.Commerce() {
		return checkCommerce(e)
	}
	return nil
}

// CheckTime returns a violation when e's time is more than maxFuture ahead
// of now; a clock check of the aggregator's, beside Check.
func CheckTime(e *protocol.Event, now time.Time, maxFuture time.Duration) *Violation {
	if t := time.UnixMicro(e.TimeMicros); t.After(now.Add(maxFuture)) {
		return violation(EventTime, "time", "event time %s is more than %s ahead of the aggregator's clock", t.UTC().Format(time.RFC3339), maxFuture)
	}
	return nil
}

// EventName checks an event name as sent in field (en, name, n).
func EventName(field, name string) *Violation {
	if name == "" {
		return violation(EventNameRequired, field, "missing event name")
	}
	return checkName(field, name, MaxEventNameLen, EventNameLength, "event name")
}

// ParamName checks an event parameter's name; field names where it was
// sent (ep.x, params.x).
func ParamName(field, name string) *Violation {
	return checkName(field, name, MaxParamNameLen, ParamNameLength, "parameter name")
}

// UserPropName checks a user property's name.
func UserPropName(field, name string) *Violation {
	return checkName(field, name, MaxUserPropNameLen, UserPropNameLength, "user property name")
}

func checkName(field, name string, limit int, length *Rule, what string) *Violation {
	if name == "" {
		return violation(ParamNameRequired, field, "empty %s", what)
	}
	if !plain(name) {
		if !utf8.ValidString(name) {
			return violation(NameEncoding, field, "%s is not valid UTF-8", what)
		}
		if hasNUL(name) {
			return violation(NameEncoding, field, "%s contains a NUL character", what)
		}
	}
	if len(name) > limit { // only then can it have more than limit characters
		if n := utf8.RuneCountInString(name); n > limit {
			return violation(length, field, "%s has %d characters, GA4 allows %d", what, n, limit)
		}
	}
	return nil
}

// ParamValue checks a parameter's text value as sent (GA4 refuses longer
// ones). Invalid UTF-8 and NUL are Repair's.
func ParamValue(field, v string) *Violation {
	return valueLength(field, v, MaxParamValueLen, ParamValueLength)
}

// UserPropValue checks a user property's text value as sent.
func UserPropValue(field, v string) *Violation {
	return valueLength(field, v, MaxUserPropValueLen, UserPropValueLength)
}

func valueLength(field, v string, limit int, r *Rule) *Violation {
	if len(v) <= limit {
		return nil
	}
	if n := utf8.RuneCountInString(v); n > limit {
		return violation(r, field, "value has %d characters, GA4 allows %d", n, limit)
	}
	return nil
}

// textRule returns the rule a text value breaks, or nil: hygiene first, then
// its length in characters, then storage's byte bound. No allocation.
func textRule(s string, limit int, length *Rule) *Rule {
	if len(s) <= limit && plain(s) {
		return nil // ASCII without NUL within limit bytes: the common case
	}
	switch {
	case !utf8.ValidString(s):
		return InvalidUTF8
	case hasNUL(s):
		return NulByte
	case len(s) > limit && utf8.RuneCountInString(s) > limit:
		return length
	case len(s) > MaxTextBytes:
		return TextBytes
	}
	return nil
}

func textViolation(r *Rule, field, s string, limit int) *Violation {
	switch r {
	case InvalidUTF8:
		return violation(r, field, "not valid UTF-8")
	case NulByte:
		return violation(r, field, "contains a NUL character")
	case TextBytes:
		return violation(r, field, "%d bytes, limit %d", len(s), MaxTextBytes)
	}
	return violation(r, field, "%d characters, limit %d", utf8.RuneCountInString(s), limit)
}

// plain reports whether s is ASCII without NUL. It reads eight bytes at a
// time: a word is plain when no byte has its high bit set (ASCII) and no
// byte is zero. The last word overlaps the one before it when the length
// is not a multiple of eight; below eight bytes, two words of four do the
// same, and below four the bytes are read one by one. Every text field of
// every event passes here, at the agent and again at the aggregator.
func plain(s string) bool {
	n := len(s)
	if n >= 8 {
		const ones, highs = 0x0101010101010101, 0x8080808080808080
		// Without high bits, w-ones borrows into a byte's high bit only
		// where that byte was zero (a borrow from the byte below never
		// reaches a high bit, as no byte is above 0x7f).
		for i := 0; i+8 <= n; i += 8 {
			w := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[i:]), 8))
			if w&highs != 0 || (w-ones)&highs != 0 {
				return false
			}
		}
		w := binary.LittleEndian.Uint64(unsafe.Slice(unsafe.StringData(s[n-8:]), 8))
		return w&highs == 0 && (w-ones)&highs == 0
	}
	if n >= 4 {
		const ones, highs = 0x01010101, 0x80808080
		a := binary.LittleEndian.Uint32(unsafe.Slice(unsafe.StringData(s), 4))
		b := binary.LittleEndian.Uint32(unsafe.Slice(unsafe.StringData(s[n-4:]), 4))
		return (a|b)&highs == 0 && (a-ones)&highs == 0 && (b-ones)&highs == 0
	}
	for i := 0; i < n; i++ {
		if c := s[i]; c == 0 || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func hasNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}

// quote renders a name for a message, cut short.
func quote(s string) string {
	if len(s) > 48 {
		s = truncateBytes(s, 48) + "…"
	}
	return fmt.Sprintf("%q", s)
}
