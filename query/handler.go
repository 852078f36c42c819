package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/storage/postgres"
)

// defaultTimeout bounds one report when Options.Timeout is zero.
const defaultTimeout = 30 * time.Second

// Options configure the handler. The zero value works.
type Options struct {
	Logger  *slog.Logger     // nil: discard
	Now     func() time.Time // clock resolving "today"; nil: time.Now
	Timeout time.Duration    // bound on one request's database work; 0: 30s
	Metrics *Metrics         // request durations, cache hits (NewMetrics); nil: not measured
	// Cache keeps computed reports until their site's data changes (see
	// ResultCache); nil: every report is computed.
	Cache ResultCache
	// Realtime answers :runRealtimeReport; nil: that method answers 501
	// UNIMPLEMENTED.
	Realtime RealtimeSource
	// Quota configures the property quotas: their limits, where they are
	// counted, and returnPropertyQuota (see quota.go); the zero value
	// counts in memory with GA4's limits.
	Quota QuotaOptions
	// PropertyConns bounds the statements of one property that run at
	// once (see limit.go); its other admitted requests wait. 0: 2.
	PropertyConns int
	// ReadFrom picks the database a report of site reads, given the site's
	// data version ("" when unknown): a read replica or the primary.
	// complete says the database holds everything the version covers, so
	// the answer may be cached under it. nil: every report reads the pool
	// given to NewHandler. (*storage/postgres.Replicas).ReadFrom fits.
	ReadFrom func(ctx context.Context, site uint32, version string) (pool *pgxpool.Pool, complete bool)
}

// KeyLookup resolves an API key to the properties it may read. For an
// unknown or revoked key it returns an error that is (or wraps) ErrUnknownKey
// or postgres.ErrNotFound, or that has a NotFound() bool method answering
// true; the handler then answers 401. Any other error is a 500.
// *postgres.Store satisfies it.
type KeyLookup interface {
	LookupAPIKey(ctx context.Context, key string) ([]uint32, error)
}

