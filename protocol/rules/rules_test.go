package rules

import (
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/avila-analytics/avila/protocol"
)

func validEvent() protocol.Event {
	return protocol.Event{
		Site: 1, TimeMicros: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC).UnixMicro(), Name: "page_view", Visitor: 9,
		Host: "shop.example", Path: "/products/42?utm_source=news", Title: "Product 42 — Shop", Referrer: "https://news.example/today",
		Language: "en-us", Screen: "1920x1080", Country: "DE", City: "Köln", Browser: "Chrome", BrowserVer: "131", OS: "Linux", Device: "desktop",
		Params: map[string]string{"plan": "pro", "label": "Grüße"}, NumParams: map[string]float64{"value": 9.5},
		UserProps: map[string]string{"tier": "gold"},
	}
}

func TestCodesUniqueAndDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range All {
		if r.Code == "" || r.GA4 == "" || r.Doc == "" || seen[r.Code] {
			t.Fatalf("rule %+v: code empty or repeated, or no GA4 code or doc", r)
		}
		seen[r.Code] = true
		if byCode(r.Code) != r {
			t.Fatalf("byCode(%q) is not the rule", r.Code)
		}
	}
	if len(All) > 32 {
		t.Fatalf("%d rules do not fit Repairs' 32 bits", len(All))
	}
}

