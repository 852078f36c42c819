package governance

import (
	"context"
	"encoding/json"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// WorkerConfig configures a Worker. Zero values take the defaults.
type WorkerConfig struct {
	Every time.Duration // how often to look for requests; default 1 s
	// Stale is how long a request may stay running before another worker
	// takes it again (its worker died); default 10 minutes.
	Stale   time.Duration
	Metrics *Metrics // nil: not counted
}

// Worker runs the requests of gdpr_requests, one at a time, on every
// aggregator: a request is claimed by one (FOR UPDATE SKIP LOCKED), and a
// claim whose worker died is taken again after Stale.
type Worker struct {
	svc *Service
	cfg WorkerConfig
}

// NewWorker returns a worker over svc.
func NewWorker(svc *Service, cfg WorkerConfig) *Worker {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.Stale <= 0 {
		cfg.Stale = 10 * time.Minute
	}
	return &Worker{svc: svc, cfg: cfg}
}

// Run works until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Every)
	defer t.Stop()
	for {
		for ctx.Err() == nil && w.RunOne(ctx) {
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
}

func erasureResult(e postgres.Erased) ErasureResult {
	days := map[time.Time]bool{}
	for _, d := range e.RollupDays {
		days[d] = true
	}
	for _, d := range e.SessionDays {
		days[d] = true
	}
	return ErasureResult{Events: e.Events, Sessions: e.Sessions, RebuiltDays: len(days), TombstoneUntil: e.Until, AuditID: e.Audit.ID}
}
