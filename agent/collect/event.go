package collect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/avila-analytics/avila/protocol/rules"
)

// trackerEvent is the small JSON t.js posts to /api/event.
type trackerEvent struct {
	MeasurementID string                     `json:"m"`
	Name          string                     `json:"n"`
	URL           string                     `json:"u"`
	Referrer      string                     `json:"r"`
	Title         string                     `json:"t"`
	Language      string                     `json:"l"`
	Screen        string                     `json:"s"`
	Params        map[string]json.RawMessage `json:"p"`
}

// ParseTrackerEvent parses and validates one /api/event body against the
// same GA4 limits as a gtag.js hit. Any error is a *ParamError naming the
// field.
func ParseTrackerEvent(body []byte) (Hit, error) {
	var te trackerEvent
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&te); err != nil {
		return Hit{}, &ParamError{Param: "body", Reason: "not the t.js event JSON: " + describeJSONError(err)}
	}
	if dec.More() {
		return Hit{}, &ParamError{Param: "body", Reason: "data after the JSON object"}
	}
	h := Hit{
		MeasurementID: te.MeasurementID, Name: te.Name, Page: te.URL, Referrer: te.Referrer,
		Title: te.Title, Language: strings.ToLower(te.Language), Screen: te.Screen,
	}
	if h.MeasurementID == "" {
		return h, &ParamError{Param: "m", Reason: "missing measurement id (G-…); set data-id on the script tag"}
	}
	if v := rules.EventName("n", h.Name); v != nil {
		return h, ruleError(v)
	}
	switch {
	case !rules.ValidName(h.Name):
		return h, &ParamError{Param: "n", Reason: fmt.Sprintf("event name %s must start with a letter and hold only letters, digits and underscores (rule %s)", quote(h.Name), rules.NamePattern.Code), Rule: rules.NamePattern}
	case rules.ReservedPrefix(h.Name) != "":
		return h, &ParamError{Param: "n", Reason: fmt.Sprintf("event name %s starts with a reserved prefix (rule %s)", quote(h.Name), rules.NameReserved.Code), Rule: rules.NameReserved}
	}
	if len(te.Params) > maxEventParams {
		return h, &ParamError{Param: "p", Reason: fmt.Sprintf("%d parameters, GA4 allows %d (rule %s)", len(te.Params), maxEventParams, rules.ParamCount.Code)}
	}
	for _, name := range sortedKeys(te.Params) {
		param := "p." + name
		if v := rules.ParamName(param, name); v != nil {
			return h, ruleError(v)
		}
		if name == "items" {
			items, perr := parseJSONItems(param, te.Params[name])
			if perr != nil {
				return h, perr
			}
			h.commerce.Items = items
			continue
		}
		s, ok, isText := scalar(te.Params[name])
		if !ok {
			return h, &ParamError{Param: param, Reason: "value must be a string, number or boolean"}
		}
		if !isText && s != "true" && s != "false" {
			f, perr := number(param, s)
			if perr != nil {
				return h, perr
			}
			if h.NumParams == nil {
				h.NumParams = map[string]float64{}
			}
			h.NumParams[name] = f
			continue
		}
		if v := rules.ParamValue(param, s); v != nil {
			return h, ruleError(v)
		}
		if h.Params == nil {
			h.Params = map[string]string{}
		}
		h.Params[name] = s
	}
	if perr := takeCommerce(&h, "p."); perr != nil {
		return h, perr
	}
	return h, nil
}

// ServeEvent handles POST /api/event from t.js. The body is text/plain (so
// browsers send it without a preflight) or application/json (after one).
// It answers 204 once the event is durable, like /g/collect, and follows
// the same DNT/GPC and rate-limit rules. t.js sends no cookie or client
// id: every visitor is cookieless.
func (c *Collector) ServeEvent(w http.ResponseWriter, r *http.Request) {
	c.event(httpExchange{w, r})
}

func (c *Collector) event(x exchange) {
	if preflight(x) {
		return
	}
	allowOrigin(x)
	if m := x.Method(); m != http.MethodPost {
		x.SetHeader("Allow", "POST, OPTIONS")
		c.count(0, OutcomeInvalid, 1)
		fail(x, http.StatusMethodNotAllowed, 0, fmt.Sprintf("method %s not allowed; t.js sends POST", m))
		return
	}
	ip := clientIP(x, c.opts.TrustedProxies)
	if !c.allowClient(x, ip) {
		return
	}
	body, ok := c.readBodyLimit(x, c.opts.MaxBodyBytes, "text/plain (as t.js does)", "text/plain", "application/json")
	if !ok {
		c.count(0, OutcomeInvalid, 1)
		return
	}
	h, err := ParseTrackerEvent(body)
	if err != nil {
		c.count(0, OutcomeInvalid, 1)
		fail(x, http.StatusBadRequest, 0, err.Error())
		return
	}
	h.Cookieless = true
	h.doNotTrack = doNotTrack(x)
	c.store(x, []Hit{h}, ip)
}
