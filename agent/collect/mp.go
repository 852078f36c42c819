package collect

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/avila-analytics/avila/protocol/rules"
)

// GA4 Measurement Protocol limits beyond the gtag.js ones.
const (
	maxMPEvents = 25 // events per request
	// DefaultMaxMPBodyBytes is GA4's limit on a Measurement Protocol body
	// (130 kB): 25 events of 25 parameters do not fit in 16 KiB.
	DefaultMaxMPBodyBytes = 130_000
	// mpMaxPast is how far back timestamp_micros may reach, as in GA4.
	mpMaxPast = 72 * time.Hour
	// mpMaxFuture tolerates a sender's clock running ahead of the agent's.
	mpMaxFuture = 15 * time.Minute
)

// GA4's validation codes, as /debug/mp/collect reports them.
const (
	CodeValueInvalid       = rules.CodeValueInvalid
	CodeValueRequired      = rules.CodeValueRequired
	CodeNameInvalid        = rules.CodeNameInvalid
	CodeNameReserved       = rules.CodeNameReserved
	CodeValueOutOfBounds   = rules.CodeValueOutOfBounds
	CodeExceededMaxEntites = rules.CodeExceededMaxEntities
)

// ValidationMessage is one broken rule, in GA4's validationMessages shape.
type ValidationMessage struct {
	FieldPath      string `json:"fieldPath"`
	Description    string `json:"description"`
	ValidationCode string `json:"validationCode"`
}

func (m ValidationMessage) String() string {
	if m.FieldPath == "" {
		return fmt.Sprintf("%s (%s)", m.Description, m.ValidationCode)
	}
	return fmt.Sprintf("%s: %s (%s)", m.FieldPath, m.Description, m.ValidationCode)
}

// mpPayload is the Measurement Protocol JSON body. Fields GA4 defines that
// reports do not use are accepted and ignored.
type mpPayload struct {
	ClientID       *string                    `json:"client_id"`
	UserID         *string                    `json:"user_id"`
	TimestampMicro json.RawMessage            `json:"timestamp_micros"`
	UserProperties map[string]json.RawMessage `json:"user_properties"`
	Consent        *mpConsent                 `json:"consent"`
	Events         []json.RawMessage          `json:"events"`

	AppInstanceID      json.RawMessage `json:"app_instance_id"`
	NonPersonalizedAds json.RawMessage `json:"non_personalized_ads"`
	UserLocation       json.RawMessage `json:"user_location"`
	IPOverride         json.RawMessage `json:"ip_override"`
	Device             json.RawMessage `json:"device"`
	UserData           json.RawMessage `json:"user_data"`
	ValidationBehavior json.RawMessage `json:"validation_behavior"`
}

type mpConsent struct {
	AdUserData        string `json:"ad_user_data"`
	AdPersonalization string `json:"ad_personalization"`
	AnalyticsStorage  string `json:"analytics_storage"`
	AdStorage         string `json:"ad_storage"`
}

type mpEvent struct {
	Name   *string                    `json:"name"`
	Params map[string]json.RawMessage `json:"params"`
	// shared: Params' values are slices of a string's bytes, never
	// written (readPlainMPPayload), so the text read from them may share
	// those bytes (scalarOf).
	shared bool
	// plain: Params were read by jsonReader.plainParams, so each value is
	// a plain string (plainJSONString) in its quotes, a number in JSON's
	// grammar, true or false (plainScalar).
	plain bool
}

// MPRequest is a Measurement Protocol body whose request-level fields passed
// validation, as hits ready for the privacy step.
type MPRequest struct {
	// Hits are the events that passed validation.
	Hits []Hit
	// Rejected holds, for each event that broke a rule, the validation code
	// of the first rule it broke.
	Rejected []string
	// Denied: consent.analytics_storage is DENIED, so client_id and
	// user_id must not identify the visitor.
	Denied bool
	// Granted: consent.analytics_storage is GRANTED, so they may whatever
	// the site's identity policy. Neither: the policy decides. GA4's
	// ad_user_data and ad_personalization concern advertising, not
	// analytics identifiers, and do not change the identity.
	Granted bool
}

