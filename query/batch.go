package query

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// maxBatchRequests is GA4's bound on the reports of one batchRunReports.
const maxBatchRequests = 5

// BatchRunReportsRequest mirrors GA4's BatchRunReportsRequest JSON.
type BatchRunReportsRequest struct {
	Property string             `json:"property,omitempty"`
	Requests []RunReportRequest `json:"requests"`
}

// BatchRunReportsResponse mirrors GA4's BatchRunReportsResponse JSON:
// one report per request, in request order.
type BatchRunReportsResponse struct {
	Reports []*RunReportResponse `json:"reports"`
	Kind    string               `json:"kind"`
}

const batchKind = "analyticsData#batchRunReports"

// batchRunReports validates every request before running any (a bad one
// fails the batch with its index, as in GA4), then runs them in one
// read-only snapshot so the reports agree with each other.
func (h *handler) batchRunReports(ctx context.Context, r *http.Request, id uint32) (*BatchRunReportsResponse, error) {
	if err := h.authorize(ctx, r, id); err != nil {
		return nil, err
	}
	var req BatchRunReportsRequest
	if err := decodeBody(r.Body, &req); err != nil {
		return nil, err
	}
	switch {
	case req.Property != "" && req.Property != fmt.Sprintf("properties/%d", id):
		return nil, invalidArgument("property %s does not match the property in the URL.", quoteName(req.Property))
	case len(req.Requests) == 0:
		return nil, invalidArgument("requests: a batch needs at least one request.")
	case len(req.Requests) > maxBatchRequests:
		return nil, invalidArgument("requests: a batch holds at most %d requests, got %d.", maxBatchRequests, len(req.Requests))
	}
	s, err := h.site(ctx, id)
	if err != nil {
		return nil, err
	}
	now := h.now()
	plans := make([]*plan, len(req.Requests))
	reqs := make([]*RunReportRequest, len(req.Requests))
	for i := range req.Requests {
		reqs[i] = &req.Requests[i]
		p, ae := validate(&req.Requests[i], s, now)
		if ae != nil {
			return nil, newAPIError(ae.code, ae.status, "requests[%d]: %s", i, ae.message)
		}
		p.route = h.route
		plans[i] = p
	}
	// Cached as a whole, so the reports of a batch still come from one
	// snapshot.
	resp, err := cached(ctx, h, s, reqs, plans, func(d db) (*BatchRunReportsResponse, error) {
		return runBatch(ctx, d, plans)
	})
	if err != nil {
		return nil, err
	}
	// One charge for the batch; each report that asked shows the state
	// after it.
	report := slices.ContainsFunc(reqs, func(r *RunReportRequest) bool { return r.ReturnPropertyQuota })
	pq := h.quota.charge(ctx, quotaCore, id, requestKey(r), reportsCost(usageOf(ctx), plans...), report)
	for i, rep := range resp.Reports {
		if reqs[i].ReturnPropertyQuota && rep != nil {
			rep.PropertyQuota = pq
		}
	}
	return resp, nil
}

func runBatch(ctx context.Context, d db, plans []*plan) (*BatchRunReportsResponse, error) {
	tx, err := d.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("query: batch: begin: %w", err)
	}
	defer func() {
		// Read-only: rolling back loses nothing. A fresh bounded context,
		// because ctx may be done and the connection must go back clean.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	resp := &BatchRunReportsResponse{Kind: batchKind, Reports: make([]*RunReportResponse, len(plans))}
	for i, p := range plans {
		if resp.Reports[i], err = runReport(ctx, tx, p); err != nil {
			return nil, fmt.Errorf("query: batch report %d: %w", i, err)
		}
	}
	return resp, nil
}
