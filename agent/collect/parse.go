package collect

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/avila-analytics/avila/protocol/rules"
)

// GA4 limits a hit is checked against are protocol/rules'; breaking one
// of its refusals is a 400 that names the rule.
const (
	maxEventParams      = rules.MaxEventParams // ep.* and epn.* together
	maxUserProps        = rules.MaxUserProps   // up.* and upn.* together
	maxUserPropValueLen = rules.MaxUserPropValueLen
)

// Hit is one gtag.js event as sent, before privacy and enrichment. Only
// what reports need is kept; parameters gtag.js sends for Google's own use
// (gtm, _p, _s …) are checked where they are numbers and otherwise ignored.
type Hit struct {
	MeasurementID string // tid
	ClientID      string // cid
	UserID        string // uid
	SessionID     int64  // sid: session start, Unix seconds
	SessionNum    int32  // sct
	Engaged       bool   // seg=1
	SessionStart  bool   // _ss
	FirstVisit    bool   // _fv
	NewSession    bool   // _nsi: the first hit under a new session id
	EngageMs      int64  // _et
	Name          string // en
	Page          string // dl: page URL, unscrubbed
	Referrer      string // dr: referrer URL, unscrubbed
	Title         string // dt
	Language      string // ul
	Screen        string // sr
	Consent       string // gcs, e.g. G111; "" when not sent
	ConsentDetail string // gcd, e.g. 13q3q3q2q5: consent defaults and updates
	// Cookieless: analytics storage is denied by other means than gcs (MP
	// consent, a DNT/GPC policy), so cid and uid must not be used.
	Cookieless bool
	// Granted: analytics storage is granted by other means than gcs/gcd
	// (Measurement Protocol consent.analytics_storage GRANTED).
	Granted    bool
	TimeMicros int64 // event time sent by the client (MP timestamp_micros); 0: the agent's clock

	Params    map[string]string  // ep.*
	NumParams map[string]float64 // epn.*
	UserProps map[string]string  // up.* and upn.*, as text

	commerce commerce // cu, items and the ecommerce parameters (commerce.go)

	line int // body line the event came from; 0 for the query string alone
	// server: sent by server code (Measurement Protocol), so the request's
	// address and user agent are the server's, not a person's: no geo,
	// device or bot verdict comes from them, as with GA4.
	server bool
	// doNotTrack: the browser sent DNT: 1 or Sec-GPC: 1; the site's policy
	// (or the agent's --dnt) decides what the hit becomes.
	doNotTrack bool
}

// AnalyticsDenied reports whether analytics storage is denied: by gcs
// (G1x0), or, when gcs is absent, by gcd, or because Cookieless is set.
// Then cookies (cid) and uid must not identify the visitor.
func (h *Hit) AnalyticsDenied() bool {
	return h.analyticsConsent() == consentDenied
}

// ParamError is a hit refused because of one parameter; its message names
// the parameter and, in a multi-event body, the event's line.
type ParamError struct {
	Line   int    // 1-based line of the body; 0 for the query string alone
	Param  string // e.g. "sid", "epn.value"
	Reason string
	Rule   *rules.Rule // the protocol/rules rule broken; nil for a rule of the wire format
}

func (e *ParamError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("event on body line %d: %s: %s", e.Line, e.Param, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.Param, e.Reason)
}

// ParseGtag parses a gtag.js request: the URL's query string and, for a POST,
// the body, which holds one event per line (each line a query string) whose
// parameters replace the query string's of the same name. Blank lines are
// skipped; a body with none left means the query string is the one event.
// Any error is a *ParamError.
func ParseGtag(rawQuery string, body []byte) ([]Hit, error) {
	return appendGtag(nil, nil, rawQuery, body)
}

