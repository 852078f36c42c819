package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/postgres"
)

// defaultTimeout bounds one report when Options.Timeout is zero.
const defaultTimeout = 30 * time.Second

// RealtimeSource is what runRealtimeReport and the realtime WebSocket
// read: the last 30 minutes' counters of a site (storage/redis.Realtime,
// RedisRealtime).
type RealtimeSource = realtime.Source

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
	Realtime realtime.Source
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
	sql.Querier
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

type handler struct {
	log     *slog.Logger
	now     func() time.Time
	timeout time.Duration
	db      db
	keys    KeyLookup
	cache   ResultCache     // nil: none
	metrics *Metrics        // nil: not counted
	route   plan.Route      // tables reports read; tests force one
	rt      realtime.Source // nil: no realtime reports
	names   *rollups.Names  // dim_ids' values, kept across reports
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

// NewHandler serves the GA4 Data API from pool, on Google's own types
// (genproto analytics/data v1beta, v1alpha for funnels): every method's
// REST binding (POST /v1beta/properties/{id}:runReport, :batchRunReports,
// :runPivotReport, :batchRunPivotReports, :runRealtimeReport (from
// opts.Realtime), :checkCompatibility, GET /v1beta/properties/{id}/metadata
// and POST /v1alpha/properties/{id}:runFunnelReport) in proto3 JSON, and
// the same methods over gRPC (HTTP/2 requests of Content-Type
// application/grpc, see grpc.go), authorizing each request's key with keys.
// Mount it at "/v1beta/", "/v1alpha/" and GRPCPaths without stripping
// the prefix, on a server that speaks HTTP/2 (h2c in clear text); other
// paths under them answer 404 NOT_FOUND.
func NewHandler(opts Options, pool *pgxpool.Pool, keys KeyLookup) http.Handler {
	return newAPI(opts, newHandler(opts, pool, keys))
}

// newAPI puts both transports in front of h.
func newAPI(opts Options, h *handler) http.Handler {
	var rest http.Handler = h
	if opts.Metrics != nil {
		rest = opts.Metrics.instrument(h)
	}
	return &api{rest: rest, grpc: newGRPC(h, opts.Metrics)}
}

func newHandler(opts Options, d db, keys KeyLookup) *handler {
	h := &handler{log: opts.Logger, now: opts.Now, timeout: opts.Timeout, db: d, keys: keys, cache: opts.Cache, metrics: opts.Metrics, rt: opts.Realtime,
		readFrom: opts.ReadFrom, names: rollups.NewNames(0)}
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

// ServeHTTP answers the REST binding of every method (see methods): the
// path names the version, the property and the method, the body is the
// request in proto3 JSON (decodeProto) and the answer is the response in
// proto3 JSON with Google's field names.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, idText, ok := restMethod(r.URL.Path)
	if !ok || m.verb != r.Method {
		writeError(w, plan.NewError(http.StatusNotFound, "NOT_FOUND", "No method %s %s; this server answers %s.",
			r.Method, truncate(r.URL.Path), restMethodList()))
		return
	}
	id, ae := parseProperty("properties/"+idText, "", m.name == "getMetadata")
	if ae != nil {
		writeError(w, ae)
		return
	}
	req := m.newReq()
	if m.verb == http.MethodPost {
		if err := decodeProto(r.Body, req); err != nil {
			writeError(w, h.apiError(r.Context(), r.Context(), id, err))
			return
		}
	}
	key, _ := requestKey(r)
	resp, ae := h.invoke(r.Context(), m, apiCall{key: key, fresh: requestsFresh(r.Header), client: r.Context()}, id, req)
	if ae != nil {
		writeError(w, ae)
		return
	}
	writeProto(w, r, resp)
}

// restMethod finds the method a REST path names, and the text of its
// property id.
func restMethod(path string) (*method, string, bool) {
	for _, prefix := range []string{propertiesPrefix, alphaPrefix} {
		rest, ok := strings.CutPrefix(path, prefix)
		if !ok {
			continue
		}
		cut := strings.IndexAny(rest, ":/")
		if cut < 0 {
			return nil, "", false
		}
		for _, m := range methods {
			if "/"+m.version+"/properties/" == prefix && m.suffix == rest[cut:] {
				return m, rest[:cut], true
			}
		}
	}
	return nil, "", false
}

// restMethodList names every REST binding, for a 404's message.
func restMethodList() string {
	var parts []string
	for _, m := range methods {
		parts = append(parts, m.verb+" /"+m.version+"/properties/{id}"+m.suffix)
	}
	return strings.Join(parts, ", ")
}

// requestKey is the API key of a REST request: "Authorization: Bearer
// <key>", or Google's x-goog-api-key header.
func requestKey(r *http.Request) (string, bool) {
	if key, ok := bearerKey(r.Header.Get("Authorization")); ok {
		return key, true
	}
	if key := strings.TrimSpace(r.Header.Get("X-Goog-Api-Key")); key != "" {
		return key, true
	}
	return "", false
}

// authorizeKey checks key against property id, as authorize does.
func (h *handler) authorizeKey(ctx context.Context, key string, id uint32) error {
	allowed, err := h.keys.LookupAPIKey(ctx, key)
	if isNotFound(err) {
		e := plan.NewError(http.StatusUnauthorized, "UNAUTHENTICATED", "The API key is not valid or was revoked.")
		e.Reason = "API_KEY_INVALID" // Google's ErrorInfo reason for a bad key
		return e
	}
	if err != nil {
		return fmt.Errorf("query: look up api key: %w", err)
	}
	if id != 0 && !slices.Contains(allowed, id) {
		return plan.NewError(http.StatusForbidden, "PERMISSION_DENIED",
			"The API key does not have sufficient permissions for property properties/%d.", id)
	}
	return nil
}

// site loads the property's reporting settings; 404 when it does not exist.
func (h *handler) site(ctx context.Context, id uint32) (plan.Site, error) {
	s := plan.Site{ID: id}
	err := h.db.QueryRow(ctx, `SELECT time_zone, currency_code, GREATEST(rollups_from, '0001-01-02'),
		GREATEST(rollups_from, hour_rollups_from, '0001-01-02'), GREATEST(session_rollups_from, '0001-01-02'),
		GREATEST(rollups_from, traffic_rollups_from, '0001-01-02'), key_events,
		GREATEST(rollups_from, commerce_rollups_from, '0001-01-02'), GREATEST(rollups_from, page_rollups_from, '0001-01-02')
		FROM sites WHERE id = $1`,
		int32(id)).Scan(&s.TimeZone, &s.Currency, &s.RollupsFrom, &s.HourRollupsFrom, &s.SessionRollupsFrom, &s.TrafficRollupsFrom, &s.KeyEvents,
		&s.CommerceRollupsFrom, &s.PageRollupsFrom)
	if errors.Is(err, pgx.ErrNoRows) {
		return plan.Site{}, plan.NewError(http.StatusNotFound, "NOT_FOUND", "Property properties/%d not found.", id)
	}
	if err != nil {
		return plan.Site{}, fmt.Errorf("query: load property %d: %w", id, err)
	}
	if s.Loc, err = time.LoadLocation(s.TimeZone); err != nil {
		return plan.Site{}, fmt.Errorf("query: property %d: time zone: %w", id, err)
	}
	return s, nil
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

// alphaPrefix is where the v1alpha methods (funnels) live.
const alphaPrefix = "/v1alpha/properties/"
