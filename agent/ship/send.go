package ship

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/avila-analytics/avila/agent/queue"
	"github.com/avila-analytics/avila/protocol"
)

// Resend backoff bounds: the delay doubles per failed attempt of a segment
// from minBackoff up to maxBackoff, and a random half of it is jitter so
// agents that lost the same aggregator do not come back in step.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

func backoff(attempt int) time.Duration {
	d := maxBackoff
	if attempt < 7 { // 100ms << 7 > 10s
		d = min(maxBackoff, minBackoff<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx is done; false means ctx is done.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// sealLoop turns pending events into segments: all of them at most
// SealInterval after they were appended, and a full segment as soon as
// SegmentEvents are pending. Its timer runs only while events are
// pending, so an idle agent does not wake every SealInterval. It only
// touches the local queue, so a slow or absent aggregator never delays
// sealing.
func (s *Shipper) sealLoop(ctx context.Context) {
	t := time.NewTimer(s.opts.SealInterval)
	defer t.Stop()
	armed := true // events queued before the start are sealed too
	for {
		var tick <-chan time.Time
		if armed {
			tick = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
			armed = false
			s.seal(1)
		case <-s.q.Appended():
			s.seal(int64(s.opts.SegmentEvents))
		}
		if !armed && s.q.Pending() > 0 {
			t.Reset(s.opts.SealInterval)
			armed = true
		}
	}
}

// seal seals segments while at least threshold events are pending.
func (s *Shipper) seal(threshold int64) {
	sealed := false
	for s.q.Pending() >= threshold {
		_, ok, err := s.q.Seal(s.opts.SegmentEvents)
		if err != nil {
			s.noteError(err)
			if n, ok := s.retryLog.Allow(time.Now()); ok {
				s.log.Error("sealing queue segment failed", "err", err, "suppressed", n)
			}
			break
		}
		if !ok {
			break
		}
		sealed = true
	}
	if sealed {
		select {
		case s.sealed <- struct{}{}:
		default:
		}
	}
}

// sendLoop keeps up to InFlight of the oldest segments in delivery. When ctx
// ends it waits for the deliveries to return.
func (s *Shipper) sendLoop(ctx context.Context) {
	inflight := map[uint64]bool{}
	done := make(chan uint64)
	listFailures := 0
	for {
		if len(inflight) < s.opts.InFlight && ctx.Err() == nil {
			// The oldest len(inflight)+InFlight segments hold every segment
			// in flight plus as many new ones as there is room for.
			segs, err := s.q.OldestSegments(len(inflight) + s.opts.InFlight)
			if err != nil {
				s.noteError(err)
				s.log.Error("listing queue segments failed", "err", err)
				listFailures++
				sleep(ctx, backoff(listFailures))
				continue
			}
			listFailures = 0
			for _, seg := range segs {
				if len(inflight) >= s.opts.InFlight {
					break
				}
				if inflight[seg.Seq] {
					continue
				}
				inflight[seg.Seq] = true
				go func(seq uint64) { done <- s.deliver(ctx, seq) }(seg.Seq)
			}
		}
		if ctx.Err() != nil && len(inflight) == 0 {
			return
		}
		var stop <-chan struct{}
		if len(inflight) == 0 {
			stop = ctx.Done()
		}
		select {
		case seq := <-done:
			delete(inflight, seq)
		case <-s.sealed:
		case <-stop:
		}
	}
}

// deliver sends one segment until it is acknowledged, rejected, gone from
// the queue, or ctx ends; it returns seq. Every attempt sends the bytes read
// once from the queue, which the queue never changes for a seq anyway.
func (s *Shipper) deliver(ctx context.Context, seq uint64) uint64 {
	var wire []byte
	// movedOn: the first attempt got no answer, and its node is now down,
	// so the second goes to another node at once.
	movedOn := false
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !movedOn && !sleep(ctx, backoff(attempt-1)) {
			return seq
		}
		movedOn = false
		if wire == nil {
			var err error
			if wire, err = s.q.Segment(seq); err != nil {
				if errors.Is(err, queue.ErrNoSegment) {
					return seq
				}
				s.noteError(err)
				s.logRetry(seq, attempt, err)
				continue
			}
		}
		c := s.route.pick()
		actx, cancel := context.WithTimeout(ctx, s.opts.SendTimeout)
		ack, err := c.SendBatch(actx, wire)
		cancel()
		if err != nil && ctx.Err() != nil {
			return seq // shutting down; the segment stays queued
		}
		s.count(ack, err)
		if err == nil {
			s.route.learn(ack.Members)
		}
		switch {
		case err != nil:
			s.noteError(err)
			s.failover(c)
			s.logRetry(seq, attempt, err)
			movedOn = attempt == 0
		case ack.Status == protocol.AckOK:
			s.route.succeeded(c.Addr())
			if err := s.q.Ack(seq); err != nil && !errors.Is(err, queue.ErrNoSegment) {
				// Stays queued and is sent again; the aggregator answers
				// OK without storing it twice.
				s.noteError(err)
				s.log.Error("deleting acknowledged segment failed", "seq", seq, "err", err)
			}
			return seq
		case ack.Status == protocol.AckReject:
			s.log.Error("aggregator rejected segment; set aside in the queue, not resent",
				"seq", seq, "aggregator", c.Addr(), "reason", ack.Reason)
			if err := s.q.Reject(seq, ack.Reason); err != nil && !errors.Is(err, queue.ErrNoSegment) {
				s.noteError(err)
				s.log.Error("setting rejected segment aside failed", "seq", seq, "err", err)
			}
			return seq
		default: // AckRetry (database down, node draining), or a status this build does not know
			err := fmt.Errorf("aggregator %s answered %s: %s", c.Addr(), ack.Status, ack.Reason)
			s.noteError(err)
			s.route.failed(c.Addr())
			s.logRetry(seq, attempt, err)
		}
	}
}

// count records one attempt's outcome.
func (s *Shipper) count(ack protocol.Ack, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Sent++
	switch {
	case err != nil:
		s.stats.Errors++
		s.stats.Retries++
	case ack.Status == protocol.AckOK:
		s.stats.AckedOK++
		s.stats.LastAck = time.Now()
	case ack.Status == protocol.AckReject:
		s.stats.AckedReject++
	default:
		s.stats.AckedRetry++
		s.stats.Retries++
	}
}

func (s *Shipper) logRetry(seq uint64, attempt int, err error) {
	if n, ok := s.retryLog.Allow(time.Now()); ok {
		s.log.Warn("segment not delivered, will resend", "seq", seq, "attempt", attempt+1,
			"backlog_segments", s.q.Stats().Segments, "err", err, "suppressed", n)
	}
}
