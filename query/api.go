package query

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/avila-analytics/avila/query/engine/funnel"
	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/jackc/pgx/v5/pgconn"
	alphapb "google.golang.org/genproto/googleapis/analytics/data/v1alpha"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/protobuf/proto"
)

// call is one Data API call as the methods see it, whatever its transport
// (REST or gRPC): who asks, and how.
type apiCall struct {
	key   string // API key; "" when none was sent
	fresh bool   // the client asked for an answer computed afresh (Cache-Control: no-cache)
	// client is the transport's request context: done when the client
	// went away (a cancel) rather than when the report's time ran out.
	client context.Context
}

// method is one Data API method: how REST reaches it and what it runs.
// REST and gRPC share these, so both transports answer alike.
type method struct {
	name    string // GA4's method name: runReport, getMetadata, …
	verb    string // HTTP method of its REST binding
	version string // "v1beta" or "v1alpha"
	// suffix follows "properties/{id}" in the REST path.
	suffix string
	quota  string // quota category
	newReq func() proto.Message
	run    func(h *handler, ctx context.Context, c apiCall, id uint32, req proto.Message) (proto.Message, error)
}

// methods are the Data API's methods, in GA4's order.
var methods = []*method{
	{name: "runReport", verb: http.MethodPost, version: "v1beta", suffix: ":runReport", quota: quotaCore,
		newReq: func() proto.Message { return &datapb.RunReportRequest{} },
		run: func(h *handler, ctx context.Context, c apiCall, id uint32, req proto.Message) (proto.Message, error) {
			return h.runReport(ctx, c, id, req.(*datapb.RunReportRequest))
		}},
	{name: "runPivotReport", verb: http.MethodPost, version: "v1beta", suffix: ":runPivotReport", quota: quotaCore,
		newReq: func() proto.Message { return &datapb.RunPivotReportRequest{} },
		run: func(h *handler, ctx context.Context, c apiCall, id uint32, req proto.Message) (proto.Message, error) {
			return h.runPivotReport(ctx, c, id, req.(*datapb.RunPivotReportRequest))
		}},
	{name: "batchRunReports", verb: http.MethodPost, version: "v1beta", suffix: ":batchRunReports", quota: quotaCore,
		newReq: func() proto.Message { return &datapb.BatchRunReportsRequest{} },
		run: func(h *handler, ctx context.Context, c apiCall, id uint32, req proto.Message) (proto.Message, error) {
			return h.batchRunReports(ctx, c, id, req.(*datapb.BatchRunReportsRequest))
		}},
	{name: "batchRunPivotReports", verb: http.MethodPost, version: "v1beta", suffix: ":batchRunPivotReports", quota: quotaCore,
		newReq: func() proto.Message { return &datapb.BatchRunPivotReportsRequest{} },
		run: func(h *handler, ctx context.Context, c apiCall, id uint32, req proto.Message) (proto.Message, error) {
			return h.batchRunPivotReports(ctx, c, id, req.(*datapb.BatchRunPivotReportsRequest))
		}},
	{name: "getMetadata", verb: http.MethodGet, version: "v1beta", suffix: "/metadata", quota: quotaCore,
		newReq: func() proto.Message { return &datapb.GetMetadataRequest{} },
		run: func(h *handler, ctx context.Context, c apiCall, id uint32, _ proto.Message) (proto.Message, error) {
			return h.getMetadata(ctx, c, id)
		}},
	{name: "runRealtimeReport", verb: http.MethodPost, version: "v1beta", suffix: ":runRealtimeReport", quota: quotaRealtime,
		newReq: func() proto.Message { return &datapb.RunRealtimeReportRequest{} },
		run: func(h *handler, ctx context.Context, c apiCall, id uint32, req proto.Message) (proto.Message, error) {
			return h.runRealtimeReport(ctx, c, id, req.(*datapb.RunRealtimeReportRequest))
		}},
	{name: "checkCompatibility", verb: http.MethodPost, version: "v1beta", suffix: ":checkCompatibility", quota: quotaCore,
		newReq: func() proto.Message { return &datapb.CheckCompatibilityRequest{} },
		run: func(h *handler, ctx context.Context, c apiCall, id uint32, req proto.Message) (proto.Message, error) {
			return h.checkCompatibility(ctx, c, id, req.(*datapb.CheckCompatibilityRequest))
		}},
	{name: "runFunnelReport", verb: http.MethodPost, version: "v1alpha", suffix: ":runFunnelReport", quota: quotaFunnel,
		newReq: func() proto.Message { return &alphapb.RunFunnelReportRequest{} },
		run: func(h *handler, ctx context.Context, c apiCall, id uint32, req proto.Message) (proto.Message, error) {
			return h.runFunnelReport(ctx, c, id, req.(*alphapb.RunFunnelReportRequest))
		}},
}

