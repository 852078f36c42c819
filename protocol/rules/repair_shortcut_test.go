package rules

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/avila-analytics/avila/protocol"
)

// oddText is a text of the kinds the rules tell apart: empty, plain ASCII
// (upper and lower case) just within and just past each limit, invalid
// UTF-8, NUL, characters of two, three and four bytes (past MaxTextBytes
// too), escapes left as sent.
func oddText(r *rand.Rand) string {
	limits := [...]int{MaxUserPropNameLen, MaxUserPropValueLen, MaxEventNameLen, MaxShortLen, MaxHostLen,
		MaxPageTitleLen, MaxPageReferrerLen, MaxPageLocationLen, MaxTextBytes}
	n := limits[r.IntN(len(limits))] + r.IntN(3) - 1
	switch r.IntN(14) {
	case 0:
		return ""
	case 1:
		return "page_view"
	case 2:
		return "Page_View"
	case 3:
		return strings.Repeat("a", n)
	case 4:
		return strings.Repeat("Z", n)
	case 5:
		return "caf\xe9"
	case 6:
		return "a\x00b"
	case 7:
		return strings.Repeat("é", n)
	case 8:
		return strings.Repeat("€", n)
	case 9:
		return strings.Repeat("𝄞", n/2)
	case 10:
		return "%zz+%41\xff"
	case 11:
		return strings.Repeat("ab\x00", r.IntN(40))
	case 12:
		return "_reserved"
	}
	b := make([]byte, r.IntN(60))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return string(b)
}

// plainText is a plain short text.
func plainText(r *rand.Rand) string {
	return [...]string{"", "a", "en-us", "Chrome", "scroll", "/blog/post-1", "DE", "Post 7 | Blog"}[r.IntN(8)]
}

// name is a name, mostly one that passes the rules.
func name(r *rand.Rand) string {
	if r.IntN(16) == 0 {
		return oddText(r)
	}
	return [...]string{"a", "link_domain", "percent_scrolled", "Plan", "x1", "value"}[r.IntN(6)]
}

func oddNumber(r *rand.Rand) float64 {
	return [...]float64{0, 1.5, -3, math.NaN(), math.Inf(1), math.Inf(-1), 1e300}[r.IntN(7)]
}

// nearLimit is a text on either side of limit characters, or one that
// breaks a hygiene rule.
func nearLimit(r *rand.Rand, limit int) string {
	switch r.IntN(8) {
	case 0:
		return strings.Repeat("a", limit)
	case 1:
		return strings.Repeat("A", limit+1)
	case 2:
		return strings.Repeat("é", limit)
	case 3:
		return strings.Repeat("é", limit+1)
	case 4:
		return strings.Repeat("€", limit) // past MaxTextBytes for the longer limits
	case 5:
		return "caf\xe9"
	case 6:
		return "a\x00"
	}
	return ""
}

// oddEvent is an event of texts, names, counts, numbers and times on both
// sides of every rule: plain; plain but for one field near its limit or
// broken; odd throughout.
func oddEvent(r *rand.Rand) protocol.Event {
	text := plainText
	if r.IntN(3) == 0 {
		text = oddText
	}
	e := protocol.Event{
		Site: 1, Name: name(r), Visitor: 7, TimeMicros: 1_765_000_000_000_000,
		Host: text(r), Path: text(r), Title: text(r), Referrer: text(r), Language: text(r), Screen: text(r),
		Country: text(r), Region: text(r), City: text(r), Browser: text(r), BrowserVer: text(r), OS: text(r), Device: text(r),
	}
	if r.IntN(16) == 0 {
		e.TimeMicros = [...]int64{0, minEventMicros - 1, minEventMicros}[r.IntN(3)]
	}
	count := func() int {
		if r.IntN(16) == 0 {
			return [...]int{MaxUserProps, MaxEventParams + 1}[r.IntN(2)]
		}
		return r.IntN(4)
	}
	if n := count(); n > 0 {
		e.Params = map[string]string{}
		for range n {
			e.Params[name(r)] = text(r)
		}
	}
	if n := count(); n > 0 {
		e.NumParams = map[string]float64{}
		for range n {
			f := 1.0
			if r.IntN(8) == 0 {
				f = oddNumber(r)
			}
			e.NumParams[name(r)] = f
		}
	}
	if n := count(); n > 0 {
		e.UserProps = map[string]string{}
		for range n {
			e.UserProps[name(r)] = text(r)
		}
	}
	if r.IntN(10) == 0 {
		e.Currency = [...]string{"", "EUR", "eu", "€€€"}[r.IntN(4)]
		e.Value = oddNumber(r)
		e.TransactionID = text(r)
		if r.IntN(2) == 0 {
			e.Items = []protocol.Item{{ID: text(r), Name: text(r), Price: oddNumber(r), Quantity: int64(r.IntN(3) - 1)}}
		}
	}
	if r.IntN(2) == 0 {
		oneOdd(r, &e)
	}
	return e
}