// appendGtag is ParseGtag into dst's array when it is large enough: the
// hits are dst[:0] and the events after; their parameter maps come from
// maps (nil: new ones). On error it returns nil.
func appendGtag(dst []Hit, maps *paramMaps, rawQuery string, body []byte) ([]Hit, error) {
	// One arena holds the unescaped text of the query string and of every
	// line: unescaping never lengthens text, so it never grows.
	buf := newQueryBuf(len(rawQuery) + len(body))
	base, err := buf.parse(rawQuery)
	if err != nil {
		return nil, &ParamError{Param: "query string", Reason: describeQueryError(err)}
	}
	hits := dst[:0]
	// The body is copied into a string once, and its lines are parsed from
	// that string: one allocation per request rather than one per line.
	// Text taken as it is from a line then shares that string, which, like
	// the arena, is never reused by a later request.
	text := string(body)
	if len(text) > 0 {
		// A line per event: sized once, as a Hit is large to copy (up to
		// gtag.js's batches; a body of blank lines does not size it).
		if n := min(strings.Count(text, "\n")+1, maxPooledHits); cap(hits) < n {
			hits = make([]Hit, 0, n)
		}
	}
	lineNo := 0
	// Each line's parameters, read before the next is parsed; its arena
	// follows the query string's text in the same array.
	lines := queryBuf{arena: buf.arena[len(buf.arena):]}
	for len(text) > 0 {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		lineNo++
		line = strings.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		over, err := lines.parse(line)
		if err != nil {
			clear(hits) // nothing of the request stays in dst's array
			return nil, &ParamError{Line: lineNo, Param: "event line", Reason: describeQueryError(err)}
		}
		// Parsed in place: a Hit is large to copy.
		hits = slices.Grow(hits, 1)[:len(hits)+1]
		h := &hits[len(hits)-1]
		if perr := parseHit(h, hitParams{over: over, base: base}, maps); perr != nil {
			clear(hits) // nothing of the request stays in dst's array
			perr.Line = lineNo
			return nil, perr
		}
		h.line = lineNo
	}
	if len(hits) == 0 {
		hits = slices.Grow(hits, 1)[:1]
		if perr := parseHit(&hits[0], hitParams{over: &query{}, base: base}, maps); perr != nil {
			clear(hits)
			return nil, perr
		}
	}
	return hits, nil
}

// hitParams are one event's parameters: a body line's (over) replace the
// query string's (base) of the same name. Read in place, so a 20-line POST
// copies no map per line. The shapes tell which kinds of keys each holds: a
// hit is searched for custom parameters (ep.*, epn.*, up.*, upn.*) or items
// (pr1 …) only in the maps that have some.
type hitParams struct {
	over, base *query
}

// get returns the first value of the known parameter in slot i (a
// knownSlot) and whether it was sent.
func (p hitParams) get(i int) (string, bool) {
	if s, ok := p.over.get(i); ok {
		return s, true
	}
	return p.base.get(i)
}

// source is the query whose value of the known parameter in slot i the
// hit reads: the line's when it was sent there, else the query string's.
func (p hitParams) source(i int) *query {
	if p.over.sent&(1<<i) != 0 {
		return p.over
	}
	return p.base
}

// language is ul in lower case, lowered once per query.
func (p hitParams) language() string {
	q := p.source(pUL)
	if !q.lowered {
		q.lowerUL, q.lowered = strings.ToLower(q.known[pUL]), true
	}
	return q.lowerUL
}

// value is get's value alone: "" when not sent.
func (p hitParams) value(i int) string {
	s, _ := p.get(i)
	return s
}

// all yields every parameter of the maps once, a line's over the query
// string's, of the maps that hold keys of a kind (count: how many a shape
// has): the caller still checks each key's kind.
func (p hitParams) all(count func(queryShape) int) iter.Seq2[string, []string] {
	return func(yield func(k string, v []string) bool) {
		if count(p.over.shape) > 0 {
			for _, o := range p.over.other {
				if !yield(o.key, o.vals) {
					return
				}
			}
		}
		if count(p.base.shape) == 0 {
			return
		}
		for _, o := range p.base.other {
			if p.over.find(o.key) >= 0 {
				continue
			}
			if !yield(o.key, o.vals) {
				return
			}
		}
	}
}

// dottedKeys and itemKeys are the counts hitParams.all selects maps by.
func dottedKeys(s queryShape) int { return s.dotted }
func itemKeys(s queryShape) int   { return s.items }

// parseHit reads one event's parameters into h, overwritten whole, its
// parameter maps taken from maps (nil: new ones). The first value of a
// repeated parameter counts.
func parseHit(h *Hit, v hitParams, maps *paramMaps) *ParamError {
	*h = Hit{}
	if ver, ok := v.get(pV); ok && ver != "2" {
		return &ParamError{Param: "v", Reason: fmt.Sprintf("protocol version %s is not supported, want 2", quote(ver))}
	}
	if h.MeasurementID = v.value(pTID); h.MeasurementID == "" {
		return &ParamError{Param: "tid", Reason: "missing measurement id (G-…)"}
	}
	h.Name = v.value(pEN)
	if v := rules.EventName("en", h.Name); v != nil {
		return ruleError(v)
	}
	h.ClientID, h.UserID = v.value(pCID), v.value(pUID)
	h.Page, h.Referrer, h.Title = v.value(pDL), v.value(pDR), v.value(pDT)
	h.Language, h.Screen, h.Consent = v.language(), v.value(pSR), v.value(pGCS)
	h.ConsentDetail = v.value(pGCD)

	var err *ParamError
	if h.SessionID, err = intParam(v, pSID, "sid", 64); err != nil {
		return err
	}
	sct, err := intParam(v, pSCT, "sct", 32)
	if err != nil {
		return err
	}
	h.SessionNum = int32(sct)
	if h.EngageMs, err = intParam(v, pET, "_et", 64); err != nil {
		return err
	}
	if _, err = intParam(v, pS, "_s", 64); err != nil {
		return err
	}
	switch seg := v.value(pSEG); seg {
	case "", "0":
	case "1":
		h.Engaged = true
	default:
		return &ParamError{Param: "seg", Reason: fmt.Sprintf("want 0 or 1, got %s", quote(seg))}
	}
	h.SessionStart, h.FirstVisit, h.NewSession = flag(v, pSS), flag(v, pFV), flag(v, pNSI)
	commerceParams, err := parseParams(h, v, maps)
	if err != nil {
		return err
	}
	if err := parseGtagItems(h, v); err != nil {
		return err
	}
	if err := takeCommerceOf(h, "ep.", commerceParams); err != nil {
		return err
	}
	return nil
}

