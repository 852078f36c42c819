package governance

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// Tombstones keeps this node's copy of the erased subjects' keys still in
// force, refreshed every few seconds, so the realtime counters (fed when a
// batch is staged, before any derivation) leave out their late events too.
// The derivation reads the tombstones itself, in its transaction: this copy
// only keeps realtime counts in step, and lags an erasure by at most Every.
type Tombstones struct {
	store *postgres.Store
	every time.Duration
	log   *slog.Logger

	mu   sync.RWMutex
	keys map[uint32]postgres.SubjectKeys
}

// NewTombstones returns the cache; Run keeps it fresh.
func NewTombstones(store *postgres.Store, every time.Duration, log *slog.Logger) *Tombstones {
	if every <= 0 {
		every = 5 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tombstones{store: store, every: every, log: log}
}

// Refresh reads the tombstones in force now.
func (t *Tombstones) Refresh(ctx context.Context) error {
	keys, err := t.store.LiveTombstones(ctx)
	if err != nil {
		return err
	}
	t.mu.Lock()
	t.keys = keys
	t.mu.Unlock()
	return nil
}

// Run refreshes every Every until ctx ends; a failed refresh keeps the
// last copy and is logged.
func (t *Tombstones) Run(ctx context.Context) {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		if err := t.Refresh(ctx); err != nil && ctx.Err() == nil {
			t.log.Warn("tombstones: refresh failed; keeping the last copy", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Filter returns events without those of tombstoned keys (visitor or
// user); events itself when none is, else a new slice.
func (t *Tombstones) Filter(events []protocol.Event) []protocol.Event {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if len(t.keys) == 0 {
		return events
	}
	drop := func(e *protocol.Event) bool { return t.keys[e.Site].Holds(e) }
	i := 0
	for i < len(events) && !drop(&events[i]) {
		i++
	}
	if i == len(events) {
		return events
	}
	out := append(make([]protocol.Event, 0, len(events)), events[:i]...)
	for j := i + 1; j < len(events); j++ {
		if !drop(&events[j]) {
			out = append(out, events[j])
		}
	}
	return out
}
