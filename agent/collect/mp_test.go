package collect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
)

const testSecret = "s3cret-mp"

// newMPRig is a rig whose site testTID has a Measurement Protocol secret.
func newMPRig(t *testing.T) *rig {
	t.Helper()
	return mpSite(t, newRig(t))
}

// newStrictMPRig is newMPRig with Options.MPStrict.
func newStrictMPRig(t *testing.T) *rig {
	t.Helper()
	return mpSite(t, newRigWith(t, func(o *Options) { o.MPStrict = true }))
}

// mpSite gives r's site testTID a Measurement Protocol secret.
func mpSite(t *testing.T, r *rig) *rig {
	t.Helper()
	s, err := NewSites(&protocol.Config{
		Sites: []protocol.Site{{ID: testSite, MeasurementID: testTID, APISecret: testSecret, Domains: []string{"shop.test"}, IdentitySecret: identitySecret(1)}},
		Salts: []protocol.Salt{{Site: testSite, Day: testNow.Format(time.DateOnly), Key: bytes.Repeat([]byte{7}, 32)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.sites = s
	return r
}

func (r *rig) mp(path, query string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path+"?"+query, bytes.NewReader(body))
	req.RemoteAddr = testIP + ":51234"
	req.Header.Set("User-Agent", "server-sdk/1.0")
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	mux := http.NewServeMux()
	r.c.Register(mux)
	mux.ServeHTTP(w, req)
	return w
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mp", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const mpQuery = "measurement_id=" + testTID + "&api_secret=" + testSecret

func TestMPStoresGoodRequest(t *testing.T) {
	r := newMPRig(t)
	w := r.mp("/mp/collect", mpQuery, fixture(t, "good.json"))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q, want 204", w.Code, w.Body)
	}
	if len(r.q.calls) != 1 {
		t.Fatalf("%d Appends, want 1 for the whole request", len(r.q.calls))
	}
	evs := r.q.events(t)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	v, u, c := evs[0].Visitor, evs[0].User, evs[0].Client
	if v == 0 || u != v || c == 0 || c == u || evs[1].Visitor != v || evs[1].User != u || evs[1].Client != c {
		t.Fatalf("visitor/user ids %x/%x and %x/%x: want one non-zero pair", v, u, evs[1].Visitor, evs[1].User)
	}
	props := map[string]string{"plan": "pro", "seats": "5"}
	want := []protocol.Event{
		{Site: testSite, TimeMicros: testNow.UnixMicro(), Name: "page_view", Visitor: v, User: u, Client: c, SessionID: 1764000000,
			Flags: protocol.FlagPersistent, EngageMs: 250, Host: "shop.test", Path: "/cart?utm_source=news", Title: "Cart", Referrer: "https://search.test/q",
			Language: "de-de", UserProps: props},
		{Site: testSite, TimeMicros: testNow.UnixMicro(), Name: "purchase", Visitor: v, User: u, Client: c, Flags: protocol.FlagPersistent,
			Params: map[string]string{"coupon": "true"}, UserProps: props,
			Currency: "EUR", Value: 9.5, Items: []protocol.Item{{ID: "sku1", Price: 9.5}}},
	}
	if d := cmp.Diff(want, evs); d != "" {
		t.Fatalf("events (-want +got):\n%s", d)
	}
	raw := bytes.Join(r.q.calls[0], nil)
	for _, secret := range []string{testIP, "123456.7654321", "alice", "bob", "secret"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Fatalf("queued events contain %q", secret)
		}
	}
}

func TestMPTimestampAndConsent(t *testing.T) {
	r := newMPRig(t)
	at := testNow.Add(-2 * time.Hour).UnixMicro()
	body := fmt.Sprintf(`{"client_id":"1.1","user_id":"carol","timestamp_micros":%d,"events":[{"name":"page_view"}]}`, at)
	if w := r.mp("/mp/collect", mpQuery, []byte(body)); w.Code != http.StatusNoContent {
		t.Fatalf("status %d %q", w.Code, w.Body)
	}
	granted := r.q.events(t)[0]
	if granted.TimeMicros != at || granted.User == 0 {
		t.Fatalf("time %d user %x; want the sent timestamp and a user hash", granted.TimeMicros, granted.User)
	}
	// analytics_storage DENIED: client and user ids are ignored, so two
	// clients from one server are one cookieless visitor without a user.
	r.q.calls = nil
	for _, cid := range []string{"555.666", "777.888"} {
		body := strings.Replace(string(fixture(t, "consent_denied.json")), "555.666", cid, 1)
		if w := r.mp("/mp/collect", mpQuery, []byte(body)); w.Code != http.StatusNoContent {
			t.Fatalf("status %d %q", w.Code, w.Body)
		}
	}
	evs := r.q.events(t)
	if evs[0].Visitor != evs[1].Visitor || evs[0].User != 0 || evs[1].User != 0 {
		t.Fatalf("consent denied: visitors %x/%x users %x/%x; want one visitor, no user",
			evs[0].Visitor, evs[1].Visitor, evs[0].User, evs[1].User)
	}
}

// TestMPRefusals checks each fixture's exact answer on /mp/collect under
// --mp-strict (status and body) and that nothing was stored.
func TestMPRefusals(t *testing.T) {
	f := func(query, fixtureName string, wantStatus int, wantLines ...string) {
		t.Helper()
		r := newStrictMPRig(t)
		w := r.mp("/mp/collect", query, fixture(t, fixtureName))
		got := strings.TrimSuffix(w.Body.String(), "\n")
		if w.Code != wantStatus || got != strings.Join(wantLines, "\n") {
			t.Fatalf("%s: got %d\n%s\nwant %d\n%s", fixtureName, w.Code, got, wantStatus, strings.Join(wantLines, "\n"))
		}
		if len(r.q.calls) != 0 {
			t.Fatalf("%s: refused request was stored", fixtureName)
		}
	}
	f(mpQuery, "bad_json.json", 400,
		`Unable to parse Measurement Protocol JSON payload. Malformed JSON at byte 50: invalid character '}' looking for beginning of object key string. (VALUE_INVALID)`)
	f(mpQuery, "too_many_events.json", 400, `events: A maximum of 25 events can be specified per request; got 26. (EXCEEDED_MAX_ENTITIES)`)
	f("measurement_id="+testTID+"&api_secret=wrong", "good.json", 403,
		"api_secret: The api_secret does not match the site's Measurement Protocol secret (printed by `avila site create`). (VALUE_INVALID)")
	f("measurement_id="+testTID, "good.json", 403, `api_secret: The api_secret query parameter is required. (VALUE_REQUIRED)`)
	f("api_secret="+testSecret, "good.json", 400, `measurement_id: The measurement_id query parameter is required. (VALUE_REQUIRED)`)
	f("measurement_id=G-OTHER&api_secret="+testSecret, "good.json", 400,
		`measurement_id: Unknown measurement_id "G-OTHER": no site with it is configured on this agent. (VALUE_INVALID)`)
	f(mpQuery, "reserved.json", 400,
		`user_properties.first_open_time: User property name "first_open_time" is reserved (rule name_reserved). (NAME_RESERVED)`,
		`events[0].name: Event at index 0 has reserved name "session_start" (rule name_reserved). (NAME_RESERVED)`,
		`events[1].name: Event name "_private" starts with the reserved prefix "_" (rule name_reserved). (NAME_RESERVED)`,
		`events[2].params.firebase_x: Parameter name "firebase_x" starts with the reserved prefix "firebase_" (rule name_reserved). (NAME_RESERVED)`,
		`events[2].params.ga_session_number: Parameter name "ga_session_number" starts with the reserved prefix "ga_" (rule name_reserved). (NAME_RESERVED)`,
		`events[3].name: Event name "9lives" must start with a letter and hold only letters, digits and underscores (rule name_pattern). (NAME_INVALID)`)
	f(mpQuery, "long_values.json", 400,
		`user_properties.tier.value: User property value has 37 characters; the limit is 36 (rule user_property_value_length). (VALUE_OUT_OF_BOUNDS)`,
		`events[0].name: Event name "`+strings.Repeat("e", 41)+`" has 41 characters; the limit is 40 (rule event_name_length). (VALUE_OUT_OF_BOUNDS)`,
		`events[1].params.`+strings.Repeat("p", 41)+`: Parameter name "`+strings.Repeat("p", 41)+`" has 41 characters; the limit is 40 (rule param_name_length). (VALUE_OUT_OF_BOUNDS)`,
		`events[1].params.term: Parameter value has 101 characters; the limit is 100 (rule param_value_length). (VALUE_OUT_OF_BOUNDS)`)
}

func TestMPDebugValidationMessages(t *testing.T) {
	type answer struct {
		ValidationMessages []ValidationMessage `json:"validationMessages"`
	}
	f := func(query, fixtureName string, want ...ValidationMessage) {
		t.Helper()
		r := newMPRig(t)
		w := r.mp("/debug/mp/collect", query, fixture(t, fixtureName))
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: status %d %s, want 200 JSON", fixtureName, w.Code, w.Header().Get("Content-Type"))
		}
		var got answer
		dec := json.NewDecoder(w.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: %v", fixtureName, err)
		}
		if want == nil {
			want = []ValidationMessage{}
		}
		if d := cmp.Diff(want, got.ValidationMessages); d != "" {
			t.Fatalf("%s: validationMessages (-want +got):\n%s", fixtureName, d)
		}
		if len(r.q.calls) != 0 {
			t.Fatalf("%s: the debug endpoint stored events", fixtureName)
		}
	}
	f(mpQuery, "good.json")
	f(mpQuery, "too_many_events.json", ValidationMessage{"events",
		"A maximum of 25 events can be specified per request; got 26.", "EXCEEDED_MAX_ENTITIES"})
	// Every broken rule is listed, the secret's too.
	f("measurement_id="+testTID+"&api_secret=nope", "long_values.json",
		ValidationMessage{"api_secret", "The api_secret does not match the site's Measurement Protocol secret (printed by `avila site create`).", "VALUE_INVALID"},
		ValidationMessage{"user_properties.tier.value", "User property value has 37 characters; the limit is 36 (rule user_property_value_length).", "VALUE_OUT_OF_BOUNDS"},
		ValidationMessage{"events[0].name", `Event name "` + strings.Repeat("e", 41) + `" has 41 characters; the limit is 40 (rule event_name_length).`, "VALUE_OUT_OF_BOUNDS"},
		ValidationMessage{"events[1].params." + strings.Repeat("p", 41), `Parameter name "` + strings.Repeat("p", 41) + `" has 41 characters; the limit is 40 (rule param_name_length).`, "VALUE_OUT_OF_BOUNDS"},
		ValidationMessage{"events[1].params.term", "Parameter value has 101 characters; the limit is 100 (rule param_value_length).", "VALUE_OUT_OF_BOUNDS"})
}

func TestParseMPRules(t *testing.T) {
	f := func(body string, want ...string) {
		t.Helper()
		_, msgs := ParseMP(testTID, []byte(body), testNow)
		var got []string
		for _, m := range msgs {
			got = append(got, m.FieldPath+" "+m.ValidationCode)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("%s (-want +got):\n%s", body, d)
		}
	}
	f(`{"client_id":"1","events":[{"name":"a"}]}`)
	f(`{"events":[{"name":"a"}]}`, "client_id VALUE_REQUIRED")
	f(`{"client_id":"1","events":[]}`, "events VALUE_REQUIRED")
	f(`{"client_id":"1"}`, "events VALUE_REQUIRED")
	f(`{"client_id":1,"events":[{"name":"a"}]}`, "client_id VALUE_INVALID")
	f(`{"client_id":"1","colour":"red","events":[{"name":"a"}]}`, "colour VALUE_INVALID")
	f(`{"client_id":"1","events":[{"name":"a","extra":1}]}`, "events[0] VALUE_INVALID")
	f(`{"client_id":"1","events":[{}]}`, "events[0].name VALUE_REQUIRED")
	f(`{"client_id":"1","events":[{"name":"a","params":{"o":{"x":1}}}]}`, "events[0].params.o VALUE_INVALID")
	f(`{"client_id":"1","events":[{"name":"a","params":{"session_id":"abc"}}]}`, "events[0].params.session_id VALUE_INVALID")
	f(`{"client_id":"1","events":[{"name":"a","params":{"items":"x"}}]}`, "events[0].params.items VALUE_INVALID")
	f(`{"client_id":"1","consent":{"analytics_storage":"maybe"},"events":[{"name":"a"}]}`, "consent.analytics_storage VALUE_INVALID")
	// Several bad consent values: their messages in one order, every time.
	for range 20 {
		f(`{"client_id":"1","consent":{"ad_storage":"x","analytics_storage":"0","ad_personalization":"y","ad_user_data":"21"},"events":[{"name":"a"}]}`,
			"consent.ad_user_data VALUE_INVALID", "consent.ad_personalization VALUE_INVALID",
			"consent.analytics_storage VALUE_INVALID", "consent.ad_storage VALUE_INVALID")
	}
	past := testNow.Add(-73 * time.Hour).UnixMicro()
	future := testNow.Add(time.Hour).UnixMicro()
	f(fmt.Sprintf(`{"client_id":"1","timestamp_micros":%d,"events":[{"name":"a"}]}`, past), "timestamp_micros VALUE_INVALID")
	f(fmt.Sprintf(`{"client_id":"1","timestamp_micros":%d,"events":[{"name":"a"}]}`, future), "timestamp_micros VALUE_INVALID")
	f(fmt.Sprintf(`{"client_id":"1","timestamp_micros":"%d","events":[{"name":"a"}]}`, testNow.UnixMicro()))
	f(`{"client_id":"1","events":[{"name":"a"}]} {}`, " VALUE_INVALID")
	f(``, " VALUE_INVALID")
	params := make([]string, 26)
	for i := range params {
		params[i] = fmt.Sprintf(`"p%d":1`, i)
	}
	f(`{"client_id":"1","events":[{"name":"a","params":{`+strings.Join(params, ",")+`}}]}`, "events[0].params EXCEEDED_MAX_ENTITIES")
}

func TestMPAnyContentType(t *testing.T) {
	r := newMPRig(t)
	req := httptest.NewRequest(http.MethodPost, "/mp/collect?"+mpQuery, strings.NewReader(`{"client_id":"1.2","events":[{"name":"a"}]}`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // curl -d
	w := httptest.NewRecorder()
	r.c.ServeMP(w, req)
	if w.Code != http.StatusNoContent || len(r.q.events(t)) != 1 {
		t.Fatalf("status %d %q; want the JSON stored whatever the content type", w.Code, w.Body)
	}
}

func TestMPMethodAndCORS(t *testing.T) {
	r := newMPRig(t)
	mux := http.NewServeMux()
	r.c.Register(mux)
	req := httptest.NewRequest(http.MethodGet, "/mp/collect?"+mpQuery, nil)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST, OPTIONS" {
		t.Fatalf("GET: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
	req = httptest.NewRequest(http.MethodOptions, "/mp/collect", nil)
	req.Header.Set("Origin", "https://app.test")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, req)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://app.test" ||
		w.Header().Get("Access-Control-Allow-Headers") != "content-type" {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
}

// TestMPNotEnriched: a Measurement Protocol request comes from a server, so
// its user agent (an HTTP library's) neither marks the hits as bots nor
// gives them a device or place.
func TestMPNotEnriched(t *testing.T) {
	r := newMPRig(t)
	en := &stubEnricher{}
	r.c.opts.Enricher = en
	req := httptest.NewRequest(http.MethodPost, "/mp/collect?"+mpQuery, strings.NewReader(`{"client_id":"1.2","events":[{"name":"a"}]}`))
	req.RemoteAddr = testIP + ":1"
	req.Header.Set("User-Agent", "python-requests-bot/2.31")
	w := httptest.NewRecorder()
	r.c.ServeMP(w, req)
	evs := r.q.events(t)
	if w.Code != http.StatusNoContent || len(evs) != 1 || en.calls != 0 || evs[0].Country != "" || evs[0].Browser != "" {
		t.Fatalf("status %d, %d events %+v, enricher called %d times; want the hit stored unenriched", w.Code, len(evs), evs, en.calls)
	}
}

// TestMPAnswersLikeGA4 checks /mp/collect without --mp-strict: 204 to every
// request that gets through the transport, the valid events stored, the
// others counted by the rule they broke and named in Avila-Validation.
func TestMPAnswersLikeGA4(t *testing.T) {
	f := func(query, fixtureName string, wantStored []string, wantRejected map[string]int, wantHeader string) {
		t.Helper()
		r := newMPRig(t)
		w := r.mp("/mp/collect", query, fixture(t, fixtureName))
		if w.Code != http.StatusNoContent || w.Body.Len() != 0 {
			t.Fatalf("%s: got %d %q, want 204 with no body", fixtureName, w.Code, w.Body)
		}
		var stored []string
		if len(r.q.calls) > 0 {
			for _, e := range r.q.events(t) {
				stored = append(stored, e.Name+" "+e.Path)
			}
		}
		if !cmp.Equal(stored, wantStored) {
			t.Errorf("%s: stored %q, want %q", fixtureName, stored, wantStored)
		}
		if !cmp.Equal(r.rejected, wantRejected) {
			t.Errorf("%s: rejected %v, want %v", fixtureName, r.rejected, wantRejected)
		}
		if got := w.Header().Get("Avila-Validation"); !strings.HasPrefix(got, wantHeader) {
			t.Errorf("%s: Avila-Validation %q, want it to start with %q", fixtureName, got, wantHeader)
		}
	}
	f(mpQuery, "good.json", []string{"page_view /cart?utm_source=news", "purchase "}, map[string]int{}, "")
	f(mpQuery, "mixed.json", []string{"page_view /a", "purchase /b"},
		map[string]int{"name_reserved": 1, "value_out_of_bounds": 1},
		`dropped 2 of 4 events; first rule broken: events[1].name: Event at index 1 has reserved name "session_start" (rule name_reserved). (NAME_RESERVED)`)
	f(mpQuery, "bad_json.json", nil, map[string]int{"value_invalid": 1}, "dropped 1 of 1 events; first rule broken: Unable to parse")
	f(mpQuery, "too_many_events.json", nil, map[string]int{"exceeded_max_entities": 1},
		"dropped 1 of 1 events; first rule broken: events: A maximum of 25 events")
	f(mpQuery, "reserved.json", nil, map[string]int{"name_reserved": 1},
		`dropped 1 of 1 events; first rule broken: user_properties.first_open_time: User property name "first_open_time" is reserved (rule name_reserved).`)
	f("measurement_id="+testTID+"&api_secret=wrong", "good.json", nil, map[string]int{"api_secret": 2},
		"dropped 2 of 2 events; first rule broken: api_secret: The api_secret does not match")
	f("measurement_id="+testTID, "good.json", nil, map[string]int{"api_secret": 2},
		"dropped 2 of 2 events; first rule broken: api_secret: The api_secret query parameter is required.")
	f("measurement_id=G-OTHER&api_secret="+testSecret, "good.json", nil, map[string]int{"unknown_site": 2},
		`dropped 2 of 2 events; first rule broken: measurement_id: Unknown measurement_id "G-OTHER"`)
}

// The strings ParseMP reads from a plain payload share one copy of the
// body: a string value costs it no allocation, so titles cost nothing
// over empty ones.
func TestParseMPStringsShareBody(t *testing.T) {
	payload := func(titled bool) []byte {
		var b strings.Builder
		b.WriteString(`{"client_id":"123.456","events":[`)
		for i := range 25 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"name":"page_view","params":{"page_location":"https://www.example.com/p/%d","session_id":"17"`, i)
			title := ""
			if titled {
				title = fmt.Sprintf("Post %d of the example blog", i)
			}
			fmt.Fprintf(&b, `,"page_title":%q`, title)
			b.WriteString(`}}`)
		}
		b.WriteString(`]}`)
		return []byte(b.String())
	}
	now := time.Unix(1_718_000_000, 0)
	allocs := func(body []byte) float64 {
		return testing.AllocsPerRun(20, func() {
			req, msgs := ParseMP(testTID, body, now)
			if req == nil || len(req.Hits) != 25 || len(msgs) != 0 {
				t.Fatalf("ParseMP: %v %v", req, msgs)
			}
		})
	}
	few, more := allocs(payload(false)), allocs(payload(true))
	if more != few {
		t.Fatalf("ParseMP allocates %v times with a page title per event, %v with empty ones: want no more", more, few)
	}
}

// Turning a plain payload's event into a hit allocates nothing: its
// strings and short integers are the body's bytes, and its parameter
// names are sorted in an array on the stack.
func TestMPEventHitAllocatesNothing(t *testing.T) {
	body := `{"client_id":"123.456","events":[{"name":"page_view","params":{"page_location":"https://www.example.com/p/1",` +
		`"page_title":"Post 1 of the example blog","session_id":"17","engagement_time_msec":1200}}]}`
	p, events, ok := readPlainMPPayload(body)
	if !ok || len(events) != 1 {
		t.Fatalf("payload not read plain: %v, %d events", ok, len(events))
	}
	add := func(path, code, format string, args ...any) { t.Fatalf("%s: %s", path, fmt.Sprintf(format, args...)) }
	var h Hit
	allocs := testing.AllocsPerRun(20, func() {
		h = Hit{}
		if !mpEventHit(&h, 0, p.Events[0], &events[0], add) {
			t.Fatal("event refused")
		}
	})
	if allocs != 0 {
		t.Fatalf("mpEventHit allocates %v times, want 0", allocs)
	}
	if h.Name != "page_view" {
		t.Fatalf("hit name %q", h.Name)
	}
}

// A short integer read as the body's bytes is the text FormatFloat
// writes for it, as every other number is.
func TestScalarSharedNumbers(t *testing.T) {
	for _, raw := range []string{"0", "-0", "7", "1200", "-1200", "999999", "-999999", "1000000", "-1000000", "100000000000000",
		"9999999999999999", "9007199254740993", "01", "1.5", "1e3", "1E3", "-", "12345678901234567890123"} {
		s, ok, isText := scalarOf(json.RawMessage(raw), true)
		want, wantOK, _ := scalarOf(json.RawMessage(raw), false)
		if s != want || ok != wantOK || isText {
			t.Fatalf("%s shared reads %q %v %v, copied %q %v", raw, s, ok, isText, want, wantOK)
		}
		if f, err := strconv.ParseFloat(raw, 64); err == nil && wantOK && want != strconv.FormatFloat(f, 'g', -1, 64) {
			t.Fatalf("%s reads %q", raw, want)
		}
	}
}