// ParseMP parses and validates a Measurement Protocol body for
// measurementID at now. It returns every rule broken. The request is nil
// when the body as a whole breaks a rule (JSON, client_id, user_id,
// consent, timestamp, user properties, the number of events); otherwise it
// holds the events that passed and, in Rejected, one entry per event that
// did not.
func ParseMP(measurementID string, body []byte, now time.Time) (*MPRequest, []ValidationMessage) {
	return parseMP(measurementID, body, now, true)
}

// parseMP is ParseMP; with plain, a payload of the commonest shape
// (readPlainMPPayload) is read without encoding/json, which otherwise scans
// every byte twice (once to find the object's end, once to decode it) and
// each event a third time.
func parseMP(measurementID string, body []byte, now time.Time, plain bool) (*MPRequest, []ValidationMessage) {
	var msgs []ValidationMessage
	add := func(path, code, format string, args ...any) {
		msgs = append(msgs, ValidationMessage{FieldPath: path, Description: fmt.Sprintf(format, args...), ValidationCode: code})
	}
	var p mpPayload
	var events []mpEvent // p.Events decoded, when read plain
	ok := false
	if plain {
		// One copy of the body for all its strings, instead of one
		// allocation for each id, name and parameter value read.
		p, events, ok = readPlainMPPayload(string(body))
	}
	if !ok {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			add(jsonErrorPath(err), CodeValueInvalid, "Unable to parse Measurement Protocol JSON payload. %s", describeJSONError(err))
			return nil, msgs
		}
		if dec.More() {
			add("", CodeValueInvalid, "Unable to parse Measurement Protocol JSON payload. Data after the JSON object.")
			return nil, msgs
		}
	}
	req := &MPRequest{}
	var base Hit
	base.MeasurementID = measurementID
	switch {
	case p.ClientID == nil || *p.ClientID == "":
		add("client_id", CodeValueRequired, "Measurement requires a client_id.")
	default:
		base.ClientID = *p.ClientID
	}
	if p.UserID != nil {
		if n := utf8.RuneCountInString(*p.UserID); n > 256 {
			add("user_id", CodeValueOutOfBounds, "user_id has %d characters; the limit is 256.", n)
		}
		base.UserID = *p.UserID
	}
	if p.Consent != nil {
		// In one fixed order, so that two bad values give their messages in the
		// same order on every request.
		for _, f := range [...]struct{ path, v string }{
			{"consent.ad_user_data", p.Consent.AdUserData}, {"consent.ad_personalization", p.Consent.AdPersonalization},
			{"consent.analytics_storage", p.Consent.AnalyticsStorage}, {"consent.ad_storage", p.Consent.AdStorage},
		} {
			if f.v != "" && f.v != "GRANTED" && f.v != "DENIED" {
				add(f.path, CodeValueInvalid, "Consent value %s is not GRANTED or DENIED.", quote(f.v))
			}
		}
		req.Denied = p.Consent.AnalyticsStorage == "DENIED"
		req.Granted = p.Consent.AnalyticsStorage == "GRANTED"
	}
	if ts, msg := mpTimestamp(p.TimestampMicro, now); msg != "" {
		add("timestamp_micros", CodeValueInvalid, "%s", msg)
	} else {
		base.TimeMicros = ts
	}
	base.UserProps = mpUserProps(p.UserProperties, add)

	broken := len(msgs) > 0 // a rule of the request as a whole
	switch n := len(p.Events); {
	case n == 0:
		add("events", CodeValueRequired, "Measurement requires at least one event.")
		broken = true
	case n > maxMPEvents:
		add("events", CodeExceededMaxEntites, "A maximum of %d events can be specified per request; got %d.", maxMPEvents, n)
		broken = true
	default:
		req.Hits = make([]Hit, 0, n) // a Hit is large: grown, it would be copied over and over
		for i, raw := range p.Events {
			h := base
			before := len(msgs)
			var ev *mpEvent
			if events != nil {
				ev = &events[i]
			}
			if mpEventHit(&h, i, raw, ev, add) {
				req.Hits = append(req.Hits, h)
			} else {
				req.Rejected = append(req.Rejected, msgs[before].ValidationCode)
			}
		}
	}
	if broken {
		return nil, msgs
	}
	return req, msgs
}