var methodsByName = plan.IndexByName(methods, func(m *method) string { return m.name })

// parseProperty reads GA4's resource name "properties/{id}" (with suffix,
// e.g. "/metadata", after it). Site ids are PostgreSQL integers:
// 1..2^31-1; property 0 names the metadata common to all properties, as in
// GA4, and is allowed where zero is true.
func parseProperty(name, suffix string, zero bool) (uint32, *plan.Error) {
	rest, ok := strings.CutPrefix(name, "properties/")
	if ok {
		rest, ok = strings.CutSuffix(rest, suffix)
	}
	id, err := strconv.ParseUint(rest, 10, 31)
	if !ok || err != nil || (id == 0 && !zero) {
		return 0, plan.InvalidArgument("Invalid property %s in %s: property ids are positive integers (properties/{id}%s).", plan.QuoteName(rest), plan.QuoteName(name), suffix)
	}
	return uint32(id), nil
}

// invoke runs method m for property id under the handler's time bound and
// the property's concurrency count, and turns failures into what the
// client sees.
func (h *handler) invoke(ctx context.Context, m *method, c apiCall, id uint32, req proto.Message) (proto.Message, *plan.Error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	if c.fresh {
		ctx = context.WithValue(ctx, freshKey{}, true)
	}
	if c.client == nil {
		c.client = ctx
	}
	// The key first: a request without a valid key for the property never
	// holds one of the property's concurrent-request slots or reaches its
	// quota counters, so strangers cannot spend a property's quota.
	if err := h.authorizeCall(ctx, c, id); err != nil {
		return nil, h.apiError(ctx, c.client, id, err)
	}
	// Admission (quota_admit.go): a spent quota is RESOURCE_EXHAUSTED, on
	// REST (429) and gRPC (code 8) alike.
	release, err := h.quota.admit(ctx, m.quota, id, c.key)
	if err != nil {
		return nil, h.apiError(ctx, c.client, id, err)
	}
	defer release()
	ctx, _ = withUsage(ctx)
	resp, err := m.run(h, ctx, c, id, req)
	if err != nil {
		ae := h.apiError(ctx, c.client, id, err)
		if ae.Code >= 500 {
			h.quota.serverError(ctx, m.quota, id, c.key)
		}
		return nil, ae
	}
	return resp, nil
}

// authorizeCall checks the call's key against property id; for id 0
// (metadata common to all properties) any valid key will do.
func (h *handler) authorizeCall(ctx context.Context, c apiCall, id uint32) error {
	if c.key == "" {
		e := plan.NewError(http.StatusUnauthorized, "UNAUTHENTICATED",
			"Request is missing a valid API key: send 'Authorization: Bearer <key>'.")
		e.Reason = "CREDENTIALS_MISSING"
		return e
	}
	return h.authorizeKey(ctx, c.key, id)
}

