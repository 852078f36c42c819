package collect

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseGtagGET(t *testing.T) {
	q := "v=2&tid=G-TEST1&gtm=45je&_p=1712&cid=111.222&uid=u-9&sid=1764000000&sct=3&seg=1&_s=2&_ss=1&_fv=1&_nsi=1&_et=1500" +
		"&en=page_view&dl=https%3A%2F%2Fshop.test%2Fcart%3Fid%3D1&dr=https%3A%2F%2Fsearch.test%2F&dt=Cart&ul=en-US&sr=1920x1080" +
		"&ep.method=card&epn.value=12.5&up.plan=pro&upn.age=42&gcs=G111&unknown_param=ignored&_ee=1"
	hits, err := ParseGtag(q, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Hit{{
		MeasurementID: "G-TEST1", ClientID: "111.222", UserID: "u-9", SessionID: 1764000000, SessionNum: 3,
		Engaged: true, SessionStart: true, FirstVisit: true, NewSession: true, EngageMs: 1500, Name: "page_view",
		Page: "https://shop.test/cart?id=1", Referrer: "https://search.test/", Title: "Cart", Language: "en-us", Screen: "1920x1080",
		Consent: "G111", Params: map[string]string{"method": "card"},
		UserProps: map[string]string{"plan": "pro", "age": "42"}, commerce: commerce{Value: 12.5},
	}}
	if diff := cmp.Diff(want, hits, cmp.AllowUnexported(Hit{})); diff != "" {
		t.Fatalf("hits differ (-want +got):\n%s", diff)
	}
}

func TestParseGtagPOSTMergesLines(t *testing.T) {
	q := "v=2&tid=G-TEST1&cid=1.2&sid=100&dl=https%3A%2F%2Fshop.test%2F&en=ignored_when_lines_set_it"
	body := "en=page_view&_et=10\n\n  \nen=click&ep.link=%2Fout&dl=https%3A%2F%2Fshop.test%2Fother\r\nen=scroll&sid=200\n"
	hits, err := ParseGtag(q, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		Name, Page, ClientID string
		SessionID, EngageMs  int64
		Params               map[string]string
		Line                 int
	}
	var g []got
	for _, h := range hits {
		g = append(g, got{h.Name, h.Page, h.ClientID, h.SessionID, h.EngageMs, h.Params, h.line})
	}
	want := []got{
		{"page_view", "https://shop.test/", "1.2", 100, 10, nil, 1},
		{"click", "https://shop.test/other", "1.2", 100, 0, map[string]string{"link": "/out"}, 4},
		{"scroll", "https://shop.test/", "1.2", 200, 0, nil, 5},
	}
	if diff := cmp.Diff(want, g); diff != "" {
		t.Fatalf("merged events differ (-want +got):\n%s", diff)
	}

	// A body of blank lines is the query string's own event.
	hits, err = ParseGtag(q, []byte("\n \r\n"))
	if err != nil || len(hits) != 1 || hits[0].Name != "ignored_when_lines_set_it" {
		t.Fatalf("blank body: %+v, %v", hits, err)
	}
}

func TestParseGtagErrors(t *testing.T) {
	f := func(query, body, want string) {
		t.Helper()
		hits, err := ParseGtag(query, []byte(body))
		if err == nil {
			t.Fatalf("ParseGtag(%q, %q) = %+v, want error %q", query, body, hits, want)
		}
		if _, ok := err.(*ParamError); !ok {
			t.Fatalf("error %T, want *ParamError", err)
		}
		if err.Error() != want {
			t.Fatalf("ParseGtag(%q, %q) error\n got %q\nwant %q", query, body, err, want)
		}
	}
	const ok = "tid=G-A&en=e"
	f("en=page_view", "", "tid: missing measurement id (G-…)")
	f("tid=G-A", "", "en: missing event name (rule event_name_required)")
	f("v=1&"+ok, "", `v: protocol version "1" is not supported, want 2`)
	f("v&"+ok, "", `v: protocol version "" is not supported, want 2`)
	f(ok+"&sid=abc", "", `sid: want a non-negative integer, got "abc"`)
	f(ok+"&sid=-5", "", `sid: want a non-negative integer, got "-5"`)
	f(ok+"&sct=99999999999", "", `sct: want a non-negative integer, got "99999999999"`)
	f(ok+"&_et=1.5", "", `_et: want a non-negative integer, got "1.5"`)
	f(ok+"&_s=x", "", `_s: want a non-negative integer, got "x"`)
	f(ok+"&seg=2", "", `seg: want 0 or 1, got "2"`)
	f(ok+"&epn.value=ten", "", `epn.value: not a number: "ten"`)
	f(ok+"&epn.value=NaN", "", `epn.value: not a number: "NaN"`)
	f(ok+"&epn.value=1e999", "", `epn.value: not a number: "1e999"`)
	f(ok+"&upn.age=old", "", `upn.age: not a number: "old"`)
	f(ok+"&ep.=x", "", "ep.: empty parameter name (rule param_name_required)")
	f("tid=G-A&en="+strings.Repeat("e", 41), "", "en: event name has 41 characters, GA4 allows 40 (rule event_name_length)")
	f(ok+"&ep.k="+strings.Repeat("v", 101), "", "ep.k: value has 101 characters, GA4 allows 100 (rule param_value_length)")
	f(ok+"&ep."+strings.Repeat("k", 41)+"=v", "", "ep."+strings.Repeat("k", 41)+": parameter name has 41 characters, GA4 allows 40 (rule param_name_length)")
	f(ok+"&up.plan="+strings.Repeat("p", 37), "", "up.plan: value has 37 characters, GA4 allows 36 (rule user_property_value_length)")
	f(ok+"&ep.a%00b=x", "", `"ep.a\x00b": parameter name contains a NUL character (rule name_encoding)`)
	f("tid=G-A&en=a%FFb", "", "en: event name is not valid UTF-8 (rule name_encoding)")
	f(ok+"&a=%zz", "", `query string: bad percent-escape "%zz"`)
	f(ok+"&a=1;b=2", "", "query string: semicolon separator; parameters must be separated by &")
	f("tid=G-A", "en=a\nen=b&sid=x", `event on body line 2: sid: want a non-negative integer, got "x"`)
	f("tid=G-A", "en=a\n\nen=%zz", `event on body line 3: event line: bad percent-escape "%zz"`)
	f("tid=G-A", "sid=1", "event on body line 1: en: missing event name (rule event_name_required)")
	// A long bad value is cut short in the message.
	f(ok+"&sid="+strings.Repeat("9", 200), "", `sid: want a non-negative integer, got "`+strings.Repeat("9", 64)+`"…`)

	var many, manyUser strings.Builder
	for i := range 26 {
		many.WriteString("&ep.p" + string(rune('a'+i)) + "=1")
		manyUser.WriteString("&up.p" + string(rune('a'+i)) + "=1")
	}
	for _, q := range []string{ok + many.String(), ok + manyUser.String()} {
		_, err := ParseGtag(q, nil)
		if err == nil || !strings.Contains(err.Error(), "more than 25") {
			t.Fatalf("26 parameters: %v, want the 25 limit named", err)
		}
	}
}

func TestAnalyticsDenied(t *testing.T) {
	for gcs, want := range map[string]bool{"G100": true, "G110": true, "G111": false, "G101": false, "": false, "G1--": false, "X100": false} {
		h := Hit{Consent: gcs}
		if got := h.AnalyticsDenied(); got != want {
			t.Errorf("gcs %q: denied %v, want %v", gcs, got, want)
		}
	}
}
