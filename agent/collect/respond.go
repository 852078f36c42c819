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
func (c *Collector) appendFailed(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, queue.ErrFull):
		fail(w, http.StatusServiceUnavailable, retryFull,
			"the agent's disk buffer is full (the aggregator has not taken events for a while); the event was not stored, retry later")
	case errors.Is(err, queue.ErrClosed):
		fail(w, http.StatusServiceUnavailable, retryClosing, "the agent is shutting down; the event was not stored")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		fail(w, http.StatusServiceUnavailable, retryCanceled,
			"the request ended before the event was stored durably; it may or may not be stored")
	default:
		if n, ok := c.failLog.Allow(time.Now()); ok {
			c.log.Error("storing events failed", "err", err, "suppressed", n)
		}
		fail(w, http.StatusInternalServerError, 0, "storing the event failed: "+err.Error())
	}
}

// fail writes a plain-text reason with status; retryAfter > 0 adds a
// Retry-After header (seconds).
func fail(w http.ResponseWriter, status, retryAfter int, reason string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(retryAfter))
	}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(reason + "\n"))
}
