package collect

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// ServeMP handles POST /mp/collect?measurement_id=&api_secret=. The secret
// must match the site's. The body is JSON whatever its Content-Type says,
// as GA4 reads it. A valid body is stored like gtag.js hits (204 only
// once durable); a body breaking a rule is refused whole with 400 and every
// broken rule, one per line, as /debug/mp/collect would list them.
func (c *Collector) ServeMP(w http.ResponseWriter, r *http.Request) {
	if !c.mpStart(w, r) {
		return
	}
	body, ok := c.readBodyLimit(w, r, c.opts.MaxMPBodyBytes, "")
	if !ok {
		c.count(0, OutcomeInvalid, 1)
		return
	}
	q := r.URL.Query()
	mid := q.Get("measurement_id")
	if status, msg := c.checkSecret(mid, q.Get("api_secret")); msg != nil {
		c.count(0, OutcomeInvalid, 1)
		if status == http.StatusBadRequest {
			c.opts.OnUnknownSite()
		}
		fail(w, status, 0, msg.String())
		return
	}
	req, msgs := ParseMP(mid, body, c.opts.Now())
	if len(msgs) > 0 {
		c.count(0, OutcomeInvalid, 1)
		lines := make([]string, len(msgs))
		for i, m := range msgs {
			lines[i] = m.String()
		}
		fail(w, http.StatusBadRequest, 0, strings.Join(lines, "\n"))
		return
	}
	for i := range req.Hits {
		req.Hits[i].Cookieless = req.Denied
		req.Hits[i].server = true
	}
	c.store(w, r, req.Hits, clientIP(r, c.opts.TrustedProxies))
}

// ServeMPDebug handles POST /debug/mp/collect: it validates like ServeMP,
// stores nothing and answers 200 with {"validationMessages":[…]} in GA4's
// shape, empty when the request would be accepted.
func (c *Collector) ServeMPDebug(w http.ResponseWriter, r *http.Request) {
	if !c.mpStart(w, r) {
		return
	}
	body, ok := c.readBodyLimit(w, r, c.opts.MaxMPBodyBytes, "")
	if !ok {
		return
	}
	q := r.URL.Query()
	mid := q.Get("measurement_id")
	var msgs []ValidationMessage
	if _, msg := c.checkSecret(mid, q.Get("api_secret")); msg != nil {
		msgs = append(msgs, *msg)
	}
	_, more := ParseMP(mid, body, c.opts.Now())
	msgs = append(msgs, more...)
	if msgs == nil {
		msgs = []ValidationMessage{}
	}
	out, err := json.Marshal(struct {
		ValidationMessages []ValidationMessage `json:"validationMessages"`
	}{msgs})
	if err != nil {
		fail(w, http.StatusInternalServerError, 0, "encoding the answer failed: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(out, '\n'))
}

// mpStart answers preflights and anything but POST, and applies the
// per-client rate limit; false means an answer was sent.
func (c *Collector) mpStart(w http.ResponseWriter, r *http.Request) bool {
	if preflight(w, r) {
		return false
	}
	allowOrigin(w, r)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, OPTIONS")
		fail(w, http.StatusMethodNotAllowed, 0, fmt.Sprintf("method %s not allowed; the Measurement Protocol uses POST", r.Method))
		return false
	}
	return c.allowClient(w, clientIP(r, c.opts.TrustedProxies))
}

// checkSecret checks measurement_id and api_secret against the site
// config. On failure it returns the status for /mp/collect and the
// message; 503 when there is no config yet.
func (c *Collector) checkSecret(mid, secret string) (int, *ValidationMessage) {
	msg := func(path, code, desc string) *ValidationMessage {
		return &ValidationMessage{FieldPath: path, Description: desc, ValidationCode: code}
	}
	if mid == "" {
		return http.StatusBadRequest, msg("measurement_id", CodeValueRequired, "The measurement_id query parameter is required.")
	}
	sites := c.opts.Sites()
	if sites == nil {
		return http.StatusServiceUnavailable, msg("measurement_id", CodeValueInvalid,
			"The agent has no site config yet: no aggregator has answered since it started with an empty data dir.")
	}
	site, ok := sites.Lookup(mid)
	switch {
	case !ok:
		return http.StatusBadRequest, msg("measurement_id", CodeValueInvalid, fmt.Sprintf(
			"Unknown measurement_id %s: no site with it is configured on this agent.", quote(mid)))
	case secret == "":
		return http.StatusForbidden, msg("api_secret", CodeValueRequired, "The api_secret query parameter is required.")
	case site.APISecret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(site.APISecret)) != 1:
		return http.StatusForbidden, msg("api_secret", CodeValueInvalid,
			"The api_secret does not match the site's Measurement Protocol secret (printed by `avila site create`).")
	}
	return 0, nil
}