// Each broken value: Check names the rule; Repair fixes it (and says so)
// or refuses with the same rule.
func TestCheckAndRepair(t *testing.T) {
	euro101 := strings.Repeat("€", 101)
	f := func(name string, mutate func(e *protocol.Event), rule *Rule, check func(t *testing.T, e *protocol.Event)) {
		t.Helper()
		t.Run(name, func(t *testing.T) {
			e := validEvent()
			mutate(&e)
			v := Check(&e)
			if v == nil || v.Rule != rule {
				t.Fatalf("Check = %v, want rule %s", v, rule.Code)
			}
			if !strings.Contains(v.Error(), rule.Code) {
				t.Fatalf("message %q does not name the rule", v.Error())
			}
			done, rv := Repair(&e)
			if rule.Action == ActRefuse && rule != ParamValueLength && rule != UserPropValueLength && rule != ItemValueLength {
				if rv == nil || rv.Rule != rule {
					t.Fatalf("Repair = %v, want refusal by %s", rv, rule.Code)
				}
				return
			}
			if rv != nil || !done.has(rule) {
				t.Fatalf("Repair = %v, %q; want repaired by %s", rv, done.Codes(), rule.Code)
			}
			if v := Check(&e); v != nil {
				t.Fatalf("after repair Check = %v", v)
			}
			if check != nil {
				check(t, &e)
			}
		})
	}
	f("no name", func(e *protocol.Event) { e.Name = "" }, EventNameRequired, nil)
	f("long name", func(e *protocol.Event) { e.Name = strings.Repeat("n", 41) }, EventNameLength, nil)
	f("name invalid utf8", func(e *protocol.Event) { e.Name = "a\xffb" }, NameEncoding, nil)
	f("name NUL", func(e *protocol.Event) { e.Name = "a\x00b" }, NameEncoding, nil)
	f("param name NUL", func(e *protocol.Event) { e.Params["a\x00"] = "x" }, NameEncoding, nil)
	f("param name invalid", func(e *protocol.Event) { e.NumParams["\xc3"] = 1 }, NameEncoding, nil)
	f("param name empty", func(e *protocol.Event) { e.Params[""] = "x" }, ParamNameRequired, nil)
	f("param name long", func(e *protocol.Event) { e.Params[strings.Repeat("p", 41)] = "x" }, ParamNameLength, nil)
	f("user property name long", func(e *protocol.Event) { e.UserProps[strings.Repeat("u", 25)] = "x" }, UserPropNameLength, nil)
	f("too many params", func(e *protocol.Event) {
		for i := range 24 {
			e.Params[strings.Repeat("k", i+1)] = "v"
		}
	}, ParamCount, nil)
	f("too many user properties", func(e *protocol.Event) {
		for i := range 25 {
			e.UserProps[strings.Repeat("k", i+1)] = "v"
		}
	}, UserPropCount, nil)
	f("NaN", func(e *protocol.Event) { e.NumParams["value"] = math.NaN() }, ParamNumber, nil)
	f("ancient", func(e *protocol.Event) { e.TimeMicros = 0 }, EventTime, nil)

	f("title of 301 characters", func(e *protocol.Event) { e.Title = strings.Repeat("é", 301) }, PageTitleLength, func(t *testing.T, e *protocol.Event) {
		if e.Title != strings.Repeat("é", 300) {
			t.Fatalf("title %q, want cut to 300 characters", e.Title)
		}
	})
	f("path over 1000", func(e *protocol.Event) { e.Path = "/" + strings.Repeat("p", 1000) }, PageLocationLength, func(t *testing.T, e *protocol.Event) {
		if len(e.Path) != 1000 {
			t.Fatalf("path of %d, want 1000", len(e.Path))
		}
	})
	f("path of 1000 4-byte characters", func(e *protocol.Event) { e.Path = strings.Repeat("😀", 1000) }, TextBytes, func(t *testing.T, e *protocol.Event) {
		if len(e.Path) != 2000 || !utf8.ValidString(e.Path) {
			t.Fatalf("path of %d bytes, want 2000 of valid UTF-8", len(e.Path))
		}
	})
	f("referrer over 420", func(e *protocol.Event) { e.Referrer = "https://r.example/" + strings.Repeat("r", 500) }, PageReferrerLength, nil)
	f("language over 100", func(e *protocol.Event) { e.Language = strings.Repeat("l", 101) }, FieldLength, nil)
	f("screen over 100", func(e *protocol.Event) { e.Screen = strings.Repeat("1", 101) }, FieldLength, nil)
	f("host over 253", func(e *protocol.Event) { e.Host = strings.Repeat("h", 254) }, HostLength, nil)
	f("title invalid utf8", func(e *protocol.Event) { e.Title = "caf\xe9" }, InvalidUTF8, func(t *testing.T, e *protocol.Event) {
		if e.Title != "caf\uFFFD" {
			t.Fatalf("title %q, want the byte replaced", e.Title)
		}
	})
	f("param value invalid utf8", func(e *protocol.Event) { e.Params["plan"] = "\xff" }, InvalidUTF8, nil)
	f("title NUL", func(e *protocol.Event) { e.Title = "a\x00b" }, NulByte, func(t *testing.T, e *protocol.Event) {
		if e.Title != "ab" {
			t.Fatalf("title %q, want NUL dropped", e.Title)
		}
	})
	f("user property NUL", func(e *protocol.Event) { e.UserProps["tier"] = "\x00gold" }, NulByte, nil)
	f("param value grown past 100", func(e *protocol.Event) { e.Params["plan"] = euro101 }, ParamValueLength, nil)
	f("user property value grown past 36", func(e *protocol.Event) { e.UserProps["tier"] = strings.Repeat("g", 37) }, UserPropValueLength, nil)

	purchase := func(e *protocol.Event) {
		e.Name, e.Currency, e.Value, e.TransactionID = "purchase", "EUR", 30, "T-1"
		e.Items = []protocol.Item{{ID: "SKU_1", Price: 10, Quantity: 3}}
	}
	f("201 items", func(e *protocol.Event) {
		purchase(e)
		e.Items = make([]protocol.Item, 201)
		for i := range e.Items {
			e.Items[i].ID = "x"
		}
	}, ItemCount, nil)
	f("item without id or name", func(e *protocol.Event) { purchase(e); e.Items[0].ID = "" }, ItemRequired, nil)
	f("item price NaN", func(e *protocol.Event) { purchase(e); e.Items[0].Price = math.NaN() }, ItemNumber, nil)
	f("negative quantity", func(e *protocol.Event) { purchase(e); e.Items[0].Quantity = -1 }, ItemNumber, nil)
	f("currency of 4 letters", func(e *protocol.Event) { purchase(e); e.Currency = "EURO" }, CurrencyCode, nil)
	f("currency with digits", func(e *protocol.Event) { purchase(e); e.Currency = "E1R" }, CurrencyCode, nil)
	f("value infinite", func(e *protocol.Event) { purchase(e); e.Value = math.Inf(1) }, ParamNumber, nil)
	f("item name over 100", func(e *protocol.Event) { purchase(e); e.Items[0].Name = euro101 }, ItemValueLength, func(t *testing.T, e *protocol.Event) {
		if e.Items[0].Name != strings.Repeat("€", 100) {
			t.Fatalf("item name %q, want cut to 100 characters", e.Items[0].Name)
		}
	})
	f("item brand NUL", func(e *protocol.Event) { purchase(e); e.Items[0].Brand = "a\x00b" }, NulByte, func(t *testing.T, e *protocol.Event) {
		if e.Items[0].Brand != "ab" {
			t.Fatalf("brand %q, want NUL dropped", e.Items[0].Brand)
		}
	})
	f("transaction id invalid utf8", func(e *protocol.Event) { purchase(e); e.TransactionID = "T\xff" }, InvalidUTF8, nil)
}