// parseParams reads ep.*, epn.*, up.* and upn.*.
// commerce is whether an event parameter has a name takeCommerce reads.
func parseParams(h *Hit, v hitParams, maps *paramMaps) (commerce bool, _ *ParamError) {
	var events, users int
	for k, vals := range v.all(dottedKeys) {
		prefix, name, ok := strings.Cut(k, ".")
		if !ok {
			continue
		}
		val := ""
		if len(vals) > 0 {
			val = vals[0]
		}
		switch prefix {
		case "ep", "epn":
			events++
			commerce = commerce || isCommerceParam(name)
			if events > maxEventParams {
				return false, &ParamError{Param: k, Reason: fmt.Sprintf("more than %d event parameters (ep.*, epn.*), GA4's limit (rule %s)", maxEventParams, rules.ParamCount.Code)}
			}
			if v := rules.ParamName(k, name); v != nil {
				return false, ruleError(v)
			}
			if prefix == "ep" {
				if v := rules.ParamValue(k, val); v != nil {
					return false, ruleError(v)
				}
				if h.Params == nil {
					h.Params = maps.strings()
				}
				h.Params[name] = val
				continue
			}
			f, err := number(k, val)
			if err != nil {
				return false, err
			}
			if h.NumParams == nil {
				h.NumParams = maps.numbers()
			}
			h.NumParams[name] = f
		case "up", "upn":
			users++
			if users > maxUserProps {
				return false, &ParamError{Param: k, Reason: fmt.Sprintf("more than %d user properties (up.*, upn.*), GA4's limit (rule %s)", maxUserProps, rules.UserPropCount.Code)}
			}
			if v := rules.UserPropName(k, name); v != nil {
				return false, ruleError(v)
			}
			if prefix == "upn" {
				f, err := number(k, val)
				if err != nil {
					return false, err
				}
				val = strconv.FormatFloat(f, 'g', -1, 64)
			} else if v := rules.UserPropValue(k, val); v != nil {
				return false, ruleError(v)
			}
			if h.UserProps == nil {
				h.UserProps = map[string]string{}
			}
			h.UserProps[name] = val
		}
	}
	return commerce, nil
}

// ruleError is a refusal by one of protocol/rules' rules.
func ruleError(v *rules.Violation) *ParamError {
	return &ParamError{Param: fieldName(v.Field), Reason: v.Reason(), Rule: v.Rule}
}

// fieldName is a parameter's name for a message: as sent when it is short
// printable ASCII, else quoted and cut short, so an answer never holds
// invalid UTF-8, control characters or a long input.
func fieldName(s string) string {
	if len(s) > 64 {
		return quote(s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return quote(s)
		}
	}
	return s
}

// number parses a finite decimal number.
func number(param, s string) (float64, *ParamError) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, &ParamError{Param: param, Reason: fmt.Sprintf("not a number: %s", quote(s))}
	}
	return f, nil
}

// intParam parses an optional non-negative integer parameter of the given
// bit size; absent or empty is 0.
// The value is parsed once per query (query.ints).
func intParam(v hitParams, slot int, name string, bits int) (int64, *ParamError) {
	q := v.source(slot)
	if q.parsed&(1<<slot) != 0 {
		return q.ints[slot], nil
	}
	s := q.known[slot]
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, bits)
	if err != nil || n < 0 {
		return 0, &ParamError{Param: name, Reason: fmt.Sprintf("want a non-negative integer, got %s", quote(s))}
	}
	q.ints[slot], q.parsed = n, q.parsed|1<<slot
	return n, nil
}

// flag reports a GA4 presence flag (_ss=1, _fv=1) in slot i: set unless
// "0".
func flag(v hitParams, i int) bool {
	s, ok := v.get(i)
	return ok && s != "0"
}

// quote renders a sender's value for an error message, cut short so a reply
// never echoes a large input.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// describeQueryError says what url.ParseQuery disliked without echoing a
// whole query string.
func describeQueryError(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "semicolon") {
		return "semicolon separator; parameters must be separated by &"
	}
	var esc url.EscapeError
	if errors.As(err, &esc) {
		return fmt.Sprintf("bad percent-escape %s", quote(string(esc)))
	}
	return "malformed: " + msg
}
