package collect

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/avila-analytics/avila/agent/queue"
)

// Retry-After values, in seconds, for refusals that pass.
const (
	retryNoConfig = 5  // the config fetch retries within seconds
	retryFull     = 30 // space frees up only as the aggregator acknowledges
	retryClosing  = 5  // a restarted agent answers again within seconds
	retryCanceled = 1
)

// appendFailed answers a request whose events could not be queued. Nothing
// here is a 2xx: the events may not be on disk.
func (c *Collector) appendFailed(x exchange, err error) {
	switch {
	case errors.Is(err, queue.ErrFull):
		fail(x, http.StatusServiceUnavailable, retryFull,
			"the agent's disk buffer is full (the aggregator has not taken events for a while); the event was not stored, retry later")
	case errors.Is(err, queue.ErrClosed):
		fail(x, http.StatusServiceUnavailable, retryClosing, "the agent is shutting down; the event was not stored")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		fail(x, http.StatusServiceUnavailable, retryCanceled,
			"the request ended before the event was stored durably; it may or may not be stored")
	default:
		if n, ok := c.failLog.Allow(time.Now()); ok {
			c.log.Error("storing events failed", "err", err, "suppressed", n)
		}
		fail(x, http.StatusInternalServerError, 0, "storing the event failed: "+err.Error())
	}
}

// fail writes a plain-text reason with status; retryAfter > 0 adds a
// Retry-After header (seconds).
func fail(x exchange, status, retryAfter int, reason string) {
	x.SetHeader("Content-Type", "text/plain; charset=utf-8")
	x.SetHeader("X-Content-Type-Options", "nosniff")
	x.SetHeader("Cache-Control", "no-store")
	if retryAfter > 0 {
		x.SetHeader("Retry-After", strconv.Itoa(retryAfter))
	}
	x.Answer(status, []byte(reason+"\n"))
}