// oneOdd sets one field of e, or adds one entry, near its limit or broken.
func oneOdd(r *rand.Rand, e *protocol.Event) {
	fields := texts(e)
	switch i := r.IntN(len(fields) + 7); {
	case i < len(fields):
		*fields[i].s = nearLimit(r, fields[i].limit)
	case i == len(fields):
		e.Name = nearLimit(r, MaxEventNameLen)
	case i == len(fields)+1:
		e.Params = map[string]string{nearLimit(r, MaxParamNameLen): "v"}
	case i == len(fields)+2:
		e.Params = map[string]string{"k": nearLimit(r, MaxParamValueLen)}
	case i == len(fields)+3:
		e.UserProps = map[string]string{nearLimit(r, MaxUserPropNameLen): "v"}
	case i == len(fields)+4:
		e.UserProps = map[string]string{"k": nearLimit(r, MaxUserPropValueLen)}
	case i == len(fields)+5:
		e.NumParams = map[string]float64{nearLimit(r, MaxParamNameLen): 1}
	default:
		e.NumParams = map[string]float64{"k": oddNumber(r)}
	}
}

func cloneEvent(e protocol.Event) protocol.Event {
	c := e
	if e.Params != nil {
		c.Params = map[string]string{}
		for k, v := range e.Params {
			c.Params[k] = v
		}
	}
	if e.NumParams != nil {
		c.NumParams = map[string]float64{}
		for k, v := range e.NumParams {
			c.NumParams[k] = v
		}
	}
	if e.UserProps != nil {
		c.UserProps = map[string]string{}
		for k, v := range e.UserProps {
			c.UserProps[k] = v
		}
	}
	c.Items = append([]protocol.Item(nil), e.Items...)
	if e.Items == nil {
		c.Items = nil
	}
	return c
}

// Repair's shortcut (passes) changes nothing it answers: over events of
// every kind of text, name, count, number and time, Repair gives the
// repairs, the violation and the event the rules one by one (repair)
// give.
func TestRepairShortcut(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	shortcut, refused, repaired := 0, 0, 0
	for i := range 20_000 {
		e := oddEvent(r)
		fast, slow := cloneEvent(e), cloneEvent(e)
		gotDone, gotV := Repair(&fast)
		wantDone, wantV := repair(&slow)
		// Which violation comes first may follow the maps' order, which
		// differs from one range to the next: a refusal is compared as one.
		if gotDone != wantDone || (gotV == nil) != (wantV == nil) {
			t.Fatalf("event %d: Repair = %q, %v; the rules one by one %q, %v", i, gotDone.Codes(), gotV, wantDone.Codes(), wantV)
		}
		if d := cmp.Diff(slow, fast, cmpopts.EquateNaNs()); d != "" {
			t.Fatalf("event %d: Repair's event differs from the rules' one by one (-want +got):\n%s", i, d)
		}
		switch {
		case passes(&e):
			shortcut++
		case wantV != nil:
			refused++
		case wantDone != 0:
			repaired++
		}
	}
	// Each way through Repair is taken often.
	t.Logf("shortcut %d, refused %d, repaired %d", shortcut, refused, repaired)
	if shortcut < 2000 || refused < 2000 || repaired < 2000 {
		t.Fatalf("shortcut %d, refused %d, repaired %d of 20,000 events: the generator misses a way", shortcut, refused, repaired)
	}
}

