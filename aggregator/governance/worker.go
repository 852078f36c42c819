package governance

import (
	"context"
	"encoding/json"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// WorkerConfig configures a Worker. Zero values take the defaults.
type WorkerConfig struct {
	// Every is how often to look for requests while looks find some, and
	// the first wait after one did; default 1 s. Each look that finds
	// none doubles the wait, up to IdleEvery (default 30 s), so an idle
	// node asks the database rarely. Wake (a request accepted on this
	// node) looks at once.
	Every, IdleEvery time.Duration
	// Stale is how long a request may stay running before another worker
	// takes it again (its worker died); default 10 minutes.
	Stale   time.Duration
	Metrics *Metrics // nil: not counted
}

// Worker runs the requests of gdpr_requests, one at a time, on every
// aggregator: a request is claimed by one (FOR UPDATE SKIP LOCKED), and a
// claim whose worker died is taken again after Stale.
type Worker struct {
	svc  *Service
	cfg  WorkerConfig
	wake chan struct{}
}

// NewWorker returns a worker over svc.
func NewWorker(svc *Service, cfg WorkerConfig) *Worker {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.IdleEvery <= 0 {
		cfg.IdleEvery = 30 * time.Second
	}
	cfg.IdleEvery = max(cfg.IdleEvery, cfg.Every)
	if cfg.Stale <= 0 {
		cfg.Stale = 10 * time.Minute
	}
	return &Worker{svc: svc, cfg: cfg, wake: make(chan struct{}, 1)}
}

// Wake makes Run look for requests now, as after a request was accepted
// on this node. It never blocks.
func (w *Worker) Wake() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends: it looks for requests, runs those it claims,
// and waits Every after a look that found one, doubling the wait after
// each that found none up to IdleEvery, or until Wake.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTimer(w.cfg.Every)
	defer t.Stop()
	wait := w.cfg.Every
	for {
		found := false
		for ctx.Err() == nil && w.RunOne(ctx) {
			found = true
		}
		if found {
			wait = w.cfg.Every
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			wait = w.cfg.Every
		case <-t.C:
			wait = min(2*wait, w.cfg.IdleEvery)
		}
	}
}

// RunOne claims and runs one request; false when there was none (or the
// claim failed, which is logged).
func (w *Worker) RunOne(ctx context.Context) bool {
	log := w.svc.log()
	r, ok, err := w.svc.Store.ClaimGDPRRequest(ctx, w.cfg.Stale)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("gdpr worker: claim failed", "err", err)
		}
		return false
	}
	if !ok {
		return false
	}
	sub := Subject{Site: r.Site, Identity: Identity(r.Identity), Key: r.Subject}
	var result []byte
	switch r.Kind {
	case "export":
		var e *Export
		if e, err = w.svc.Export(ctx, sub, r.RequestedBy); err == nil {
			result, err = json.Marshal(e)
		}
	case "erasure":
		var out postgres.Erased
		if out, err = w.svc.Erase(ctx, sub, r.RequestedBy); err == nil {
			result, err = json.Marshal(erasureResult(out))
		}
	default:
		err = errBadKind(r.Kind)
	}
	if ctx.Err() != nil {
		// Shutting down: the request stays running and is taken again
		// after Stale, by this node once restarted or another.
		return false
	}
	errText := ""
	state := "done"
	if err != nil {
		errText, state = err.Error(), "failed"
		log.Warn("gdpr request failed", "id", r.ID, "kind", r.Kind, "site", r.Site, "err", err)
	} else {
		log.Info("gdpr request done", "id", r.ID, "kind", r.Kind, "site", r.Site)
	}
	if err := w.svc.Store.FinishGDPRRequest(context.WithoutCancel(ctx), r.ID, result, errText); err != nil {
		log.Warn("gdpr worker: record outcome", "id", r.ID, "err", err)
		return false
	}
	if w.cfg.Metrics != nil {
		w.cfg.Metrics.requests.WithLabelValues(r.Kind, state).Inc()
	}
	return true
}

type errBadKind string

func (e errBadKind) Error() string { return "BUG: request kind " + string(e) }

// ErasureResult is what an erasure request answers when done.
type ErasureResult struct {
	Events         int64     `json:"events"`
	Sessions       int64     `json:"sessions"`
	RebuiltDays    int       `json:"rebuiltDays"` // days whose rollups were corrected (the name predates corrections)
	TombstoneUntil time.Time `json:"tombstoneUntil"`
	AuditID        int64     `json:"auditId"`
	// Events taken out of staged rows in quarantine (`avila staged list`),
	// and quarantined rows that do not decode, so could not be searched.
	QuarantinedEvents         int64 `json:"quarantinedEvents,omitempty"`
	UnsearchedQuarantinedRows int64 `json:"unsearchedQuarantinedRows,omitempty"`
}

func erasureResult(e postgres.Erased) ErasureResult {
	days := map[time.Time]bool{}
	for _, d := range e.RollupDays {
		days[d] = true
	}
	for _, d := range e.SessionDays {
		days[d] = true
	}
	return ErasureResult{Events: e.Events, Sessions: e.Sessions, RebuiltDays: len(days), TombstoneUntil: e.Until, AuditID: e.Audit.ID,
		QuarantinedEvents: e.Quarantined, UnsearchedQuarantinedRows: e.Unsearched}
}
