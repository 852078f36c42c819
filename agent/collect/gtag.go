package collect

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/avila-analytics/avila/agent/privacy"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/identity"
	"github.com/avila-analytics/avila/protocol/rules"
)

// ServeGtag handles GET and POST /g/collect in the gtag.js wire format. It
// answers 204 only after every event of the request is durably queued;
// otherwise a 4xx or 5xx whose body says why.
func (c *Collector) ServeGtag(w http.ResponseWriter, r *http.Request) {
	c.gtag(httpExchange{w, r})
}

func (c *Collector) gtag(x exchange) {
	if preflight(x) {
		return
	}
	allowOrigin(x)
	ip := clientIP(x, c.opts.TrustedProxies)
	if !c.allowClient(x, ip) {
		return
	}
	var body []byte
	switch m := x.Method(); m {
	case http.MethodGet:
	case http.MethodPost:
		var ok bool
		if body, ok = c.readBody(x); !ok {
			c.count(0, OutcomeInvalid, 1)
			return
		}
	default:
		x.SetHeader("Allow", "GET, POST, OPTIONS")
		c.count(0, OutcomeInvalid, 1)
		fail(x, http.StatusMethodNotAllowed, 0, fmt.Sprintf("method %s not allowed; gtag.js sends GET or POST", m))
		return
	}
	bufs := c.takeBufs()
	defer c.releaseBufs(bufs)
	hits, err := appendGtag(bufs.hits, &bufs.maps, x.Query(), body)
	if err != nil {
		c.count(0, OutcomeInvalid, 1)
		fail(x, http.StatusBadRequest, 0, err.Error())
		return
	}
	bufs.hits = hits
	if doNotTrack(x) {
		for i := range hits {
			hits[i].doNotTrack = true
		}
	}
	c.storeWith(x, hits, ip, bufs)
}

// readBody reads a POST body within the size limit; false means an error
// answer was sent.
func (c *Collector) readBody(x exchange) ([]byte, bool) {
	return c.readBodyLimit(x, c.opts.MaxBodyBytes, "text/plain (as sendBeacon does)", "text/plain", "application/x-www-form-urlencoded")
}

// readBodyLimit reads a POST body of one of the accepted media types (or
// none; any when accepted is empty) within limit bytes; false means an error answer was sent. hint
// names the type to send in the refusal.
func (c *Collector) readBodyLimit(x exchange, limit int64, hint string, accepted ...string) ([]byte, bool) {
	if ct := x.Header("Content-Type"); ct != "" && len(accepted) > 0 {
		mt, err := mediaType(ct)
		if err != nil || !slices.Contains(accepted, mt) {
			fail(x, http.StatusUnsupportedMediaType, 0,
				fmt.Sprintf("content type %s not accepted; send %s or none", quote(ct), hint))
			return nil, false
		}
	}
	tooLarge := func() {
		fail(x, http.StatusRequestEntityTooLarge, 0,
			fmt.Sprintf("body larger than %d bytes, GA4's limit; send fewer events per request", limit))
	}
	if x.ContentLength() > limit {
		tooLarge()
		return nil, false
	}
	body, err := x.Body(limit)
	switch {
	case errors.Is(err, errBodyTooLarge):
		tooLarge()
		return nil, false
	case err != nil:
		fail(x, http.StatusBadRequest, 0, "reading the body failed: "+err.Error())
		return nil, false
	}
	return body, true
}

// commonMediaTypes is the media type of the Content-Type values gtag.js
// (sendBeacon), fetch and Measurement Protocol clients send most, as
// mime.ParseMediaType gives it: parsing one costs more than a request's
// other header reads together, and allocates.
var commonMediaTypes = func() map[string]string {
	m := map[string]string{}
	for _, ct := range []string{
		"text/plain;charset=UTF-8", "text/plain; charset=UTF-8", "text/plain;charset=utf-8", "text/plain; charset=utf-8", "text/plain",
		"application/json", "application/json;charset=UTF-8", "application/json; charset=UTF-8", "application/json;charset=utf-8", "application/json; charset=utf-8",
		"application/x-www-form-urlencoded", "application/x-www-form-urlencoded;charset=UTF-8", "application/x-www-form-urlencoded; charset=UTF-8",
	} {
		if mt, _, err := mime.ParseMediaType(ct); err == nil {
			m[ct] = mt
		}
	}
	return m
}()

