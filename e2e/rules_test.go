package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
)

// ruleHit is one hit's fields, rendered in each wire format. Empty fields
// are not sent.
type ruleHit struct {
	name, title, pathTail, referrer, lang, screen string
	param, value                                  string // one event parameter
	userProp, userValue                           string // one user property (not in t.js)
}

// ruleCase is one rule's hit and what the agent must answer: accepted (2xx,
// then counted exactly once in runReport) or refused naming want (a 400 at
// gtag.js and t.js; at /mp/collect GA4's 204 with the rule in the
// Avila-Validation header and the debug endpoint's validationMessages).
type ruleCase struct {
	name     string
	hit      ruleHit
	accepted bool
	want     string            // refused: text every format's reason holds
	wantBy   map[string]string // refused: a format's own reason text, when it differs
	// refusedBy: formats that refuse an otherwise accepted hit, with the
	// reason (in the Measurement Protocol language and screen_resolution are
	// event parameters, so GA4's 100 characters apply).
	refusedBy map[string]string
	// repaired: the rule an accepted hit's Avila-Repaired header names
	// ("" none); JSON senders cannot send invalid UTF-8 (it decodes to
	// U+FFFD), so there is nothing to repair: viaJSON holds their value.
	repaired, viaJSON string
}

var ruleFormats = []string{"gtag-get", "gtag-post", "mp", "tjs"}

func ruleCases() []ruleCase {
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	return []ruleCase{
		{name: "title-101-euro", hit: ruleHit{title: long("€", 101)}, accepted: true},
		{name: "title-301-chars", hit: ruleHit{title: long("é", 301)}, accepted: true, repaired: "page_title_length", viaJSON: "page_title_length"},
		{name: "title-invalid-utf8", hit: ruleHit{title: "caf\xe9"}, accepted: true, repaired: "invalid_utf8"},
		{name: "title-nul", hit: ruleHit{title: "a\x00b"}, accepted: true, repaired: "nul_byte", viaJSON: "nul_byte"},
		{name: "param-value-nul", hit: ruleHit{param: "plan", value: "pro\x00"}, accepted: true, repaired: "nul_byte", viaJSON: "nul_byte"},
		{name: "param-value-invalid-utf8", hit: ruleHit{param: "plan", value: "\xffpro"}, accepted: true, repaired: "invalid_utf8"},
		{name: "user-prop-nul", hit: ruleHit{userProp: "tier", userValue: "\x00gold"}, accepted: true, repaired: "nul_byte", viaJSON: "nul_byte"},
		{name: "path-1100", hit: ruleHit{pathTail: "/" + long("p", 1100)}, accepted: true, repaired: "page_location_length", viaJSON: "page_location_length"},
		{name: "referrer-500", hit: ruleHit{referrer: "https://ref.example/" + long("r", 500)}, accepted: true, repaired: "page_referrer_length", viaJSON: "page_referrer_length"},
		{name: "language-120", hit: ruleHit{lang: long("l", 120)}, accepted: true, refusedBy: map[string]string{"mp": "param_value_length"},
			repaired: "field_length", viaJSON: "field_length"},
		{name: "screen-120", hit: ruleHit{screen: long("9", 120)}, accepted: true, refusedBy: map[string]string{"mp": "param_value_length"},
			repaired: "field_length", viaJSON: "field_length"},
		{name: "name-nul", hit: ruleHit{name: "a\x00b"}, want: "name_encoding"},
		{name: "name-invalid-utf8", hit: ruleHit{name: "a\xffb"}, want: "name_encoding",
			// JSON senders cannot carry invalid UTF-8: it decodes to U+FFFD, not a letter.
			wantBy: map[string]string{"mp": "name_pattern", "tjs": "name_pattern"}},
		{name: "name-41", hit: ruleHit{name: long("n", 41)}, want: "event_name_length"},
		{name: "param-name-nul", hit: ruleHit{param: "a\x00b", value: "1"}, want: "name_encoding"},
		{name: "param-value-101", hit: ruleHit{param: "plan", value: long("v", 101)}, want: "param_value_length"},
		{name: "param-value-101-euro", hit: ruleHit{param: "plan", value: long("€", 101)}, want: "param_value_length"},
	}
}

