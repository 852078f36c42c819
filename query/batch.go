package query

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"

	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/plan"
)

// maxBatchRequests is GA4's bound on the reports of one batchRunReports.
const maxBatchRequests = 5

// BatchRunReportsResponse is the engine's answer to a batch: one report
// per request, in request order (converted to Google's message at the edge).
type BatchRunReportsResponse struct {
	Reports []*plan.RunReportResponse `json:"reports"`
	Kind    string                    `json:"kind"`
}

const batchKind = "analyticsData#batchRunReports"

// batchRunReports validates every request before running any (a bad one
// fails the batch with its index, as in GA4), then runs them in one
// read-only snapshot so the reports agree with each other.
func (h *handler) batchRunReports(ctx context.Context, c apiCall, id uint32, in *datapb.BatchRunReportsRequest) (*datapb.BatchRunReportsResponse, error) {
	if err := checkProperty("property", in.GetProperty(), id); err != nil {
		return nil, err
	}
	switch n := len(in.GetRequests()); {
	case n == 0:
		return nil, plan.InvalidArgument("requests: a batch needs at least one request.")
	case n > maxBatchRequests:
		return nil, plan.InvalidArgument("requests: a batch holds at most %d requests, got %d.", maxBatchRequests, n)
	}
	s, err := h.site(ctx, id)
	if err != nil {
		return nil, err
	}
	now := h.now()
	plans := make([]*plan.Plan, len(in.Requests))
	reqs := make([]*plan.RunReportRequest, len(in.Requests))
	for i, r := range in.Requests {
		reqs[i] = fromRunReport(r)
		p, ae := plan.Validate(reqs[i], s, now)
		if ae != nil {
			return nil, prefixError(ae, fmt.Sprintf("requests[%d]", i))
		}
		p.Route = h.route
		plans[i] = p
	}
	// Cached as a whole, so the reports of a batch still come from one
	// snapshot.
	resp, err := cached(ctx, h, "batchRunReports", s, reqs, plans, func(d db) (*BatchRunReportsResponse, error) {
		return runBatch(ctx, d, plans, h.names)
	})
	if err != nil {
		return nil, err
	}
	// One charge for the batch; each report that asked shows the state
	// after it.
	report := slices.ContainsFunc(reqs, func(r *plan.RunReportRequest) bool { return r.ReturnPropertyQuota })
	pq := h.quota.charge(ctx, quotaCore, id, c.key, reportsCost(usageOf(ctx), plans...), report)
	out := &datapb.BatchRunReportsResponse{Kind: resp.Kind, Reports: make([]*datapb.RunReportResponse, len(resp.Reports))}
	for i, rep := range resp.Reports {
		if reqs[i].ReturnPropertyQuota && rep != nil {
			rep.PropertyQuota = pq
		}
		out.Reports[i] = toReport(rep)
	}
	return out, nil
}

// prefixError is e about the request part at path: its message and field
// start with path, as GA4 names a batch's request by index.
func prefixError(e *plan.Error, path string) *plan.Error {
	out := *e
	out.Message = path + ": " + e.Message
	if out.Field != "" {
		out.Field = path + "." + out.Field
	} else {
		out.Field = path
	}
	return &out
}

func runBatch(ctx context.Context, d db, plans []*plan.Plan, names *rollups.Names) (*BatchRunReportsResponse, error) {
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
	resp := &BatchRunReportsResponse{Kind: batchKind, Reports: make([]*plan.RunReportResponse, len(plans))}
	for i, p := range plans {
		if resp.Reports[i], err = runReport(ctx, tx, p, names); err != nil {
			return nil, fmt.Errorf("query: batch report %d: %w", i, err)
		}
	}
	return resp, nil
}