// mpTimestamp checks timestamp_micros: absent means "now" (0); else a
// number within GA4's window.
func mpTimestamp(raw json.RawMessage, now time.Time) (int64, string) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, ""
	}
	s := strings.Trim(string(raw), `"`) // GA4 accepts the number as a string too
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("timestamp_micros %s is not an integer number of microseconds.", quote(string(raw)))
	}
	t := time.UnixMicro(ts)
	switch {
	case t.Before(now.Add(-mpMaxPast)):
		return 0, fmt.Sprintf("timestamp_micros is more than %d hours in the past.", int(mpMaxPast.Hours()))
	case t.After(now.Add(mpMaxFuture)):
		return 0, "timestamp_micros is in the future."
	}
	return ts, ""
}

// mpUserProps reads user_properties: {"name": {"value": string|number}}.
func mpUserProps(props map[string]json.RawMessage, add func(path, code, format string, args ...any)) map[string]string {
	if len(props) == 0 {
		return nil
	}
	if len(props) > maxUserProps {
		add("user_properties", CodeExceededMaxEntites, "A maximum of %d user properties can be specified; got %d (rule %s).", maxUserProps, len(props), rules.UserPropCount.Code)
		return nil
	}
	out := make(map[string]string, len(props))
	for _, name := range sortedKeys(props) {
		path := "user_properties." + name
		if !checkMPName(path, "", "User property", name, rules.UserPropName, add) {
			continue
		}
		if rules.ReservedUserProp(name) {
			add(path, CodeNameReserved, "User property name %s is reserved (rule %s).", quote(name), rules.NameReserved.Code)
			continue
		}
		var v struct {
			Value json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(props[name], &v); err != nil {
			add(path, CodeValueInvalid, "User property must be an object with a value field.")
			continue
		}
		s, ok, isText := scalar(v.Value)
		switch {
		case !ok:
			add(path+".value", CodeValueInvalid, "User property value must be a string or a number.")
		case isText && rules.UserPropValue(path+".value", s) != nil:
			add(path+".value", CodeValueOutOfBounds, "User property value has %d characters; the limit is %d (rule %s).",
				utf8.RuneCountInString(s), rules.MaxUserPropValueLen, rules.UserPropValueLength.Code)
		default:
			out[name] = s
		}
	}
	return out
}

// mpEventHit fills h from events[i] (raw, or decoded when it was read
// already); false when the event broke a rule.
func mpEventHit(h *Hit, i int, raw json.RawMessage, decoded *mpEvent, add func(path, code, format string, args ...any)) bool {
	broke := false
	addE := func(path, code, format string, args ...any) {
		broke = true
		add(path, code, format, args...)
	}
	path, params := mpEventPath(i)
	var ev mpEvent
	if decoded != nil {
		ev = *decoded
	} else {
		var err error
		if ev, err = decodeMPEvent(raw); err != nil {
			addE(path, CodeValueInvalid, "Event at index %d is not an object of name and params: %s", i, describeJSONError(err))
			return false
		}
	}
	switch {
	case ev.Name == nil || *ev.Name == "":
		addE(path+".name", CodeValueRequired, "Event at index %d has no name (rule %s).", i, rules.EventNameRequired.Code)
	case checkMPName(path, ".name", "Event", *ev.Name, rules.EventName, addE):
		if rules.ReservedEventName(*ev.Name) {
			addE(path+".name", CodeNameReserved, "Event at index %d has reserved name %s (rule %s).", i, quote(*ev.Name), rules.NameReserved.Code)
		}
		h.Name = *ev.Name
	}
	if len(ev.Params) > maxEventParams {
		addE(path+".params", CodeExceededMaxEntites, "Event at index %d has %d params; the limit is %d (rule %s).", i, len(ev.Params), maxEventParams, rules.ParamCount.Code)
		return false
	}
	var names [maxEventParams]string // ev.Params has no more (checked above)
	for _, name := range appendSortedKeys(names[:0], ev.Params) {
		// The parameter's path, for a message: built only for one.
		ppath := func() string { return params + name }
		if !checkMPName(params, name, "Parameter", name, rules.ParamName, addE) {
			continue
		}
		val := ev.Params[name]
		if name == "items" {
			items, perr := parseJSONItems(ppath(), val)
			if perr != nil {
				addE(perr.Param, perrCode(perr), "%s.", perr.Reason)
				continue
			}
			h.commerce.Items = items
			continue
		}
		var s string
		var ok, isText bool
		if ev.plain {
			s, ok, isText = plainScalar(val, ev.shared)
		} else {
			s, ok, isText = scalarOf(val, ev.shared)
		}
		if !ok {
			addE(ppath(), CodeValueInvalid, "Parameter value must be a string, number or boolean.")
			continue
		}
		if isText && name != "page_location" && name != "page_referrer" && name != "page_title" {
			if v := rules.ParamValue(name, s); v != nil {
				addE(ppath(), v.Rule.GA4, "Parameter value has %d characters; the limit is %d (rule %s).",
					utf8.RuneCountInString(s), v.Rule.Limit, v.Rule.Code)
				continue
			}
		}
		if !mpSpecialParam(h, name, s, params, addE) {
			continue
		}
		if isText || s == "true" || s == "false" {
			if h.Params == nil {
				h.Params = map[string]string{}
			}
			h.Params[name] = s
			continue
		}
		f, _ := strconv.ParseFloat(s, 64)
		if h.NumParams == nil {
			h.NumParams = map[string]float64{}
		}
		h.NumParams[name] = f
	}
	if perr := takeCommerce(h, params); perr != nil {
		addE(perr.Param, perrCode(perr), "%s.", perr.Reason)
	}
	return !broke
}

// perrCode is GA4's validation code for a refusal.
func perrCode(perr *ParamError) string {
	if perr.Rule != nil {
		return perr.Rule.GA4
	}
	return CodeValueInvalid
}

// mpSpecialParam maps the parameters GA4 reads as page and session fields
// onto h; it returns true when name is an ordinary parameter to keep.
// params is the prefix of the parameter's path in a message.
func mpSpecialParam(h *Hit, name, s, params string, add func(path, code, format string, args ...any)) bool {
	switch name {
	case "page_location":
		h.Page = s
	case "page_referrer":
		h.Referrer = s
	case "page_title":
		h.Title = s
	case "language":
		h.Language = strings.ToLower(s)
	case "screen_resolution":
		h.Screen = s
	case "session_id", "engagement_time_msec":
		// A JSON number arrives as scalar's text ("1.764e+09" for
		// 1764000000): any integral value in range counts, as GA4 reads it.
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			if f, ferr := strconv.ParseFloat(s, 64); ferr == nil && f == math.Trunc(f) && f >= 0 && f < 1<<53 {
				n, err = int64(f), nil
			}
		}
		if err != nil || n < 0 {
			add(params+name, CodeValueInvalid, "%s must be a non-negative integer; got %s.", name, quote(s))
			return false
		}
		if name == "session_id" {
			h.SessionID = n
		} else {
			h.EngageMs = n
		}
	default:
		return true
	}
	return false
}

