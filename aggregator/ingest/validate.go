package ingest

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Limits on one event. They are at least as loose as the agent's own
// (GA4's) limits: the agent is the place that answers senders with a 4xx;
// here they guard the database (index row sizes, partitions) against a
// faulty or hostile agent.
const (
	maxNameLen     = 40 // characters, as GA4
	maxPathLen     = 1000
	maxTitleLen    = 300
	maxReferrerLen = 1000
	maxHostLen     = 253  // a DNS name
	maxShortLen    = 100  // language, screen, geo, browser, OS, device
	maxParams      = 100  // entries over Params, NumParams and UserProps
	maxParamKeyLen = 100  // bytes
	maxParamValLen = 1000 // bytes
)

// minEventTime: earlier times are clock garbage (and would create ancient partitions).
var minEventTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// validate splits events into those to store and dead letters. An error means
// the batch cannot be judged now (site list unreadable): retry it.
func (h *Handler) validate(ctx context.Context, events []protocol.Event) ([]protocol.Event, []postgres.DeadLetter, error) {
	now := h.opts.Now()
	gen := h.sitesGeneration()
	// Filter in place: the slot written is never ahead of the one read.
	good := events[:0]
	var dead []postgres.DeadLetter
	for i := range events {
		e := &events[i]
		reason := checkEvent(e, now, h.opts.MaxFuture)
		if reason == "" {
			known, err := h.siteKnown(ctx, e.Site, gen)
			if err != nil {
				return nil, nil, err
			}
			if !known {
				reason = fmt.Sprintf("unknown site %d", e.Site)
			}
		}
		if reason == "" {
			good = append(good, *e)
			continue
		}
		raw, err := protocol.EncodeEvent(e)
		if err != nil {
			// It was just decoded from MessagePack, so it encodes; keep the
			// reason even if the body is lost.
			raw = nil
			reason += "; " + err.Error()
		}
		dead = append(dead, postgres.DeadLetter{Index: i, Reason: reason, Event: raw})
	}
	return good, dead, nil
}

// checkEvent returns why an event cannot be stored, or "".
func checkEvent(e *protocol.Event, now time.Time, maxFuture time.Duration) string {
	switch n := utf8.RuneCountInString(e.Name); {
	case n == 0:
		return "event name is empty"
	case n > maxNameLen:
		return fmt.Sprintf("event name has %d characters, limit %d", n, maxNameLen)
	}
	t := time.UnixMicro(e.TimeMicros)
	if t.Before(minEventTime) {
		return fmt.Sprintf("event time %s is before %s", t.UTC().Format(time.RFC3339), minEventTime.Format(time.DateOnly))
	}
	if limit := now.Add(maxFuture); t.After(limit) {
		return fmt.Sprintf("event time %s is more than %s ahead of the aggregator's clock", t.UTC().Format(time.RFC3339), maxFuture)
	}
	fields := []struct {
		name, value string
		limit       int
	}{
		{"name", e.Name, 4 * maxNameLen}, {"path", e.Path, maxPathLen}, {"title", e.Title, maxTitleLen},
		{"referrer", e.Referrer, maxReferrerLen}, {"host", e.Host, maxHostLen},
		{"language", e.Language, maxShortLen}, {"screen", e.Screen, maxShortLen}, {"country", e.Country, maxShortLen},
		{"region", e.Region, maxShortLen}, {"city", e.City, maxShortLen}, {"browser", e.Browser, maxShortLen},
		{"browser version", e.BrowserVer, maxShortLen}, {"os", e.OS, maxShortLen}, {"device", e.Device, maxShortLen},
	}
	for _, f := range fields {
		if r := checkString(f.name, f.value, f.limit); r != "" {
			return r
		}
	}
	if n := len(e.Params) + len(e.NumParams) + len(e.UserProps); n > maxParams {
		return fmt.Sprintf("%d parameters, limit %d", n, maxParams)
	}
	for k, v := range e.Params {
		if r := checkParam("parameter", k, v); r != "" {
			return r
		}
	}
	for k := range e.NumParams {
		if r := checkParam("numeric parameter", k, ""); r != "" {
			return r
		}
	}
	for k, v := range e.UserProps {
		if r := checkParam("user property", k, v); r != "" {
			return r
		}
	}
	return ""
}

// checkString bounds a text column's value in bytes and keeps out what
// PostgreSQL text cannot hold (invalid UTF-8, NUL).
func checkString(name, v string, limit int) string {
	switch {
	case len(v) > limit:
		return fmt.Sprintf("%s is %d bytes, limit %d", name, len(v), limit)
	case !utf8.ValidString(v):
		return name + " is not valid UTF-8"
	case strings.IndexByte(v, 0) >= 0:
		return name + " contains a NUL byte"
	}
	return ""
}

func checkParam(what, k, v string) string {
	if k == "" {
		return what + " with an empty name"
	}
	if r := checkString(what+" name", k, maxParamKeyLen); r != "" {
		return r
	}
	return checkString(fmt.Sprintf("%s %.40q", what, k), v, maxParamValLen)
}