// db is the part of *pgxpool.Pool the handler uses.
type db interface {
	querier
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

type handler struct {
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	db      db
	keys    KeyLookup
	cache   ResultCache    // nil: none
	metrics *Metrics       // nil: not counted
	route   route          // tables reports read; tests force one
	rt      RealtimeSource // nil: no realtime reports
	quota   *quotas
	slots   *propertySlots
	// readFrom, when set, picks the database of each report (Options.ReadFrom).
	readFrom func(ctx context.Context, site uint32, version string) (*pgxpool.Pool, bool)
}

// read is the database a report of site at data version reads, and
// whether it holds everything the version covers.
func (h *handler) read(ctx context.Context, site uint32, version string) (db, bool) {
	d, complete := h.db, true
	if h.readFrom != nil {
		d, complete = h.readFrom(ctx, site, version)
	}
	return &limitedDB{d: d, slots: h.slots, site: site, use: usageOf(ctx)}, complete
}

// NewHandler serves the GA4 Data API from pool: POST
// /v1beta/properties/{id}:runReport, :batchRunReports and
// :runRealtimeReport (from opts.Realtime), GET
// /v1beta/properties/{id}/metadata and POST
// /v1alpha/properties/{id}:runFunnelReport, authorizing each request's
// bearer key with keys. Mount it at "/v1beta/" and "/v1alpha/" without
// stripping the prefix; other paths under them answer 404 NOT_FOUND.
func NewHandler(opts Options, pool *pgxpool.Pool, keys KeyLookup) http.Handler {
	h := newHandler(opts, pool, keys)
	if opts.Metrics != nil {
		return opts.Metrics.instrument(h)
	}
	return h
}

func newHandler(opts Options, d db, keys KeyLookup) *handler {
	h := &handler{log: opts.Logger, now: opts.Now, timeout: opts.Timeout, db: d, keys: keys, cache: opts.Cache, metrics: opts.Metrics, rt: opts.Realtime,
		readFrom: opts.ReadFrom}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.timeout <= 0 {
		h.timeout = defaultTimeout
	}
	h.quota = newQuotas(opts.Quota, h.now, h.log)
	h.slots = newPropertySlots(opts.PropertyConns, opts.Quota.Metrics)
	return h
}

const propertiesPrefix = "/v1beta/properties/"

// routes under propertiesPrefix: the HTTP method and the path after the id.
var routes = map[string]string{
	":runReport":         http.MethodPost,
	":batchRunReports":   http.MethodPost,
	":runRealtimeReport": http.MethodPost,
	"/metadata":          http.MethodGet,
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, alphaPrefix) {
		h.serveAlpha(w, r)
		return
	}
	rest, _ := strings.CutPrefix(r.URL.Path, propertiesPrefix)
	cut := strings.IndexAny(rest, ":/")
	route, idText := "", rest
	if cut >= 0 {
		idText, route = rest[:cut], rest[cut:]
	}
	if method, ok := routes[route]; !ok || method != r.Method || !strings.HasPrefix(r.URL.Path, propertiesPrefix) {
		writeError(w, newAPIError(http.StatusNotFound, "NOT_FOUND", "No method %s %s; this server answers POST %s{id}:runReport, POST %s{id}:batchRunReports, POST %s{id}:runRealtimeReport and GET %s{id}/metadata.",
			r.Method, truncate(r.URL.Path), propertiesPrefix, propertiesPrefix, propertiesPrefix, propertiesPrefix))
		return
	}
	// Site ids are PostgreSQL integers: 1..2^31-1. Property 0 asks for the
	// metadata common to all properties, as in GA4.
	id, err := strconv.ParseUint(idText, 10, 31)
	if err != nil || (id == 0 && route != "/metadata") {
		writeError(w, invalidArgument("Invalid property %s: property ids are positive integers.", quoteName(idText)))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	if requestsFresh(r.Header) {
		ctx = context.WithValue(ctx, freshKey{}, true)
	}
	release, err := h.quota.admit(ctx, quotaCategory(route), uint32(id), requestKey(r))
	if err != nil {
		writeError(w, h.apiError(ctx, r, uint32(id), err))
		return
	}
	defer release()
	ctx, _ = withUsage(ctx)
	var resp any
	switch route {
	case ":runReport":
		resp, err = h.runReport(ctx, r, uint32(id))
	case ":batchRunReports":
		resp, err = h.batchRunReports(ctx, r, uint32(id))
	case ":runRealtimeReport":
		resp, err = h.runRealtimeReport(ctx, r, uint32(id))
	default:
		resp, err = h.metadata(ctx, r, uint32(id))
	}
	if err != nil {
		ae := h.apiError(ctx, r, uint32(id), err)
		if ae.code >= 500 {
			h.quota.serverError(ctx, quotaCategory(route), uint32(id), requestKey(r))
		}
		writeError(w, ae)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// authorize checks the request's bearer key against property id; for id 0
// (metadata common to all properties) any valid key will do.
func (h *handler) authorize(ctx context.Context, r *http.Request, id uint32) error {
	key, ok := bearerKey(r.Header.Get("Authorization"))
	if !ok {
		return newAPIError(http.StatusUnauthorized, "UNAUTHENTICATED",
			"Request is missing a valid API key: send 'Authorization: Bearer <key>'.")
	}
	return h.authorizeKey(ctx, key, id)
}

// authorizeKey checks key against property id, as authorize does.
func (h *handler) authorizeKey(ctx context.Context, key string, id uint32) error {
	allowed, err := h.keys.LookupAPIKey(ctx, key)
	if isNotFound(err) {
		return newAPIError(http.StatusUnauthorized, "UNAUTHENTICATED", "The API key is not valid or was revoked.")
	}
	if err != nil {
		return fmt.Errorf("query: look up api key: %w", err)
	}
	if id != 0 && !slices.Contains(allowed, id) {
		return newAPIError(http.StatusForbidden, "PERMISSION_DENIED",
			"The API key does not have sufficient permissions for property properties/%d.", id)
	}
	return nil
}

// runReport authorizes, decodes, validates and runs one report.
func (h *handler) runReport(ctx context.Context, r *http.Request, id uint32) (*RunReportResponse, error) {
	if err := h.authorize(ctx, r, id); err != nil {
		return nil, err
	}
	req, err := decodeRequest(r.Body)
	if err != nil {
		return nil, err
	}
	s, err := h.site(ctx, id)
	if err != nil {
		return nil, err
	}
	p, apiErr := validate(req, s, h.now())
	if apiErr != nil {
		return nil, apiErr
	}
	p.route = h.route
	resp, err := cached(ctx, h, s, []*RunReportRequest{req}, []*plan{p}, func(d db) (*RunReportResponse, error) {
		return runReport(ctx, d, p)
	})
	if err != nil {
		return nil, err
	}
	resp.PropertyQuota = h.quota.charge(ctx, quotaCore, id, requestKey(r), reportsCost(usageOf(ctx), p), req.ReturnPropertyQuota)
	return resp, nil
}

// site loads the property's reporting settings; 404 when it does not exist.
func (h *handler) site(ctx context.Context, id uint32) (site, error) {
	s := site{id: id}
	err := h.db.QueryRow(ctx, `SELECT time_zone, currency_code, GREATEST(rollups_from, '0001-01-02'),
		GREATEST(rollups_from, hour_rollups_from, '0001-01-02'), GREATEST(session_rollups_from, '0001-01-02')
		FROM sites WHERE id = $1`,
		int32(id)).Scan(&s.timeZone, &s.currency, &s.rollupsFrom, &s.hourRollupsFrom, &s.sessionRollupsFrom)
	if errors.Is(err, pgx.ErrNoRows) {
		return site{}, newAPIError(http.StatusNotFound, "NOT_FOUND", "Property properties/%d not found.", id)
	}
	if err != nil {
		return site{}, fmt.Errorf("query: load property %d: %w", id, err)
	}
	if s.loc, err = time.LoadLocation(s.timeZone); err != nil {
		return site{}, fmt.Errorf("query: property %d: time zone: %w", id, err)
	}
	return s, nil
}

// apiError turns err into what the client sees. Client errors pass through;
// a report over its time bound is 504, a client gone is 499; anything else is
// logged and answered as a bare 500.
func (h *handler) apiError(ctx context.Context, r *http.Request, id uint32, err error) *apiError {
	var ae *apiError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &pgErr) && pgErr.Code == "2201B":
		// Translated patterns are checked before they are sent; this is
		// the database's own limit (e.g. "regular expression is too complex").
		return invalidArgument("A regular expression in the filter was refused by the database: %s.", pgErr.Message)
	case r.Context().Err() != nil:
		return newAPIError(499, "CANCELLED", "The request was cancelled by the client.")
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.log.WarnContext(ctx, "report timed out", "site", id, "timeout", h.timeout, "err", err)
		return newAPIError(http.StatusGatewayTimeout, "DEADLINE_EXCEEDED",
			"The report did not finish within %s; ask for fewer days or dimensions.", h.timeout)
	}
	h.log.ErrorContext(ctx, "report failed", "site", id, "err", err)
	return newAPIError(http.StatusInternalServerError, "INTERNAL", "Internal error encountered.")
}

// bearerKey extracts the key of "Bearer <key>" (scheme case-insensitive).
func bearerKey(header string) (string, bool) {
	scheme, key, ok := strings.Cut(strings.TrimSpace(header), " ")
	key = strings.TrimSpace(key)
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return "", false
	}
	return key, true
}

// isNotFound reports whether a KeyLookup error means "no such key".
func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nf interface{ NotFound() bool }
	return errors.Is(err, ErrUnknownKey) || errors.Is(err, postgres.ErrNotFound) || (errors.As(err, &nf) && nf.NotFound())
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