// mpEventPaths are the message paths of each event a request may hold
// and of its parameters: events[i] and events[i].params.
var mpEventPaths = func() (p [maxMPEvents][2]string) {
	for i := range p {
		p[i][0] = fmt.Sprintf("events[%d]", i)
		p[i][1] = p[i][0] + ".params."
	}
	return p
}()

// mpEventPath is the path of event i in messages, and the prefix of its
// parameters' paths.
func mpEventPath(i int) (event, params string) {
	if i < len(mpEventPaths) {
		return mpEventPaths[i][0], mpEventPaths[i][1]
	}
	event = fmt.Sprintf("events[%d]", i)
	return event, event + ".params."
}

// checkMPName checks a name's rules (check: rules.EventName, ParamName or
// UserPropName), pattern and reserved prefixes. The name's path in a
// message is prefix+suffix, joined only for a message.
func checkMPName(prefix, suffix, what, name string, check func(field, name string) *rules.Violation, add func(path, code, format string, args ...any)) bool {
	if v := check(name, name); v != nil {
		path := prefix + suffix
		if v.Rule.Limit > 0 {
			add(path, v.Rule.GA4, "%s name %s has %d characters; the limit is %d (rule %s).",
				what, quote(name), utf8.RuneCountInString(name), v.Rule.Limit, v.Rule.Code)
		} else {
			add(path, v.Rule.GA4, "%s name %s: %s.", what, quote(name), v.Reason())
		}
		return false
	}
	if p := rules.ReservedPrefix(name); p != "" {
		add(prefix+suffix, CodeNameReserved, "%s name %s starts with the reserved prefix %s (rule %s).", what, quote(name), quote(p), rules.NameReserved.Code)
		return false
	}
	if !rules.ValidName(name) {
		add(prefix+suffix, CodeNameInvalid, "%s name %s must start with a letter and hold only letters, digits and underscores (rule %s).", what, quote(name), rules.NamePattern.Code)
		return false
	}
	return true
}

