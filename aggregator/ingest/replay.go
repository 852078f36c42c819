package ingest

import (
	"context"
	"fmt"
	"time"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/rules"
	"github.com/avila-analytics/avila/storage/postgres"
)

// ReplayOptions selects the dead letters Replay works on.
type ReplayOptions struct {
	Filter postgres.DeadLetterFilter // agent, since; Limit bounds the rows replayed
	Site   uint32                    // only events of this property; 0: all
	DryRun bool                      // judge and report, write and delete nothing
	// Now and MaxFuture judge event times as ingest does; time.Now and 1h
	// when zero.
	Now       func() time.Time
	MaxFuture time.Duration
}

// Outcomes of one replayed dead letter.
const (
	ReplayStored        = "stored"         // written, and the dead letter deleted
	ReplayAlreadyStored = "already_stored" // written by an earlier replay; the dead letter is now deleted
	ReplayWouldStore    = "would_store"    // dry run: it passes the rules now
	ReplayRefused       = "refused"        // it still breaks a rule; kept
)

// ReplayResult says what Replay did with one dead letter.
type ReplayResult struct {
	ID      int64  `json:"id"`
	AgentID string `json:"agent"`
	Seq     uint64 `json:"seq"`
	Site    uint32 `json:"property"`
	Name    string `json:"event"`
	Outcome string `json:"outcome"`
	Repairs string `json:"repairs,omitempty"` // rule codes repaired, comma-separated
	Reason  string `json:"reason,omitempty"`  // why it is still refused
}

// replayPage is how many dead letters Replay reads at a time.
const replayPage = 500

// Replay judges dead letters again with the current rules, repairs what the
// rules repair, and writes each event that passes exactly once: under the
// derived batch key (ReplayAgent(agent), dead letter id), so a replay
// interrupted after the write and run again finds the key and writes nothing
// twice; the dead letter is deleted after its write committed. Events that
// still break a rule are kept and reported.
//
// The events go through the write stage w: they become visible to reports
// once derived, which Replay waits for (w.Flush) before it returns.
func Replay(ctx context.Context, store *postgres.Store, w *write.Writer, opts ReplayOptions) ([]ReplayResult, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxFuture <= 0 {
		opts.MaxFuture = defaultMaxFuture
	}
	sites, err := store.Sites(ctx)
	if err != nil {
		return nil, fmt.Errorf("ingest: replay: %w", err)
	}
	known := make(map[uint32]bool, len(sites))
	for _, s := range sites {
		known[s.ID] = true
	}
	var out []ReplayResult
	f := opts.Filter
	limit := f.Limit
	for limit <= 0 || len(out) < limit {
		f.Limit = replayPage
		rows, err := store.DeadLetters(ctx, f)
		if err != nil {
			return out, fmt.Errorf("ingest: replay: %w", err)
		}
		for _, row := range rows {
			f.AfterID = row.ID
			if limit > 0 && len(out) == limit {
				break
			}
			r, ok, err := replayOne(ctx, store, w, row, known, opts)
			if err != nil {
				return out, err
			}
			if ok {
				out = append(out, r)
			}
		}
		if len(rows) < replayPage {
			break
		}
	}
	if !opts.DryRun && len(out) > 0 {
		if err := w.Flush(ctx); err != nil {
			return out, fmt.Errorf("ingest: replay: derive the replayed events: %w", err)
		}
	}
	return out, nil
}

// replayOne replays one dead letter; false when it is not of opts.Site.
func replayOne(ctx context.Context, store *postgres.Store, w *write.Writer, row postgres.DeadLetterRow, known map[uint32]bool, opts ReplayOptions) (ReplayResult, bool, error) {
	r := ReplayResult{ID: row.ID, AgentID: row.AgentID, Seq: row.Seq, Outcome: ReplayRefused}
	var e protocol.Event
	if err := protocol.DecodeEvent(row.Event, &e); err != nil {
		if opts.Site != 0 {
			return r, false, nil
		}
		r.Reason = "the stored event cannot be decoded: " + err.Error()
		return r, true, nil
	}
	r.Site, r.Name = e.Site, e.Name
	if opts.Site != 0 && e.Site != opts.Site {
		return r, false, nil
	}
	done, v := rules.Repair(&e)
	if v == nil {
		v = rules.CheckTime(&e, opts.Now(), opts.MaxFuture)
	}
	r.Repairs = done.Codes()
	switch {
	case v != nil:
		r.Reason = v.Error()
		return r, true, nil
	case !known[e.Site]:
		r.Reason = fmt.Sprintf("unknown site %d (rule %s)", e.Site, ruleUnknownSite)
		return r, true, nil
	case opts.DryRun:
		r.Outcome = ReplayWouldStore
		return r, true, nil
	}
	res, err := writeReplayed(ctx, w, row, e)
	if err != nil {
		return r, false, fmt.Errorf("ingest: replay dead letter %d: %w", row.ID, err)
	}
	if err := store.DeleteDeadLetter(ctx, row.ID); err != nil {
		return r, false, fmt.Errorf("ingest: replay: %w", err)
	}
	r.Outcome = ReplayStored
	if res.Duplicate {
		r.Outcome = ReplayAlreadyStored
	}
	return r, true, nil
}

// ReplayAgent is the agent id of the batch key a replayed dead letter of
// agent is written under, with the dead letter's id as seq.
func ReplayAgent(agent string) string { return "dead-letters/" + agent }

// writeReplayed writes one replayed event through the batch write path, as
// one batch keyed (ReplayAgent(agent), dead letter id).
func writeReplayed(ctx context.Context, w *write.Writer, row postgres.DeadLetterRow, e protocol.Event) (postgres.StageResult, error) {
	return w.WriteBatch(ctx, ReplayAgent(row.AgentID), uint64(row.ID), []protocol.Event{e}, nil)
}