// TestRulesAtTheEdge: every rule in every wire format. Whatever the agent
// answers 2xx is counted exactly once in runReport and nothing reaches
// dead_letters; whatever it refuses gets the documented answer naming the
// rule and is stored nowhere.
func TestRulesAtTheEdge(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	agent := s.agent.ready["agent"]
	mid := s.site.MeasurementID
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(req *http.Request) (int, string, http.Header) {
		t.Helper()
		req.Header.Set("User-Agent", browserUA) // Go's own would be filtered as a bot
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	gtagParams := func(h ruleHit, path string) url.Values {
		v := url.Values{"en": {h.name}, "dl": {"http://e2e.test" + path}}
		for k, val := range map[string]string{"dt": h.title, "dr": h.referrer, "ul": h.lang, "sr": h.screen} {
			if val != "" {
				v.Set(k, val)
			}
		}
		if h.param != "" {
			v.Set("ep."+h.param, h.value)
		}
		if h.userProp != "" {
			v.Set("up."+h.userProp, h.userValue)
		}
		return v
	}
	send := func(format string, h ruleHit, path string) (int, string, http.Header) {
		t.Helper()
		switch format {
		case "gtag-get":
			q := gtagParams(h, path)
			q.Set("v", "2")
			q.Set("tid", mid)
			q.Set("cid", "7.1764000000")
			req, _ := http.NewRequest(http.MethodGet, agent+"/g/collect?"+q.Encode(), nil)
			return do(req)
		case "gtag-post":
			q := url.Values{"v": {"2"}, "tid": {mid}, "cid": {"7.1764000000"}}
			req, _ := http.NewRequest(http.MethodPost, agent+"/g/collect?"+q.Encode(), strings.NewReader(gtagParams(h, path).Encode()+"\n"))
			req.Header.Set("Content-Type", "text/plain")
			return do(req)
		case "mp", "mp-debug":
			params := map[string]any{"page_location": "https://e2e.test" + path}
			for k, val := range map[string]string{"page_title": h.title, "page_referrer": h.referrer, "language": h.lang, "screen_resolution": h.screen} {
				if val != "" {
					params[k] = val
				}
			}
			if h.param != "" {
				params[h.param] = h.value
			}
			body := map[string]any{"client_id": "7.1764000000", "events": []any{map[string]any{"name": h.name, "params": params}}}
			if h.userProp != "" {
				body["user_properties"] = map[string]any{h.userProp: map[string]string{"value": h.userValue}}
			}
			b, _ := json.Marshal(body)
			p := "/mp/collect"
			if format == "mp-debug" {
				p = "/debug/mp/collect"
			}
			q := url.Values{"measurement_id": {mid}, "api_secret": {s.site.APISecret}}
			req, _ := http.NewRequest(http.MethodPost, agent+p+"?"+q.Encode(), strings.NewReader(string(b)))
			return do(req)
		case "tjs":
			ev := map[string]any{"m": mid, "n": h.name, "u": "https://e2e.test" + path}
			for k, val := range map[string]string{"t": h.title, "r": h.referrer, "l": h.lang, "s": h.screen} {
				if val != "" {
					ev[k] = val
				}
			}
			if h.param != "" {
				ev["p"] = map[string]string{h.param: h.value}
			}
			b, _ := json.Marshal(ev)
			req, _ := http.NewRequest(http.MethodPost, agent+"/api/event", strings.NewReader(string(b)))
			req.Header.Set("Content-Type", "text/plain")
			return do(req)
		}
		t.Fatalf("unknown format %s", format)
		return 0, "", nil
	}

	want := map[string]int{} // "/rules/<case>/<format>" → times it must be counted
	for _, tc := range ruleCases() {
		for _, format := range ruleFormats {
			h := tc.hit
			if h.name == "" {
				h.name = "rule_check"
			}
			if format == "tjs" && h.userProp != "" {
				continue // t.js sends no user properties
			}
			key := "/rules/" + tc.name + "/" + format
			code, body, hdr := send(format, h, key+h.pathTail)
			reason, accepted := tc.want, tc.accepted
			if r, ok := tc.wantBy[format]; ok {
				reason = r
			}
			if r, ok := tc.refusedBy[format]; ok {
				reason, accepted = r, false
			}
			switch {
			case accepted && code != http.StatusNoContent:
				t.Errorf("%s %s: %d %q, want 204", tc.name, format, code, body)
			case accepted:
				want[key] = 1
				repaired := tc.repaired
				if format == "mp" || format == "tjs" {
					repaired = tc.viaJSON
				}
				if got := hdr.Get("Avila-Repaired"); got != repaired {
					t.Errorf("%s %s: Avila-Repaired %q, want %q", tc.name, format, got, repaired)
				}
			case format == "mp":
				// As GA4: 204, the event dropped, the rule named.
				if v := hdr.Get("Avila-Validation"); code != http.StatusNoContent || !strings.Contains(v, reason) {
					t.Errorf("%s mp: %d, Avila-Validation %q; want 204 naming %s", tc.name, code, v, reason)
				}
				dcode, dbody, _ := send("mp-debug", h, key+h.pathTail)
				if dcode != http.StatusOK || !strings.Contains(dbody, reason) {
					t.Errorf("%s /debug/mp/collect: %d %s; want a validation message naming %s", tc.name, dcode, dbody, reason)
				}
			case code != http.StatusBadRequest || !strings.Contains(body, reason):
				t.Errorf("%s %s: %d %q, want 400 naming %s", tc.name, format, code, body, reason)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Every accepted hit counted exactly once, no refused one at all.
	count := func() (map[string]int, error) {
		rows, err := s.eventsByPage()
		if err != nil {
			return nil, err
		}
		got := map[string]int{}
		for _, r := range rows {
			name, path, _ := strings.Cut(r, " ")
			if name == "session_start" || name == "first_visit" {
				continue // derived by the write stage, not sent
			}
			if parts := strings.SplitN(path, "/", 5); len(parts) >= 4 && parts[1] == "rules" {
				got["/rules/"+parts[2]+"/"+parts[3]]++
			}
		}
		return got, nil
	}
	eventually(t, 60*time.Second, "accepted hits in runReport", func() error {
		got, err := count()
		if err != nil {
			return err
		}
		var missing []string
		for k := range want {
			if got[k] == 0 {
				missing = append(missing, k)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d accepted hits reported; missing %q; reported %v", len(want)-len(missing), len(want), missing, got)
		}
		return nil
	})
	got, err := count()
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s counted %d times, want %d", k, got[k], n)
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			t.Errorf("%s counted %d times, but the agent refused it", k, n)
		}
	}
	var dead int
	if err := s.db.QueryRow(t.Context(), "SELECT count(*) FROM dead_letters").Scan(&dead); err != nil || dead != 0 {
		t.Errorf("%d dead letters (%v), want none", dead, err)
	}
	for _, rule := range []string{"page_title_length", "nul_byte", "invalid_utf8", "page_location_length", "page_referrer_length", "field_length"} {
		if n, err := metricValue(agent, "analytics_events_repaired_total", "rule", rule); err != nil || n == 0 {
			t.Errorf("analytics_events_repaired_total{rule=%q} = %v (%v), want > 0", rule, n, err)
		}
	}
}