// scalar renders a JSON string, finite number or boolean as text; isText
// is true for strings. null and other types are not scalars. The common
// shapes (a string without escapes, a number, true, false) are read
// directly; anything else goes through json.Unmarshal, which says the
// same of them.
func scalar(raw json.RawMessage) (s string, ok, isText bool) { return scalarOf(raw, false) }

// scalarOf is scalar; with shared, raw is never written (mpEvent.shared),
// and the text of a string without escapes is raw's bytes, not a copy.
func scalarOf(raw json.RawMessage, shared bool) (s string, ok, isText bool) {
	raw = trimJSONSpace(raw)
	if len(raw) == 0 {
		return "", false, false
	}
	// What json.Unmarshal decodes into is declared in its branch alone: it
	// escapes, so declared for every call it would cost an allocation each.
	switch raw[0] {
	case '"':
		if n := len(raw); n >= 2 && raw[n-1] == '"' && plainJSONString(raw[1:n-1]) {
			if shared && n > 2 {
				return unsafe.String(&raw[1], n-2), true, true
			}
			return string(raw[1 : n-1]), true, true
		}
		var t string
		if err := json.Unmarshal(raw, &t); err != nil {
			return "", false, false
		}
		return t, true, true
	case 't', 'f':
		switch string(raw) { // as strconv.FormatBool of what json.Unmarshal gives
		case "true":
			return "true", true, false
		case "false":
			return "false", true, false
		}
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return "", false, false
		}
		return strconv.FormatBool(b), true, false
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if shared && shortInteger(raw) {
			// What FormatFloat would write: the same digits.
			return unsafe.String(&raw[0], len(raw)), true, false
		}
		f, ok := jsonFloat(raw)
		if !ok || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", false, false
		}
		return strconv.FormatFloat(f, 'g', -1, 64), true, false
	}
	return "", false, false
}

