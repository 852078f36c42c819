package collect

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ServeMP handles POST /mp/collect?measurement_id=&api_secret=. The body is
// JSON whatever its Content-Type says, as GA4 reads it.
//
// Like GA4's endpoint, it answers 204 to a request that breaks a rule: the
// events that pass are stored (204 only once durable), the rest are dropped
// and counted by reason (Options.CountMPRejected), and the Avila-Validation
// header says what was dropped and why; /debug/mp/collect lists every rule.
// With Options.MPStrict a request that breaks any rule is refused whole: 400
// listing every broken rule one per line, 403 for the secret. Transport
// limits are errors either way: 405, 413, 429, and 503 while the agent has
// no site config.
func (c *Collector) ServeMP(w http.ResponseWriter, r *http.Request) {
	c.mp(httpExchange{w, r})
}

func (c *Collector) mp(x exchange) {
	if !c.mpStart(x) {
		return
	}
	body, ok := c.readBodyLimit(x, c.opts.MaxMPBodyBytes, "")
	if !ok {
		c.count(0, OutcomeInvalid, 1)
		return
	}
	q, _ := url.ParseQuery(x.Query())
	mid := q.Get("measurement_id")
	status, secretMsg := c.checkSecret(mid, q.Get("api_secret"))
	if status == http.StatusBadRequest {
		c.opts.OnUnknownSite()
	}
	if secretMsg != nil && (c.opts.MPStrict || status == http.StatusServiceUnavailable) {
		c.count(0, OutcomeInvalid, 1)
		fail(x, status, 0, secretMsg.String())
		return
	}
	req, msgs := ParseMP(mid, body, c.opts.Now())
	if c.opts.MPStrict && len(msgs) > 0 {
		c.count(0, OutcomeInvalid, 1)
		lines := make([]string, len(msgs))
		for i, m := range msgs {
			lines[i] = m.String()
		}
		fail(x, http.StatusBadRequest, 0, strings.Join(lines, "\n"))
		return
	}
	if secretMsg != nil {
		// Nothing of a request the site's secret does not vouch for is kept.
		reason, outcome := mpReasonSecret, OutcomeInvalid
		if status == http.StatusBadRequest {
			reason, outcome = mpReasonUnknownSite, OutcomeUnknownSite
		}
		n := max(1, mpEvents(req))
		c.count(0, outcome, n)
		c.opts.CountMPRejected(reason, n)
		acceptDropped(x, n, n, *secretMsg)
		return
	}
	site, _ := c.opts.Sites().Lookup(mid)
	if req == nil {
		c.count(site.ID, OutcomeInvalid, 1)
		c.opts.CountMPRejected(strings.ToLower(msgs[0].ValidationCode), 1)
		acceptDropped(x, 1, 1, msgs[0])
		return
	}
	if len(req.Rejected) > 0 {
		c.count(site.ID, OutcomeInvalid, len(req.Rejected))
		for _, code := range req.Rejected {
			c.opts.CountMPRejected(strings.ToLower(code), 1)
		}
		if len(req.Hits) == 0 {
			acceptDropped(x, len(req.Rejected), len(req.Rejected), msgs[0])
			return
		}
		setDropped(x, len(req.Rejected), mpEvents(req), msgs[0])
	}
	for i := range req.Hits {
		req.Hits[i].Cookieless, req.Hits[i].Granted = req.Denied, req.Granted
		req.Hits[i].server = true
	}
	c.store(x, req.Hits, clientIP(x, c.opts.TrustedProxies))
}

// Reasons of analytics_mp_rejected_total besides the lower-cased validation
// codes.
const (
	mpReasonSecret      = "api_secret"   // missing or wrong api_secret
	mpReasonUnknownSite = "unknown_site" // no site has the measurement_id
)

// MPRejectReasons are every reason CountMPRejected is called with, so a
// metric can export them all from the start.
var MPRejectReasons = []string{
	strings.ToLower(CodeValueInvalid), strings.ToLower(CodeValueRequired), strings.ToLower(CodeNameInvalid),
	strings.ToLower(CodeNameReserved), strings.ToLower(CodeValueOutOfBounds), strings.ToLower(CodeExceededMaxEntites),
	mpReasonSecret, mpReasonUnknownSite,
}

// mpEvents is the number of events a parsed request held.
func mpEvents(req *MPRequest) int {
	if req == nil {
		return 0
	}
	return len(req.Hits) + len(req.Rejected)
}

// maxValidationHeader bounds the Avila-Validation header.
const maxValidationHeader = 300

// setDropped says in the Avila-Validation header how many of a request's
// events were dropped and the first rule broken.
func setDropped(x exchange, dropped, of int, first ValidationMessage) {
	v := fmt.Sprintf("dropped %d of %d events; first rule broken: %s; POST the request to /debug/mp/collect for every rule",
		dropped, of, first.String())
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, v)
	if len(v) > maxValidationHeader {
		v = strings.ToValidUTF8(v[:maxValidationHeader], "") + "…"
	}
	x.SetHeader("Avila-Validation", v)
}

// acceptDropped answers 204 for a request none of whose events is stored.
func acceptDropped(x exchange, dropped, of int, first ValidationMessage) {
	setDropped(x, dropped, of, first)
	x.SetHeader("Cache-Control", "no-store")
	x.Answer(http.StatusNoContent, nil)
}

// ServeMPDebug handles POST /debug/mp/collect: it validates like ServeMP,
// stores nothing and answers 200 with {"validationMessages":[…]} in GA4's
// shape, empty when the request would be accepted.
func (c *Collector) ServeMPDebug(w http.ResponseWriter, r *http.Request) {
	c.mpDebug(httpExchange{w, r})
}

func (c *Collector) mpDebug(x exchange) {
	if !c.mpStart(x) {
		return
	}
	body, ok := c.readBodyLimit(x, c.opts.MaxMPBodyBytes, "")
	if !ok {
		return
	}
	q, _ := url.ParseQuery(x.Query())
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
		fail(x, http.StatusInternalServerError, 0, "encoding the answer failed: "+err.Error())
		return
	}
	x.SetHeader("Content-Type", "application/json")
	x.SetHeader("Cache-Control", "no-store")
	x.Answer(http.StatusOK, append(out, '\n'))
}

// mpStart answers preflights and anything but POST, and applies the
// per-client rate limit; false means an answer was sent.
func (c *Collector) mpStart(x exchange) bool {
	if preflight(x) {
		return false
	}
	allowOrigin(x)
	if m := x.Method(); m != http.MethodPost {
		x.SetHeader("Allow", "POST, OPTIONS")
		fail(x, http.StatusMethodNotAllowed, 0, fmt.Sprintf("method %s not allowed; the Measurement Protocol uses POST", m))
		return false
	}
	return c.allowClient(x, clientIP(x, c.opts.TrustedProxies))
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
