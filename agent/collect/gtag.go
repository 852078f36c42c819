package collect

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"time"

	"github.com/avila-analytics/avila/agent/privacy"
	"github.com/avila-analytics/avila/protocol"
)

// ServeGtag handles GET and POST /g/collect in the gtag.js wire format. It
// answers 204 only after every event of the request is durably queued;
// otherwise a 4xx or 5xx whose body says why.
func (c *Collector) ServeGtag(w http.ResponseWriter, r *http.Request) {
	if preflight(w, r) {
		return
	}
	allowOrigin(w, r)
	var body []byte
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var ok bool
		if body, ok = c.readBody(w, r); !ok {
			return
		}
	default:
		w.Header().Set("Allow", "GET, POST, OPTIONS")
		fail(w, http.StatusMethodNotAllowed, 0, fmt.Sprintf("method %s not allowed; gtag.js sends GET or POST", r.Method))
		return
	}
	hits, err := ParseGtag(r.URL.RawQuery, body)
	if err != nil {
		fail(w, http.StatusBadRequest, 0, err.Error())
		return
	}
	c.store(w, r, hits)
}

// readBody reads a POST body within the size limit; false means an error
// answer was sent.
func (c *Collector) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "text/plain" && mt != "application/x-www-form-urlencoded") {
			fail(w, http.StatusUnsupportedMediaType, 0,
				fmt.Sprintf("content type %s not accepted; send text/plain (as sendBeacon does) or none", quote(ct)))
			return nil, false
		}
	}
	limit := c.opts.MaxBodyBytes
	tooLarge := fmt.Sprintf("body larger than %d bytes, GA4's limit; send fewer events per request", limit)
	if r.ContentLength > limit {
		fail(w, http.StatusRequestEntityTooLarge, 0, tooLarge)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		fail(w, http.StatusRequestEntityTooLarge, 0, tooLarge)
		return nil, false
	case err != nil:
		fail(w, http.StatusBadRequest, 0, "reading the body failed: "+err.Error())
		return nil, false
	}
	return body, true
}

// store turns hits into events and queues them in one Append, answering
// 204 only when that Append succeeded.
func (c *Collector) store(w http.ResponseWriter, r *http.Request, hits []Hit) {
	sites := c.opts.Sites()
	if sites == nil {
		c.opts.OnUnknownSite()
		fail(w, http.StatusServiceUnavailable, retryNoConfig,
			"the agent has no site config yet: no aggregator has answered since it started with an empty data dir")
		return
	}
	now := c.opts.Now()
	ip := clientIP(r)
	ua := r.UserAgent()
	events := make([][]byte, 0, len(hits))
	for i := range hits {
		h := &hits[i]
		site, ok := sites.Lookup(h.MeasurementID)
		if !ok {
			c.opts.OnUnknownSite()
			fail(w, http.StatusBadRequest, 0, fmt.Sprintf(
				"tid: unknown measurement id %s; no site with it is configured on this agent (a site created just now is known within seconds)",
				quote(h.MeasurementID)))
			return
		}
		key, err := sites.Key(site.ID, now)
		if err != nil {
			c.opts.OnUnknownSite()
			fail(w, http.StatusServiceUnavailable, retryNoSalt, err.Error())
			return
		}
		e, perr := buildEvent(h, site, key, ip, ua, now)
		if perr != nil {
			perr.Line = h.line
			fail(w, http.StatusBadRequest, 0, perr.Error())
			return
		}
		if c.opts.Enricher != nil && c.opts.Enricher.Enrich(&e, ip, ua) {
			continue // a bot: counted by the enricher, never stored as a visitor
		}
		b, err := protocol.EncodeEvent(&e)
		if err != nil {
			c.log.Error("encoding an event failed", "site", site.ID, "err", err)
			fail(w, http.StatusInternalServerError, 0, "encoding the event failed: "+err.Error())
			return
		}
		events = append(events, b)
	}
	if err := c.opts.Queue.Append(r.Context(), events); err != nil {
		c.appendFailed(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// buildEvent applies the privacy rules to one hit. The client IP and user
// agent only enter the visitor hash.
func buildEvent(h *Hit, site *protocol.Site, key *privacy.Key, ip netip.Addr, ua string, now time.Time) (protocol.Event, *ParamError) {
	cid, uid := h.ClientID, h.UserID
	if h.AnalyticsDenied() {
		// Consent mode: analytics storage denied, so neither the cookie id
		// nor the user id may identify the visitor.
		cid, uid = "", ""
	}
	e := protocol.Event{
		Site:       site.ID,
		TimeMicros: now.UnixMicro(),
		Name:       h.Name,
		Visitor:    key.Visitor(ip, ua, cid),
		SessionID:  h.SessionID,
		SessionNum: h.SessionNum,
		EngageMs:   h.EngageMs,
		Title:      h.Title,
		Language:   h.Language,
		Screen:     h.Screen,
		Params:     h.Params,
		NumParams:  h.NumParams,
		UserProps:  h.UserProps,
	}
	if uid != "" {
		e.User = key.User(uid)
	}
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
	if e.Host, e.Path, err = privacy.ScrubPage(h.Page); err != nil {
		return e, &ParamError{Param: "dl", Reason: err.Error()}
	}
	if e.Referrer, err = privacy.ScrubReferrer(h.Referrer, e.Host, site.Domains); err != nil {
		return e, &ParamError{Param: "dr", Reason: err.Error()}
	}
	return e, nil
}

// clientIP is the TCP peer's address. Forwarded headers are not trusted
// here: a proxy in front of the agent needs a trusted-proxy list first.
func clientIP(r *http.Request) netip.Addr {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr()
	}
	ip, _ := netip.ParseAddr(r.RemoteAddr)
	return ip
}