// plainScalar is scalarOf of a value jsonReader.plainParams read
// (mpEvent.plain): a string's text is found plain already, so it is taken
// as it is; any other value is scalarOf's.
func plainScalar(raw json.RawMessage, shared bool) (s string, ok, isText bool) {
	n := len(raw)
	if n < 2 || raw[0] != '"' {
		return scalarOf(raw, shared)
	}
	if shared && n > 2 {
		return unsafe.String(&raw[1], n-2), true, true
	}
	return string(raw[1 : n-1]), true, true
}

// shortInteger reports whether raw is a JSON integer of at most 6 digits
// (optionally negative, no leading zero): strconv.FormatFloat(f, 'g', -1,
// 64) writes it back as raw itself (from 10^6 on it writes an exponent).
func shortInteger(raw []byte) bool {
	d := raw
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || len(d) > 6 || (d[0] == '0' && len(d) > 1) {
		return false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// jsonFloat reads a JSON number as json.Unmarshal reads it into a float64.
func jsonFloat(raw []byte) (float64, bool) {
	if jsonNumber(raw) {
		f, err := strconv.ParseFloat(string(raw), 64)
		return f, err == nil
	}
	var f float64
	err := json.Unmarshal(raw, &f)
	return f, err == nil
}

// trimJSONSpace drops the white space JSON allows around a value (space,
// tab, new line, carriage return): no other.
func trimJSONSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// plainJSONString reports whether b, the inside of a JSON string's
// quotes, decodes to itself: no escape, quote or control character, and
// valid UTF-8 (json.Unmarshal replaces invalid bytes).
//
// Eight bytes at a time while they are printable ASCII without a quote or
// backslash (each such run is valid UTF-8 on its own); the rest, from the
// first word that is not, byte by byte, and with utf8.Valid when a byte
// of it is not ASCII.
func plainJSONString(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b)
		q, bs := x^(ones*'"'), x^(ones*'\\')
		// A byte's high bit set in the sum: it is not ASCII, or below 0x20,
		// or a quote or backslash (the classic zero-byte test on x^q, exact
		// as to whether any byte matched).
		if (x|(x-ones*0x20)&^x|(q-ones)&^q|(bs-ones)&^bs)&highs != 0 {
			break
		}
		b = b[8:]
	}
	var or byte // the bytes' high bits: none set, the rest is ASCII, so valid
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' {
			return false
		}
		or |= c
	}
	return or < utf8.RuneSelf || utf8.Valid(b)
}

// jsonNumber reports whether b is a number in JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func jsonNumber(b []byte) bool {
	digits := func(i int) int { // the index after the digits at i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return false
		}
		i = j
	}
	return i == len(b)
}

func firstByte(raw json.RawMessage) byte {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func sortedKeys[V any](m map[string]V) []string {
	return appendSortedKeys(make([]string, 0, len(m)), m)
}

// appendSortedKeys is sortedKeys into dst's array when it has room: an
// array on the caller's stack spares the allocation (slices.Sort, unlike
// sort.Strings, does not make the slice escape).
func appendSortedKeys[V any](dst []string, m map[string]V) []string {
	start := len(dst)
	for k := range m {
		dst = append(dst, k)
	}
	slices.Sort(dst[start:])
	return dst
}

// jsonErrorPath names the field a decoding error is about, when known.
func jsonErrorPath(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return strings.Trim(f, `"`)
	}
	return ""
}

// describeJSONError says what encoding/json disliked, without echoing input.
func describeJSONError(err error) string {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		return fmt.Sprintf("Field %s must be %s, not a JSON %s.", quote(te.Field), jsonType(te.Type.String()), te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("Malformed JSON at byte %d: %s.", se.Offset, se.Error())
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "Cannot find field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + "."
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "The body is empty or the JSON ends early."
	}
	return err.Error()
}

func jsonType(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case strings.HasPrefix(goType, "map["), strings.HasPrefix(goType, "*collect.mp"), strings.HasPrefix(goType, "collect.mp"):
		return "an object"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	}
	return "a " + goType
}
