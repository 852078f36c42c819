package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/rules"
	"github.com/avila-analytics/avila/storage/postgres"
)

// The rules an event must pass are protocol/rules', the same the agent
// applies before it answers a hit: here they are only a guard (against a
// faulty or hostile agent, or a bug), so a dead letter means a bug.

// validate splits events into those to store and dead letters, with the rule
// code each dead letter broke. An error means the batch cannot be judged now
// (site list unreadable): retry it.
func (h *Handler) validate(ctx context.Context, events []protocol.Event) ([]protocol.Event, []postgres.DeadLetter, []string, error) {
	now := h.opts.Now()
	gen := h.sitesGeneration()
	// Filter in place: the slot written is never ahead of the one read.
	good := events[:0]
	var dead []postgres.DeadLetter
	var broken []string          // rule of each dead letter
	var known uint32             // a site found known; a batch's events are mostly of one
	var shared rules.SharedTexts // the texts a visitor's events share, checked once
	for i := range events {
		e := &events[i]
		rule, reason := checkEvent(e, now, h.opts.MaxFuture, &shared)
		if reason == "" && (e.Site != known || known == 0) {
			ok, err := h.siteKnown(ctx, e.Site, gen)
			if err != nil {
				return nil, nil, nil, err
			}
			if ok {
				known = e.Site
			} else {
				rule, reason = ruleUnknownSite, fmt.Sprintf("unknown site %d (rule %s)", e.Site, ruleUnknownSite)
			}
		}
		if reason == "" {
			if len(good) == i { // no dead letter yet: the event is in its place
				good = good[:i+1]
			} else {
				good = append(good, *e)
			}
			continue
		}
		raw, err := protocol.EncodeEvent(e)
		if err != nil {
			// It was just decoded from MessagePack, so it encodes; keep the
			// reason even if the body is lost.
			raw = nil
			reason += "; " + err.Error()
		}
		broken = append(broken, rule)
		dead = append(dead, postgres.DeadLetter{Index: i, Reason: reason, Event: raw})
	}
	return good, dead, broken, nil
}

// ruleUnknownSite is the dead-letter rule of an event for a site the
// database does not have (deleted while the agent held its events).
const ruleUnknownSite = "unknown_site"

// checkEvent returns the code of the rule an event breaks and why, or "".
// shared, when not nil, checks the events of a batch one after another
// (rules.SharedTexts.Check), else rules.Check.
func checkEvent(e *protocol.Event, now time.Time, maxFuture time.Duration, shared *rules.SharedTexts) (rule, reason string) {
	var v *rules.Violation
	if shared != nil {
		v = shared.Check(e)
	} else {
		v = rules.Check(e)
	}
	if v == nil {
		v = rules.CheckTime(e, now, maxFuture)
	}
	if v == nil {
		return "", ""
	}
	return v.Rule.Code, v.Error()
}
