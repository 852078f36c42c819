package collect

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/identity"
)

// identityRig is a collector over two sites that hold salts for two days
// and identity secrets: G-COOKIE (policy cookie, the default) and
// G-COOKIELESS (policy cookieless, DNT/GPC made cookieless).
type identityRig struct {
	c     *Collector
	q     *fakeQueue
	now   time.Time
	sites *Sites
}

const (
	cookieSite, cooklessSite = uint32(21), uint32(22)
	idCID, idUID             = "1357924680.1764000000", "customer-4711"
)

func newIdentityRig(t *testing.T) *identityRig {
	t.Helper()
	r := &identityRig{q: &fakeQueue{}, now: testNow}
	day := func(d int) string { return testNow.AddDate(0, 0, d).Format(time.DateOnly) }
	var salts []protocol.Salt
	for _, s := range []uint32{cookieSite, cooklessSite} {
		for d := range 2 {
			salts = append(salts, protocol.Salt{Site: s, Day: day(d), Key: bytes.Repeat([]byte{byte(s), byte(d)}, 16)})
		}
	}
	var err error
	r.sites, err = NewSites(&protocol.Config{
		Sites: []protocol.Site{
			{ID: cookieSite, MeasurementID: "G-COOKIE", APISecret: "mp-secret", IdentitySecret: identitySecret(5)},
			{ID: cooklessSite, MeasurementID: "G-COOKIELESS", APISecret: "mp-secret", IdentitySecret: identitySecret(6),
				Identity: protocol.IdentityCookieless, DNT: "cookieless"},
		},
		Salts: salts,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.c, err = New(Options{Sites: func() *Sites { return r.sites }, Queue: r.q, Now: func() time.Time { return r.now }})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send posts one request from ip with ua and returns the event it queued.
func (r *identityRig) send(t *testing.T, path, query, body, ip, ua string, hdr map[string]string) protocol.Event {
	t.Helper()
	method := http.MethodGet
	var rd *strings.Reader
	if body != "" {
		method, rd = http.MethodPost, strings.NewReader(body)
	}
	var req *http.Request
	if rd != nil {
		req = httptest.NewRequest(method, path+"?"+query, rd)
	} else {
		req = httptest.NewRequest(method, path+"?"+query, nil)
	}
	req.RemoteAddr, req.Header["User-Agent"] = ip+":4000", []string{ua}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	before := len(r.q.events(t))
	map[string]http.HandlerFunc{"/g/collect": r.c.ServeGtag, "/mp/collect": r.c.ServeMP, "/api/event": r.c.ServeEvent}[path](w, req)
	evs := r.q.events(t)
	if w.Code != http.StatusNoContent || len(evs) != before+1 || w.Header().Get("Avila-Validation") != "" {
		t.Fatalf("%s %s: %d %q %q, %d events queued; want 204 and one event", path, query, w.Code, w.Body, w.Header().Get("Avila-Validation"), len(evs)-before)
	}
	return evs[len(evs)-1]
}

const phoneUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148"

// TestIdentityByClientID: with identifiers allowed, the client id's key
// under the site's identity secret is the visitor: the same over a network
// change, a new day and the Measurement Protocol; persistent; equal to
// what protocol/identity computes (so a data subject's request finds it).
func TestIdentityByClientID(t *testing.T) {
	r := newIdentityRig(t)
	q := "v=2&tid=G-COOKIE&en=page_view&sid=1764000000&cid=" + idCID
	wifi := r.send(t, "/g/collect", q, "", "198.51.100.7", phoneUA, nil)
	cell := r.send(t, "/g/collect", q, "", "203.0.113.200", phoneUA, nil) // network change
	r.now = r.now.Add(24 * time.Hour)
	nextDay := r.send(t, "/g/collect", q, "", "192.0.2.1", phoneUA, nil)
	mp := r.send(t, "/mp/collect", "measurement_id=G-COOKIE&api_secret=mp-secret",
		`{"client_id":"`+idCID+`","events":[{"name":"purchase","params":{"session_id":1764000000,"value":30}}]}`, "10.0.0.1", "server/1", nil)
	h, _ := identity.New(cookieSite, identitySecret(5))
	want := h.Client(idCID)
	for name, e := range map[string]protocol.Event{"wifi": wifi, "cellular": cell, "next day": nextDay, "measurement protocol": mp} {
		if e.Visitor != want || e.Flags&protocol.FlagPersistent == 0 || e.User != 0 || e.Client != 0 {
			t.Errorf("%s: visitor %x flags %b user %x client %x; want the client id's key %x, persistent, no user",
				name, e.Visitor, e.Flags, e.User, e.Client, want)
		}
	}
	if mp.SessionID != 1764000000 {
		t.Errorf("MP session_id %d, want the browser's 1764000000", mp.SessionID)
	}
	// Another client id on the same address and browser is another user.
	if o := r.send(t, "/g/collect", "v=2&tid=G-COOKIE&en=page_view&cid=24680.1764000000", "", "192.0.2.1", phoneUA, nil); o.Visitor == want {
		t.Error("another client id: the same visitor")
	}
}

// TestIdentityUserID: a user_id makes its key the visitor, on any device,
// and the event keeps the device's client key for the aggregator.
func TestIdentityUserID(t *testing.T) {
	r := newIdentityRig(t)
	h, _ := identity.New(cookieSite, identitySecret(5))
	q := "v=2&tid=G-COOKIE&en=page_view&uid=" + idUID
	phone := r.send(t, "/g/collect", q+"&cid="+idCID, "", "198.51.100.7", phoneUA, nil)
	laptop := r.send(t, "/g/collect", q+"&cid=999.1764000000", "", "192.0.2.9", testUA, nil)
	if phone.Visitor != h.User(idUID) || laptop.Visitor != phone.Visitor || phone.User != phone.Visitor {
		t.Errorf("visitors %x / %x, user %x; want the user_id's key %x on both devices", phone.Visitor, laptop.Visitor, phone.User, h.User(idUID))
	}
	if phone.Client != h.Client(idCID) || laptop.Client == phone.Client || phone.Flags&protocol.FlagPersistent == 0 {
		t.Errorf("client keys %x / %x, flags %b; want each device's client key, persistent", phone.Client, laptop.Client, phone.Flags)
	}
}

// TestIdentityConsent: what each consent signal and policy gives.
func TestIdentityConsent(t *testing.T) {
	r := newIdentityRig(t)
	h, _ := identity.New(cookieSite, identitySecret(5))
	hl, _ := identity.New(cooklessSite, identitySecret(6))
	f := func(name, path, query, body string, hdr map[string]string, want uint64) {
		t.Helper()
		e := r.send(t, path, query, body, "198.51.100.7", phoneUA, hdr)
		persistent := e.Flags&protocol.FlagPersistent != 0
		switch {
		case want != 0 && (e.Visitor != want || !persistent):
			t.Errorf("%s: visitor %x persistent %v; want the client key %x", name, e.Visitor, persistent, want)
		case want == 0 && (persistent || e.Visitor == h.Client(idCID) || e.Visitor == hl.Client(idCID) || e.User != 0 || e.Client != 0):
			t.Errorf("%s: visitor %x persistent %v user %x; want a daily cookieless id", name, e.Visitor, persistent, e.User)
		}
	}
	cookie := "v=2&tid=G-COOKIE&en=page_view&cid=" + idCID + "&uid=" + idUID
	cless := "v=2&tid=G-COOKIELESS&en=page_view&cid=" + idCID
	f("cookie site, no signal", "/g/collect", "v=2&tid=G-COOKIE&en=page_view&cid="+idCID, "", nil, h.Client(idCID))
	f("cookie site, gcs denied", "/g/collect", cookie+"&gcs=G100", "", nil, 0)
	f("cookie site, gcd denied", "/g/collect", cookie+"&gcd=13q3q3q2q5", "", nil, 0)
	f("cookie site, DNT dropped by default", "/g/collect", cookie, "", nil, h.User(idUID))
	f("cookieless site, no signal", "/g/collect", cless, "", nil, 0)
	f("cookieless site, gcs granted", "/g/collect", cless+"&gcs=G111", "", nil, hl.Client(idCID))
	f("cookieless site, gcs G101 granted", "/g/collect", cless+"&gcs=G101", "", nil, hl.Client(idCID))
	f("cookieless site, gcd granted by update", "/g/collect", cless+"&gcd=13r3r3r2r5", "", nil, hl.Client(idCID))
	f("cookieless site, granted but DNT", "/g/collect", cless+"&gcs=G111", "", map[string]string{"DNT": "1"}, 0)
	f("cookieless site, granted but GPC", "/g/collect", cless+"&gcs=G111", "", map[string]string{"Sec-GPC": "1"}, 0)
	f("cookieless site, no client id", "/g/collect", "v=2&tid=G-COOKIELESS&en=page_view&gcs=G111", "", nil, 0)
	mpq := "measurement_id=G-COOKIELESS&api_secret=mp-secret"
	mp := func(consent string) string {
		return `{"client_id":"` + idCID + `",` + consent + `"events":[{"name":"purchase"}]}`
	}
	f("MP, cookieless site, no consent", "/mp/collect", mpq, mp(""), nil, 0)
	f("MP, cookieless site, analytics granted", "/mp/collect", mpq, mp(`"consent":{"analytics_storage":"GRANTED"},`), nil, hl.Client(idCID))
	f("MP, cookieless site, only ad_user_data granted", "/mp/collect", mpq, mp(`"consent":{"ad_user_data":"GRANTED"},`), nil, 0)
	f("MP, cookie site, analytics denied", "/mp/collect", "measurement_id=G-COOKIE&api_secret=mp-secret",
		mp(`"consent":{"analytics_storage":"DENIED"},`), nil, 0)
	f("t.js, cookie site, client id", "/api/event", "", `{"m":"G-COOKIE","n":"page_view","u":"https://shop.test/","c":"`+idCID+`"}`, nil, h.Client(idCID))
	f("t.js, cookie site, no client id", "/api/event", "", `{"m":"G-COOKIE","n":"page_view","u":"https://shop.test/"}`, nil, 0)
	f("t.js, cookieless site, client id", "/api/event", "", `{"m":"G-COOKIELESS","n":"page_view","u":"https://shop.test/","c":"`+idCID+`"}`, nil, 0)

	// Daily cookieless ids: the same browser on another day is another id.
	a := r.send(t, "/g/collect", cless, "", "198.51.100.7", phoneUA, nil)
	r.now = r.now.Add(24 * time.Hour)
	if b := r.send(t, "/g/collect", cless, "", "198.51.100.7", phoneUA, nil); b.Visitor == a.Visitor {
		t.Error("a cookieless id lasted past its day")
	}
}

// TestIdentityNoSecret: a site whose config carries no identity secret
// (an older aggregator) gets daily cookieless ids whatever the consent.
func TestIdentityNoSecret(t *testing.T) {
	r := newIdentityRig(t)
	s, err := NewSites(&protocol.Config{
		Sites: []protocol.Site{{ID: cookieSite, MeasurementID: "G-COOKIE"}},
		Salts: []protocol.Salt{{Site: cookieSite, Day: testNow.Format(time.DateOnly), Key: identitySecret(9)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.sites = s
	e := r.send(t, "/g/collect", "v=2&tid=G-COOKIE&en=page_view&gcs=G111&cid="+idCID+"&uid="+idUID, "", "198.51.100.7", phoneUA, nil)
	if e.Flags&protocol.FlagPersistent != 0 || e.User != 0 || e.Client != 0 {
		t.Errorf("no secret: %+v; want a daily cookieless id", e)
	}
	if _, err := NewSites(&protocol.Config{Sites: []protocol.Site{{ID: 3, MeasurementID: "G-X", IdentitySecret: []byte("short")}}}); err == nil ||
		!strings.Contains(err.Error(), "secret of site 3: 5 bytes, want 32") {
		t.Errorf("a short secret: %v", err)
	}
}

// TestIdentityRawIDsNeverQueued: no raw client id or user_id, in any
// spelling a sender used, reaches the queue.
func TestIdentityRawIDsNeverQueued(t *testing.T) {
	r := newIdentityRig(t)
	r.send(t, "/g/collect", "v=2&tid=G-COOKIE&en=page_view&cid="+idCID+"&uid="+idUID, "", "198.51.100.7", phoneUA, nil)
	r.send(t, "/g/collect", "v=2&tid=G-COOKIE&cid="+idCID, "en=login&uid="+idUID+"\n", "198.51.100.7", phoneUA, nil)
	r.send(t, "/mp/collect", "measurement_id=G-COOKIE&api_secret=mp-secret",
		`{"client_id":"`+idCID+`","user_id":"`+idUID+`","events":[{"name":"purchase","params":{"session_id":1}}]}`, "10.0.0.1", "server/1", nil)
	r.send(t, "/api/event", "", `{"m":"G-COOKIE","n":"page_view","u":"https://shop.test/","c":"`+idCID+`"}`, "198.51.100.7", phoneUA, nil)
	for _, call := range r.q.calls {
		for _, raw := range call {
			for _, secret := range []string{idCID, "1357924680", "1764000000", idUID, "4711"} {
				if bytes.Contains(raw, []byte(secret)) {
					t.Fatalf("queued event holds %q", secret)
				}
			}
		}
	}
}
