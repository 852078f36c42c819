package accesslog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// Sender delivers one compressed batch and returns the aggregator's Ack:
// *protocol.Client. An error means the outcome is unknown.
type Sender interface {
	SendBatch(ctx context.Context, wire []byte) (protocol.Ack, error)
}

// Progress is how far an import is; Ship reports it after every batch.
type Progress struct {
	Lines, PageViews int64 // read so far
	Batches          int64 // acknowledged batches
	Stored           int64 // events the aggregator stored
	Already          int64 // events of batches a previous run had stored
	Retries          int64 // sends that were answered Retry or failed
}

// ShipOptions tune Ship.
type ShipOptions struct {
	// AgentID is the batch key prefix (AgentID); batches are numbered 1, 2, …
	AgentID string
	// InFlight is how many batches are sent at once; 4 when 0.
	InFlight int
	// OnProgress, if set, is called after each acknowledged batch, from
	// one goroutine at a time.
	OnProgress func(Progress)
	// OnRetry, if set, is told why a batch is sent again.
	OnRetry func(seq uint64, attempt int, reason string)
}

// errRejected: the aggregator will never store a batch as sent.
var errRejected = errors.New("batch rejected")

// Ship reads rd to its end and delivers its batches through send. A batch
// answered Retry, or whose send failed, is sent again with backoff until
// ctx ends; a Reject ends the import with the aggregator's reason, since
// sending it again cannot help. Batches already stored by an earlier run
// are acknowledged as duplicates and count in Progress.Already.
func Ship(ctx context.Context, rd *Reader, send Sender, opts ShipOptions) (Progress, error) {
	if opts.AgentID == "" {
		return Progress{}, errors.New("accesslog: ship: no agent id")
	}
	if opts.InFlight <= 0 {
		opts.InFlight = 4
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	type job struct {
		seq  uint64
		wire []byte
		n    int
	}
	jobs := make(chan job, opts.InFlight)
	var (
		mu                     sync.Mutex // serializes OnProgress and the read counters
		p                      Progress
		stored, already, tries atomic.Int64
		batches                atomic.Int64
	)
	report := func() {
		if opts.OnProgress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		q := p
		q.Batches, q.Stored, q.Already, q.Retries = batches.Load(), stored.Load(), already.Load(), tries.Load()
		opts.OnProgress(q)
	}
	var wg sync.WaitGroup
	for range opts.InFlight {
		wg.Go(func() {
			for j := range jobs {
				ack, err := deliver(ctx, send, j.seq, j.wire, &tries, opts.OnRetry)
				if err != nil {
					cancel(err)
					continue // drain jobs so the reader is not stuck
				}
				batches.Add(1)
				if ack.Duplicate {
					already.Add(int64(j.n))
				} else {
					stored.Add(int64(ack.Stored))
				}
				report()
			}
		})
	}
	readErr := func() error {
		defer close(jobs)
		for seq := uint64(1); ; seq++ {
			events, err := rd.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			st := rd.Stats()
			p.Lines, p.PageViews = st.Lines, st.PageViews
			mu.Unlock()
			wire, err := protocol.EncodeRawBatch(opts.AgentID, seq, time.Now().UnixMicro(), events)
			if err != nil {
				return fmt.Errorf("accesslog: encode batch %d: %w", seq, err)
			}
			select {
			case jobs <- job{seq: seq, wire: wire, n: len(events)}:
			case <-ctx.Done():
				return nil
			}
		}
	}()
	wg.Wait()
	mu.Lock()
	st := rd.Stats()
	p.Lines, p.PageViews = st.Lines, st.PageViews
	p.Batches, p.Stored, p.Already, p.Retries = batches.Load(), stored.Load(), already.Load(), tries.Load()
	mu.Unlock()
	if readErr != nil {
		return p, readErr
	}
	if err := context.Cause(ctx); err != nil {
		return p, err
	}
	return p, nil
}

// deliver sends one batch until it is acknowledged OK.
func deliver(ctx context.Context, send Sender, seq uint64, wire []byte, tries *atomic.Int64, onRetry func(uint64, int, string)) (protocol.Ack, error) {
	for attempt := 1; ; attempt++ {
		ack, err := send.SendBatch(ctx, wire)
		var reason string
		switch {
		case err != nil:
			reason = err.Error()
		case ack.Status == protocol.AckOK:
			return ack, nil
		case ack.Status == protocol.AckReject:
			return ack, fmt.Errorf("accesslog: batch %d: %w by the aggregator: %s", seq, errRejected, ack.Reason)
		default:
			reason = ack.Status.String() + ": " + ack.Reason
		}
		tries.Add(1)
		if onRetry != nil {
			onRetry(seq, attempt, reason)
		}
		wait := min(time.Duration(attempt)*250*time.Millisecond, 5*time.Second)
		select {
		case <-ctx.Done():
			return ack, fmt.Errorf("accesslog: batch %d not delivered: %w (last error: %s)", seq, context.Cause(ctx), reason)
		case <-time.After(wait):
		}
	}
}