// apiError turns err into what the client sees. Client errors pass through;
// a report over its time bound is 504, a client gone is 499; anything else is
// logged and answered as a bare 500. client is the transport's request
// context.
func (h *handler) apiError(ctx, client context.Context, id uint32, err error) *plan.Error {
	var ae *plan.Error
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &pgErr) && pgErr.Code == "2201B":
		// Translated patterns are checked before they are sent; this is
		// the database's own limit (e.g. "regular expression is too complex").
		return plan.InvalidArgument("A regular expression in the filter was refused by the database: %s.", pgErr.Message)
	case client.Err() != nil:
		return plan.NewError(499, "CANCELLED", "The request was cancelled by the client.")
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.log.WarnContext(ctx, "report timed out", "site", id, "timeout", h.timeout, "err", err)
		return plan.NewError(http.StatusGatewayTimeout, "DEADLINE_EXCEEDED",
			"The report did not finish within %s; ask for fewer days or dimensions.", h.timeout)
	}
	h.log.ErrorContext(ctx, "report failed", "site", id, "err", err)
	return plan.NewError(http.StatusInternalServerError, "INTERNAL", "Internal error encountered.")
}

// checkProperty refuses a request whose property field names another
// property than the one addressed (REST path, or the batch's property).
func checkProperty(field, property string, id uint32) *plan.Error {
	if property != "" && property != propertyName(id) {
		return plan.InvalidArgument("%s: %s does not match the property in the URL (%s).", field, plan.QuoteName(property), propertyName(id))
	}
	return nil
}

// runReport validates and runs one report (invoke has authorized it).
func (h *handler) runReport(ctx context.Context, c apiCall, id uint32, in *datapb.RunReportRequest) (*datapb.RunReportResponse, error) {
	req := fromRunReport(in)
	s, err := h.site(ctx, id)
	if err != nil {
		return nil, err
	}
	p, apiErr := plan.Validate(req, s, h.now())
	if apiErr != nil {
		return nil, apiErr
	}
	p.Route = h.route
	resp, err := cached(ctx, h, "runReport", s, []*plan.RunReportRequest{req}, []*plan.Plan{p}, func(d db) (*plan.RunReportResponse, error) {
		return runReport(ctx, d, p, h.names)
	})
	if err != nil {
		return nil, err
	}
	resp.PropertyQuota = h.quota.charge(ctx, quotaCore, id, c.key, reportsCost(usageOf(ctx), p), req.ReturnPropertyQuota)
	return toReport(resp), nil
}

// runRealtimeReport validates and runs one realtime report.
func (h *handler) runRealtimeReport(ctx context.Context, c apiCall, id uint32, in *datapb.RunRealtimeReportRequest) (*datapb.RunRealtimeReportResponse, error) {
	if h.rt == nil {
		return nil, plan.NewError(http.StatusNotImplemented, "UNIMPLEMENTED", "Realtime reports are not served by this server.")
	}
	req := fromRealtime(in)
	s, err := h.site(ctx, id)
	if err != nil {
		return nil, err
	}
	p, apiErr := realtime.Validate(req, id)
	if apiErr != nil {
		return nil, apiErr
	}
	w, err := h.rt.Window(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("query: realtime property %d: %w", id, err)
	}
	resp := realtime.Run(p, w, s.Loc)
	// Realtime reads this node's or Redis' counters of 30 minutes: 1 token.
	resp.PropertyQuota = h.quota.charge(ctx, quotaRealtime, id, c.key, 1, req.ReturnPropertyQuota)
	return toRealtime(resp), nil
}

// runFunnelReport validates and runs one funnel report.
func (h *handler) runFunnelReport(ctx context.Context, c apiCall, id uint32, in *alphapb.RunFunnelReportRequest) (*alphapb.RunFunnelReportResponse, error) {
	req := fromFunnel(in)
	s, err := h.site(ctx, id)
	if err != nil {
		return nil, err
	}
	fp, apiErr := plan.ValidateFunnel(req, s, h.now())
	if apiErr != nil {
		return nil, apiErr
	}
	d, _ := h.read(ctx, id, "") // funnels are not cached
	resp, err := funnel.Run(ctx, d, fp)
	if err != nil {
		return nil, err
	}
	resp.PropertyQuota = h.quota.charge(ctx, quotaFunnel, id, c.key, funnelCost(usageOf(ctx), fp), req.ReturnPropertyQuota)
	return toFunnel(resp), nil
}
