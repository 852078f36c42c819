package rules

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/avila-analytics/avila/protocol"
)

// Repairs is the set of rules a Repair applied, one bit per rule of All.
type Repairs uint32

func (r *Repairs) add(rule *Rule) {
	for i, x := range All {
		if x == rule {
			*r |= 1 << i
			return
		}
	}
}

// Each yields every rule applied, in All's order.
func (r Repairs) Each(yield func(*Rule) bool) {
	for i, x := range All {
		if r&(1<<i) != 0 && !yield(x) {
			return
		}
	}
}

// Codes lists the codes of the rules applied, comma-separated.
func (r Repairs) Codes() string {
	var b strings.Builder
	for rule := range r.Each {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(rule.Code)
	}
	return b.String()
}

// Repair fixes what GA4 fixes in e's values, in place: invalid UTF-8 is
// replaced with U+FFFD, NUL characters dropped, then text is cut to its limit
// in characters and to MaxTextBytes. It returns the rules applied, and the
// first rule e still breaks (names, counts, numbers, time: refusals), or
// nil. When it returns nil, Check(e) is nil too. A valid event is not
// changed and nothing is allocated.
func Repair(e *protocol.Event) (Repairs, *Violation) {
	// An event Check's shortcut passes breaks no rule and has nothing to
	// repair: every text is plain and within its limit, which repair
	// leaves as it is.
	if passes(e) {
		return 0, nil
	}
	return repair(e)
}

// SharedTexts is Repair (and Check) for the events of one request (or
// batch), one after another: they usually share their host, language,
// screen, place and user agent, and these texts, once found to pass, are
// compared with the last ones that did instead of being checked again.
// The zero value is ready; it holds the texts it compares with, so it
// should live no longer than the request.
type SharedTexts struct {
	ok                                     bool
	host, language, screen                 string
	country, region, city                  string
	browser, browserVer, operatingSys, dev string
	// The parameter maps that passed last (Check).
	params, userProps map[string]string
	numParams         map[string]float64
}

// Repair is Repair(e).
func (m *SharedTexts) Repair(e *protocol.Event) (Repairs, *Violation) {
	if passesOwn(e) && m.passesShared(e) {
		return 0, nil
	}
	return repair(e)
}

// Check is Check(e), for the events of one batch one after another (the
// aggregator's guard): a visitor's events follow each other and share
// their texts, which a decoder gives as the same strings.
func (m *SharedTexts) Check(e *protocol.Event) *Violation {
	if m.passesOwn(e) && m.passesShared(e) {
		return nil
	}
	return check(e)
}

// passesOwn is passesOwn(e), true at once for a parameter map that
// passed last: a decoder gives the events whose maps are written alike
// one map (protocol.EventDecoder), read, not changed, while they are
// checked.
func (m *SharedTexts) passesOwn(e *protocol.Event) bool {
	if !passesScalars(e) {
		return false
	}
	if len(e.Params) > 0 && !sameMap(e.Params, m.params) {
		if !paramsPass(e.Params) {
			return false
		}
		m.params = e.Params
	}
	if len(e.NumParams) > 0 && !sameMap(e.NumParams, m.numParams) {
		if !numParamsPass(e.NumParams) {
			return false
		}
		m.numParams = e.NumParams
	}
	if len(e.UserProps) > 0 && !sameMap(e.UserProps, m.userProps) {
		if !userPropsPass(e.UserProps) {
			return false
		}
		m.userProps = e.UserProps
	}
	return true
}

// sameMap reports whether a and b are the same map: a map value is a
// pointer to the map (what reflect.Value.UnsafePointer gives, without
// its call).
func sameMap[V any](a, b map[string]V) bool {
	return *(*unsafe.Pointer)(unsafe.Pointer(&a)) == *(*unsafe.Pointer)(unsafe.Pointer(&b))
}

// passesShared is passesShared(e), true at once when e's texts are those
// that passed last.
func (m *SharedTexts) passesShared(e *protocol.Event) bool {
	if m.ok && e.Host == m.host && e.Language == m.language && e.Screen == m.screen &&
		e.Country == m.country && e.Region == m.region && e.City == m.city &&
		e.Browser == m.browser && e.BrowserVer == m.browserVer && e.OS == m.operatingSys && e.Device == m.dev {
		return true
	}
	if !passesShared(e) {
		return false
	}
	*m = SharedTexts{
		ok: true, host: e.Host, language: e.Language, screen: e.Screen,
		country: e.Country, region: e.Region, city: e.City,
		browser: e.Browser, browserVer: e.BrowserVer, operatingSys: e.OS, dev: e.Device,
		params: m.params, userProps: m.userProps, numParams: m.numParams,
	}
	return true
}

// repair is Repair without its shortcut (passes).
func repair(e *protocol.Event) (Repairs, *Violation) {
	// The maps are ranged over again only when one of their values is
	// repaired: repairText leaves every other value as it is.
	var fix valueFixes
	if v := checkEventFixes(e, &fix); v != nil {
		return 0, v
	}
	var done Repairs
	for _, f := range texts(e) {
		*f.s = repairText(*f.s, f.limit, f.rule, &done)
	}
	if fix.params {
		for k, v := range e.Params {
			if nv := repairText(v, MaxParamValueLen, ParamValueLength, &done); len(nv) != len(v) || nv != v {
				e.Params[k] = nv
			}
		}
	}
	if fix.userProps {
		for k, v := range e.UserProps {
			if nv := repairText(v, MaxUserPropValueLen, UserPropValueLength, &done); len(nv) != len(v) || nv != v {
				e.UserProps[k] = nv
			}
		}
	}
	if e.TransactionID != "" {
		e.TransactionID = repairText(e.TransactionID, MaxParamValueLen, ParamValueLength, &done)
	}
	for i := range e.Items {
		for _, f := range e.Items[i].Texts() {
			if *f.Value != "" {
				*f.Value = repairText(*f.Value, MaxItemValueLen, ItemValueLength, &done)
			}
		}
	}
	return done, nil
}

// repairText returns s fixed to pass textRule, adding the rules applied.
func repairText(s string, limit int, length *Rule, done *Repairs) string {
	if textRule(s, limit, length) == nil {
		return s
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
		done.add(InvalidUTF8)
	}
	if hasNUL(s) {
		s = strings.ReplaceAll(s, "\x00", "")
		done.add(NulByte)
	}
	if len(s) > limit && utf8.RuneCountInString(s) > limit {
		s = truncateRunes(s, limit)
		done.add(length)
	}
	if len(s) > MaxTextBytes {
		s = truncateBytes(s, MaxTextBytes)
		done.add(TextBytes)
	}
	return s
}

// truncateRunes cuts valid UTF-8 s to at most n characters.
func truncateRunes(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// truncateBytes cuts s to at most n bytes at a character boundary.
func truncateBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
