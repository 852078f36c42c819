package collect

import (
	"errors"

	"github.com/avila-analytics/avila/agent/queue"
)

// Outcomes of collected events, as passed to Options.Count. The set is
// fixed, so metrics labelled with it stay bounded.
const (
	OutcomeStored      = "stored"       // durably queued; the sender got a 2xx
	OutcomeInvalid     = "invalid"      // refused with a 4xx naming the broken rule
	OutcomeUnknownSite = "unknown_site" // the measurement id names no configured site
	OutcomeNotReady    = "not_ready"    // no site config yet; answered 503
	OutcomeNoSalt      = "no_salt"      // durably queued like stored, with a process-local visitor id: no salt for today yet
	OutcomeBot         = "bot"          // answered 2xx, not stored (crawler, headless browser)
	OutcomeQueueFull   = "queue_full"   // the disk buffer is full; answered 503
	OutcomeFailed      = "failed"       // encoding or storing failed; answered 5xx
)

// count reports events with one outcome; site 0 means the site is unknown.
func (c *Collector) count(site uint32, outcome string, events int) {
	if c.opts.Count != nil && events > 0 {
		c.opts.Count(site, outcome, events)
	}
}

// appendOutcome is the outcome of events whose Append failed with err.
func appendOutcome(err error) string {
	if errors.Is(err, queue.ErrFull) {
		return OutcomeQueueFull
	}
	return OutcomeFailed
}

// countSites reports one outcome for events of the sites listed (one entry
// per event), a call per run of equal sites.
func (c *Collector) countSites(sites []uint32, outcome string) {
	for i := 0; i < len(sites); {
		j := i + 1
		for j < len(sites) && sites[j] == sites[i] {
			j++
		}
		c.count(sites[i], outcome, j-i)
		i = j
	}
}