// repairEveryMap is repair as it reads the parameter maps without
// valueFixes: every value of both maps through repairText.
func repairEveryMap(e *protocol.Event) (Repairs, *Violation) {
	if v := checkEvent(e); v != nil {
		return 0, v
	}
	var done Repairs
	for _, f := range texts(e) {
		*f.s = repairText(*f.s, f.limit, f.rule, &done)
	}
	for k, v := range e.Params {
		if nv := repairText(v, MaxParamValueLen, ParamValueLength, &done); nv != v {
			e.Params[k] = nv
		}
	}
	for k, v := range e.UserProps {
		if nv := repairText(v, MaxUserPropValueLen, UserPropValueLength, &done); nv != v {
			e.UserProps[k] = nv
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

// repair ranges over a parameter map again only when checkEventFixes
// found a value in it to repair: over events of every kind, it gives
// what repairing every value of both maps gives.
func TestRepairRangesOnlyMapsToFix(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	fixed := 0
	for i := range 20_000 {
		e := oddEvent(r)
		if r.IntN(2) == 0 { // a value to repair in one map, often alone
			m := map[string]string{"k": nearLimit(r, MaxParamValueLen), "ok": "v"}
			if r.IntN(2) == 0 {
				e.Params = m
			} else {
				e.UserProps = m
			}
		}
		got, want := cloneEvent(e), cloneEvent(e)
		gotDone, gotV := repair(&got)
		wantDone, wantV := repairEveryMap(&want)
		if gotDone != wantDone || (gotV == nil) != (wantV == nil) {
			t.Fatalf("event %d: repair = %q, %v; every value repaired %q, %v", i, gotDone.Codes(), gotV, wantDone.Codes(), wantV)
		}
		if d := cmp.Diff(want, got, cmpopts.EquateNaNs()); d != "" {
			t.Fatalf("event %d: repair's event differs (-every value +repair):\n%s", i, d)
		}
		if wantDone.has(ParamValueLength) || wantDone.has(UserPropValueLength) {
			fixed++
		}
	}
	if fixed < 1000 {
		t.Fatalf("only %d of 20,000 events had a parameter value repaired", fixed)
	}
}

// sharedRuns calls f with runs of events like a request's: each event's
// shared texts (host, language, screen, place, user agent) are mostly
// those of an earlier event of the run (the same values, equal copies,
// or one changed, plain or broken), its own texts, names and numbers of
// every kind, its parameter maps often an earlier event's. m is the
// run's. It fails when too few events met texts that passed before.
func sharedRuns(t *testing.T, f func(run, i int, m *SharedTexts, e protocol.Event)) {
	t.Helper()
	r := rand.New(rand.NewPCG(21, 22))
	shared := func(e *protocol.Event) []*string {
		return []*string{&e.Host, &e.Language, &e.Screen, &e.Country, &e.Region, &e.City, &e.Browser, &e.BrowserVer, &e.OS, &e.Device}
	}
	remembered, checked := 0, 0
	for run := range 2000 {
		var m SharedTexts
		var prev []protocol.Event
		for i := range 1 + r.IntN(20) {
			e := oddEvent(r)
			if len(prev) > 0 && r.IntN(4) != 0 {
				from := shared(&prev[r.IntN(len(prev))])
				for j, s := range shared(&e) {
					*s = *from[j]
					if r.IntN(3) == 0 {
						*s = strings.Clone(*s) // equal, not the same bytes
					}
				}
				if r.IntN(4) == 0 {
					*shared(&e)[r.IntN(10)] = [...]string{"", "x", "caf\xe9", "a\x00", strings.Repeat("a", MaxShortLen+1)}[r.IntN(5)]
				}
			}
			if len(prev) > 0 && r.IntN(3) == 0 {
				// The maps of an earlier event, as a decoder shares maps
				// written alike.
				p := &prev[r.IntN(len(prev))]
				e.Params, e.NumParams, e.UserProps = p.Params, p.NumParams, p.UserProps
			}
			prev = append(prev, e)
			if m.ok && passesShared(&e) {
				remembered++
			}
			checked++
			f(run, i, &m, e)
		}
	}
	if remembered < checked/10 {
		t.Fatalf("%d of %d events met texts that passed before: the generator misses the memo", remembered, checked)
	}
}

// SharedTexts.Repair gives what Repair gives over runs of events like a
// request's (sharedRuns).
func TestSharedTextsRepair(t *testing.T) {
	sharedRuns(t, func(run, i int, m *SharedTexts, e protocol.Event) {
		fast, slow := cloneEvent(e), cloneEvent(e)
		gotDone, gotV := m.Repair(&fast)
		wantDone, wantV := Repair(&slow)
		if gotDone != wantDone || (gotV == nil) != (wantV == nil) {
			t.Fatalf("run %d event %d: SharedTexts.Repair = %q, %v; Repair %q, %v", run, i, gotDone.Codes(), gotV, wantDone.Codes(), wantV)
		}
		if d := cmp.Diff(slow, fast, cmpopts.EquateNaNs()); d != "" {
			t.Fatalf("run %d event %d: SharedTexts.Repair's event differs from Repair's (-want +got):\n%s", run, i, d)
		}
	})
}

// SharedTexts.Check gives what Check gives over runs of events like a
// batch's (sharedRuns).
func TestSharedTextsCheck(t *testing.T) {
	sharedRuns(t, func(run, i int, m *SharedTexts, e protocol.Event) {
		// A refusal is check's either way; which rule it names first may
		// follow a map's order.
		if got, want := m.Check(&e), Check(&e); (got == nil) != (want == nil) {
			t.Fatalf("run %d event %d: SharedTexts.Check = %v; Check %v", run, i, got, want)
		}
	})
}

// passesOwn in parts (passesScalars and a function per map), as
// SharedTexts.passesOwn takes it, is passesOwn.
func TestPassesOwnInParts(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	passed := 0
	for i := range 20_000 {
		e := oddEvent(r)
		want := passesOwn(&e)
		got := passesScalars(&e) && (len(e.Params) == 0 || paramsPass(e.Params)) &&
			(len(e.NumParams) == 0 || numParamsPass(e.NumParams)) && (len(e.UserProps) == 0 || userPropsPass(e.UserProps))
		if got != want {
			t.Fatalf("event %d: in parts %v, passesOwn %v: %+v", i, got, want, e)
		}
		if want {
			passed++
		}
	}
	if passed < 1000 || passed > 19_000 {
		t.Fatalf("%d of 20,000 events passed: the generator misses a side", passed)
	}
}

// has reports whether rule was applied.
func (r Repairs) has(rule *Rule) bool {
	for i, x := range All {
		if x == rule {
			return r&(1<<i) != 0
		}
	}
	return false
}