// mediaType is the media type of the Content-Type value ct, as
// mime.ParseMediaType gives it.
func mediaType(ct string) (string, error) {
	if mt, ok := commonMediaTypes[ct]; ok {
		return mt, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	return mt, err
}

// store turns hits into events and queues them in one Append, answering
// 204 only when that Append succeeded.
func (c *Collector) store(x exchange, hits []Hit, ip netip.Addr) {
	bufs := c.takeBufs()
	defer c.releaseBufs(bufs)
	c.storeWith(x, hits, ip, bufs)
}

// storeWith is store encoding into bufs.
func (c *Collector) storeWith(x exchange, hits []Hit, ip netip.Addr, bufs *requestBufs) {
	sites := c.opts.Sites()
	if sites == nil {
		c.count(0, OutcomeNotReady, len(hits))
		c.opts.OnUnknownSite()
		fail(x, http.StatusServiceUnavailable, retryNoConfig,
			"the agent has no site config yet: no aggregator has answered since it started with an empty data dir")
		return
	}
	now := c.opts.Now()
	ua := x.Header("User-Agent")
	var limited []uint32 // sites whose rate limit this request has passed
	events := bufs.events[:0]
	enc := bufs.enc[:0] // the events' encodings, one after another
	if n := 384 * len(hits); cap(enc) < n {
		enc = make([]byte, 0, n)
	}
	defer func() { bufs.events, bufs.enc = events, enc }()
	eventSites := make([]uint32, 0, len(hits)) // site of each of events, for Count
	var saltless []uint32                      // sites of events keyed without a salt, for Count
	var memo requestMemo                       // what the events of a request share: identity, page, referrer, enrichment
	var repaired []rules.Repairs               // the repairs of each repaired event; rare
	var shared rules.SharedTexts               // the texts its events share, checked once
	var e protocol.Event                       // each hit's in turn: it escapes, so one allocation per request
	var (
		keySite    uint32 // the site whose key siteKey is, when keyKnown
		keyKnown   bool
		siteKey    *privacy.Key
		siteKeyErr error
	)
	for i := range hits {
		h := &hits[i]
		site, ok := sites.Lookup(h.MeasurementID)
		if !ok {
			c.count(0, OutcomeUnknownSite, len(hits))
			c.opts.OnUnknownSite()
			fail(x, http.StatusBadRequest, 0, fmt.Sprintf(
				"tid: unknown measurement id %s; no site with it is configured on this agent (a site created just now is known within seconds)",
				quote(h.MeasurementID)))
			return
		}
		if !slices.Contains(limited, site.ID) {
			if ok, wait := c.perSite.take(site.ID); !ok {
				c.count(site.ID, OutcomeRateLimited, len(hits))
				fail(x, http.StatusTooManyRequests, retryAfterSeconds(wait), fmt.Sprintf(
					"too many hits for measurement id %s; the agent's per-site rate limit (--rate-site) was reached, retry later",
					quote(h.MeasurementID)))
				return
			}
			limited = append(limited, site.ID)
		}
		if h.doNotTrack {
			switch c.dntPolicy(site) {
			case DNTDrop:
				c.count(site.ID, OutcomeDoNotTrack, 1)
				continue // answered 204 as GA4 does, never stored
			case DNTCookieless:
				h.Cookieless = true
			}
		}
		// The visitor-id key of the site's day: looked up once for a run
		// of the request's events of one site (now is the request's).
		if site.ID != keySite || !keyKnown {
			siteKey, siteKeyErr = sites.Key(site.ID, now)
			keySite, keyKnown = site.ID, true
		}
		key, err := siteKey, siteKeyErr
		noSalt := err != nil
		if noSalt {
			key = c.saltMissing(site.ID, now, err)
			h.Cookieless = true
		}
		if perr := buildEventInto(&e, h, site, key, sites.Identity(site.ID), ip, ua, now, &memo); perr != nil {
			perr.Line = h.line
			c.count(site.ID, OutcomeInvalid, len(hits))
			fail(x, http.StatusBadRequest, 0, perr.Error())
			return
		}
		if c.opts.Enricher != nil && !h.server && memo.enrich(c.opts.Enricher, &e, ip, ua) {
			c.count(site.ID, OutcomeBot, 1)
			continue // a bot: counted by the enricher, never stored as a visitor
		}
		// The aggregator checks every event with the same rules: what is
		// queued here passes there, so a 204 is never a dead letter.
		done, v := shared.Repair(&e)
		if v != nil {
			c.count(site.ID, OutcomeInvalid, len(hits))
			fail(x, http.StatusBadRequest, 0, (&ParamError{Line: h.line, Param: v.Field, Reason: v.Reason(), Rule: v.Rule}).Error())
			return
		}
		if done != 0 {
			repaired = append(repaired, done)
		}
		// One buffer holds the request's encoded events; each is its own
		// full slice of it, so a later append never writes into one (a
		// buffer that grows leaves the earlier ones in the old array).
		start := len(enc)
		enc = protocol.AppendEvent(enc, &e)
		events = append(events, enc[start:len(enc):len(enc)])
		if noSalt {
			saltless = append(saltless, site.ID)
		} else {
			eventSites = append(eventSites, site.ID)
		}
	}
	if len(events) == 0 { // every hit was a bot or under a DNT drop policy
		x.Answer(http.StatusNoContent, nil)
		return
	}
	if err := c.opts.Queue.Append(x.Context(), events); err != nil {
		c.countSites(eventSites, appendOutcome(err))
		c.countSites(saltless, appendOutcome(err))
		c.appendFailed(x, err)
		return
	}
	c.countSites(eventSites, OutcomeStored)
	c.countSites(saltless, OutcomeNoSalt)
	if repaired != nil {
		var all rules.Repairs
		for _, done := range repaired {
			for r := range done.Each {
				c.opts.CountRepaired(r.Code)
			}
			all |= done
		}
		x.SetHeader("Avila-Repaired", all.Codes())
	}
	x.Answer(http.StatusNoContent, nil)
}

// saltMissing is the visitor-id key for a hit of site when the config has
// no salt for now's day (err): the process's in-memory stand-in (see
// privacy.ProcessKeys). It asks for a fresh config and says why, at most
// once a minute.
func (c *Collector) saltMissing(site uint32, now time.Time, err error) *privacy.Key {
	c.opts.OnUnknownSite()
	if n, ok := c.noSaltLog.Allow(time.Now()); ok {
		c.log.Warn("recording hits cookieless with a process-local visitor id until the aggregator sends today's salt",
			"site", site, "err", err, "suppressed", n)
	}
	return c.noSalt.For(site, now)
}

// buildEvent applies the privacy rules to one hit. The client IP and user
// agent only enter the daily cookieless id; the client id and user_id only
// their identity keys under the site's secret (hasher; nil when the site
// has none), and only when the hit may use identifiers.
func buildEvent(h *Hit, site *protocol.Site, key *privacy.Key, hasher *identity.Hasher, ip netip.Addr, ua string, now time.Time, memo *requestMemo) (protocol.Event, *ParamError) {
	var e protocol.Event
	perr := buildEventInto(&e, h, site, key, hasher, ip, ua, now, memo)
	return e, perr
}

// buildEventInto is buildEvent into e, overwritten whole: storeWith
// builds each of a request's events in one Event rather than copying
// each one built into it.
func buildEventInto(e *protocol.Event, h *Hit, site *protocol.Site, key *privacy.Key, hasher *identity.Hasher, ip netip.Addr, ua string, now time.Time, memo *requestMemo) *ParamError {
	cid, uid := h.ClientID, h.UserID
	if !h.IdentifiersAllowed(site.Identity) {
		// Consent denied (or no signal on a cookieless site): neither the
		// cookie id nor the user id may identify the visitor.
		cid, uid = "", ""
	}
	*e = protocol.Event{
		Site:       site.ID,
		TimeMicros: now.UnixMicro(),
		Name:       h.Name,
		SessionID:  h.SessionID,
		SessionNum: h.SessionNum,
		EngageMs:   h.EngageMs,
		Title:      h.Title,
		Language:   h.Language,
		Screen:     h.Screen,
		Params:     h.Params,
		NumParams:  h.NumParams,
		UserProps:  h.UserProps,

		Currency:      h.commerce.Currency,
		Value:         h.commerce.Value,
		Tax:           h.commerce.Tax,
		Shipping:      h.commerce.Shipping,
		TransactionID: h.commerce.TransactionID,
		Items:         h.commerce.Items,
	}
	if h.TimeMicros != 0 {
		e.TimeMicros = h.TimeMicros
	}
	// E-mail addresses are personal data wherever a page puts them.
	e.Title = privacy.ScrubEmails(e.Title)
	scrubEmails(e.Params)
	scrubEmails(e.UserProps)
	if e.TransactionID != "" {
		e.TransactionID = privacy.ScrubEmails(e.TransactionID)
	}
	for i := range e.Items {
		for _, f := range e.Items[i].Texts() {
			if *f.Value != "" {
				*f.Value = privacy.ScrubEmails(*f.Value)
			}
		}
	}
	identify(e, memo.identity().ids(key, hasher, ip, ua, cid, uid))
	if h.SessionStart || h.NewSession {
		e.Flags |= protocol.FlagSessionStart
	}
	if h.FirstVisit {
		e.Flags |= protocol.FlagFirstVisit
	}
	if h.Engaged {
		e.Flags |= protocol.FlagEngaged
	}
	var err error
	if e.Host, e.Path, err = memo.page(h.Page, site); err != nil {
		return &ParamError{Param: "dl", Reason: err.Error()}
	}
	if e.Referrer, err = memo.referrer(h.Referrer, e.Host, site); err != nil {
		return &ParamError{Param: "dr", Reason: err.Error()}
	}
	return nil
}

// scrubEmails masks e-mail addresses in m's values, in place. Most hits
// have no parameters (and a range over an empty map costs more than the
// test of its length); a value without an address is left as it is.
func scrubEmails(m map[string]string) {
	if len(m) == 0 {
		return
	}
	for k, v := range m {
		if s := privacy.ScrubEmails(v); s != v {
			m[k] = s
		}
	}
}

// requestMemo remembers what the events of one request mostly share, so a
// 20-event POST computes it once, not 20 times: the identity
// (identityMemo), the scrubbed page and referrer (gtag.js sends dl and dr
// in the query string, under every body line) and the enrichment of the
// request's address and user agent. A nil memo computes everything.
type requestMemo struct {
	ids identityMemo
	// The last referrer scrubbed without error: raw, for a page on
	// pageHost of site, and what it gave.
	rawRef, pageHost string
	site             *protocol.Site
	ref              string
	// The last page URL scrubbed without error for pageSite, and what it
	// gave (gtag.js sends dl in the query string too).
	rawPage, host, path string
	pageSite            *protocol.Site
	pages               privacy.PageMemo // the scheme and host of the pages scrubbed
	// enriched: the Enricher was asked; bot is its verdict, enrichment
	// holds the fields it set otherwise.
	enriched, bot bool
	enrichment    protocol.Event
}

// enrich is Enricher.Enrich of e, asked once per request: its answer
// depends on the request's address and user agent alone, which every
// event of the request shares.
func (m *requestMemo) enrich(en Enricher, e *protocol.Event, ip netip.Addr, ua string) (bot bool) {
	if !m.enriched {
		m.enriched, m.bot = true, en.Enrich(e, ip, ua)
		m.enrichment = protocol.Event{Browser: e.Browser, BrowserVer: e.BrowserVer, OS: e.OS, Device: e.Device,
			Country: e.Country, Region: e.Region, City: e.City}
		return m.bot
	}
	if m.bot {
		return true
	}
	x := &m.enrichment
	e.Browser, e.BrowserVer, e.OS, e.Device = x.Browser, x.BrowserVer, x.OS, x.Device
	e.Country, e.Region, e.City = x.Country, x.Region, x.City
	return false
}

// identity is the identity memo; nil for a nil memo.
func (m *requestMemo) identity() *identityMemo {
	if m == nil {
		return nil
	}
	return &m.ids
}

// page is privacy.ScrubPage of raw under site's kept parameters,
// remembered.
func (m *requestMemo) page(raw string, site *protocol.Site) (host, path string, err error) {
	if m != nil && m.pageSite == site && m.rawPage == raw && raw != "" {
		return m.host, m.path, nil
	}
	if m == nil {
		return privacy.ScrubPage(raw, site.KeepParams)
	}
	host, path, err = m.pages.ScrubPage(raw, site.KeepParams)
	if err == nil {
		m.rawPage, m.pageSite, m.host, m.path = raw, site, host, path
	}
	return host, path, err
}

// referrer is privacy.ScrubReferrer of raw for a page on pageHost of site,
// remembered.
func (m *requestMemo) referrer(raw, pageHost string, site *protocol.Site) (string, error) {
	if raw == "" {
		return "", nil
	}
	if m != nil && m.site == site && m.rawRef == raw && m.pageHost == pageHost {
		return m.ref, nil
	}
	ref, err := privacy.ScrubReferrer(raw, pageHost, site.Domains, site.KeepParams)
	if err == nil && m != nil {
		m.rawRef, m.pageHost, m.site, m.ref = raw, pageHost, site, ref
	}
	return ref, err
}

// allowClient takes a token of ip's bucket, or answers 429 with
// Retry-After and returns false.
func (c *Collector) allowClient(x exchange, ip netip.Addr) bool {
	ok, wait := c.perIP.take(ip)
	if !ok {
		c.count(0, OutcomeRateLimited, 1)
		fail(x, http.StatusTooManyRequests, retryAfterSeconds(wait),
			"too many requests from this address; the agent's per-client rate limit (--rate-ip) was reached, retry later")
	}
	return ok
}

// doNotTrack reports whether a browser request carries DNT: 1 or
// Sec-GPC: 1.
func doNotTrack(x exchange) bool {
	return x.Header("DNT") == "1" || x.Header("Sec-GPC") == "1"
}

// dntPolicy is what a DNT/GPC hit for site becomes: the site's policy
// (protocol.Site.DNT), else the agent's Options.DoNotTrack.
func (c *Collector) dntPolicy(site *protocol.Site) DNTPolicy {
	switch site.DNT {
	case "drop":
		return DNTDrop
	case "cookieless":
		return DNTCookieless
	case "ignore":
		return DNTIgnore
	}
	return c.opts.DoNotTrack
}

// BuildEvent applies the agent's privacy rules to one hit outside a
// request, as the collection endpoints do inside one: consent, e-mail
// masking, page and referrer scrubbing by the site's allowlist, a daily
// cookieless visitor id keyed with key (no identity secret is used: the
// hits it builds carry no client id). now is the event time unless h.TimeMicros is
// set. The log importer (agent/accesslog) builds imported page views with
// it, so history follows the same rules as live hits. An error is a
// *ParamError naming the field.
func BuildEvent(h *Hit, site *protocol.Site, key *privacy.Key, ip netip.Addr, ua string, now time.Time) (protocol.Event, error) {
	e, perr := buildEvent(h, site, key, nil, ip, ua, now, nil)
	if perr != nil {
		return e, perr
	}
	return e, nil
}