func TestCurrency(t *testing.T) {
	for _, ok := range []string{"EUR", "usd", "Chf"} {
		if v := Currency("cu", ok); v != nil {
			t.Fatalf("Currency(%q) = %v", ok, v)
		}
	}
	if got := NormalizeCurrency("usd"); got != "USD" {
		t.Fatalf("NormalizeCurrency(usd) = %q", got)
	}
	for _, bad := range []string{"", "EU", "EURO", "E R", "€UR", "12\x003"} {
		if v := Currency("cu", bad); v == nil || v.Rule != CurrencyCode {
			t.Fatalf("Currency(%q) = %v, want rule currency_code", bad, v)
		}
	}
}

func TestValidEventUntouched(t *testing.T) {
	e := validEvent()
	e.Title = strings.Repeat("€", 300) // 900 bytes: GA4 counts characters
	e.Path = "/" + strings.Repeat("p", 999)
	done, v := Repair(&e)
	if done != 0 || v != nil || Check(&e) != nil {
		t.Fatalf("valid event: repairs %q, violation %v", done.Codes(), v)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = Repair(&e); _ = Check(&e) }); allocs != 0 {
		t.Fatalf("Repair and Check of a valid event allocate %v times, want 0", allocs)
	}
}

func TestEdgeChecks(t *testing.T) {
	f := func(v *Violation, want *Rule) {
		t.Helper()
		if (v == nil) != (want == nil) || v != nil && v.Rule != want {
			t.Fatalf("got %v, want %v", v, want)
		}
	}
	f(EventName("en", "page_view"), nil)
	f(EventName("en", strings.Repeat("é", 40)), nil)
	f(EventName("en", strings.Repeat("é", 41)), EventNameLength)
	f(ParamName("ep.x", "x\xff"), NameEncoding)
	f(UserPropName("up.x", strings.Repeat("u", 25)), UserPropNameLength)
	f(ParamValue("ep.x", strings.Repeat("€", 100)), nil)
	f(ParamValue("ep.x", strings.Repeat("€", 101)), ParamValueLength)
	f(UserPropValue("up.x", strings.Repeat("v", 37)), UserPropValueLength)
}

func BenchmarkRepairValid(b *testing.B) {
	e := validEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, v := Repair(&e); v != nil {
			b.Fatal(v)
		}
	}
}

func BenchmarkCheckValid(b *testing.B) {
	e := validEvent()
	b.ReportAllocs()
	for b.Loop() {
		if v := Check(&e); v != nil {
			b.Fatal(v)
		}
	}
}

// byCode returns the rule with code, or nil.
func byCode(code string) *Rule {
	for _, r := range All {
		if r.Code == code {
			return r
		}
	}
	return nil
}
