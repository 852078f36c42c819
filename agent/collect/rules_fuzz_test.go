package collect

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/protocol/rules"
)

// FuzzAcceptedPassesGuard: whatever a sender puts in a gtag.js query or
// body, a Measurement Protocol body or a t.js event, every event the agent
// answers 2xx for and queues passes the aggregator's guard (rules.Check), so
// nothing acknowledged becomes a dead letter.
func FuzzAcceptedPassesGuard(f *testing.F) {
	euro := strings.Repeat("€", 101)
	f.Add("en=page_view&dt="+url.QueryEscape(euro), []byte("en=a&dl=http%3A%2F%2Fx.test%2F"+strings.Repeat("p", 1100)),
		[]byte(`{"client_id":"1.2","events":[{"name":"a","params":{"page_title":"`+strings.Repeat("€", 301)+`","x":"a\u0000b"}}]}`),
		[]byte(`{"m":"G-TEST1","n":"a","t":"`+euro+`","u":"http://x.test/\u0000"}`))
	f.Add("en=a%FF&ep.x%00=1", []byte("en=b&dt=%00%FF&ul="+strings.Repeat("l", 120)+"&sr="+strings.Repeat("9", 120)),
		[]byte(`{"client_id":"1","user_properties":{"u":{"value":"\u0000"}},"events":[{"name":"b"}]}`),
		[]byte(`{"m":"G-TEST1","n":"a","r":"http://r.test/`+strings.Repeat("r", 500)+`","l":"\u0000"}`))
	f.Add("en=a&up.x=%C3&ep.y=%F0%9F", []byte{}, []byte(`{}`), []byte(`{"m":"G-TEST1","n":"a","p":{"k":"\u0000\u0000"}}`))
	f.Fuzz(func(t *testing.T, query string, body, mpBody, eventBody []byte) {
		for i := 0; i < len(query); i++ {
			if c := query[i]; c <= ' ' || c == '#' || c >= 0x7f {
				return // no request line carries it; the query's escapes can
			}
		}
		r := newRig(t)
		check := func(what string, code int) {
			t.Helper()
			if code/100 != 2 {
				r.q.calls = nil
				return
			}
			for _, e := range r.q.events(t) {
				if v := rules.Check(&e); v != nil {
					t.Fatalf("%s answered %d, queued an event the aggregator refuses: %v", what, code, v)
				}
			}
			r.q.calls = nil
		}
		q := "v=2&tid=" + testTID + "&" + query
		check("GET /g/collect", r.do("GET", q, "", nil, nil).Code)
		check("POST /g/collect", r.do("POST", q, "text/plain", bytes.NewReader(body), nil).Code)
		check("POST /mp/collect", r.mp("/mp/collect", mpQuery, mpBody).Code)
		check("POST /api/event", r.event("text/plain", string(eventBody), nil).Code)
	})
}
