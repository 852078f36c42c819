package node

import (
	"context"
	"net/http"
	"time"

	"github.com/avila-analytics/avila/aggregator/governance"
	"github.com/avila-analytics/avila/query"
	"github.com/avila-analytics/avila/storage/redis"
	"github.com/avila-analytics/avila/web"
)

// readyTimeout bounds the database ping behind /readyz.
const readyTimeout = 2 * time.Second

// routes is the API server's handler: health and readiness here, everything
// else (the Data API under /v1beta/, funnels under /v1alpha/, both over gRPC
// under query.GRPCPaths) from the query package, and the dashboard (package
// web) at "/". Metrics and the cluster status are on the operator address
// only (operatorRoutes).
func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { n.readyz(w, r, false) })
	var qm *query.Metrics
	var quotaMetrics *query.QuotaMetrics
	if n.metrics != nil {
		qm, quotaMetrics = n.metrics.query, n.metrics.quota
	}
	qo := query.Options{Logger: n.log, Metrics: qm, Timeout: n.reportTimeout, PropertyConns: n.propertyConns}
	qo.Quota.Metrics = quotaMetrics
	if n.realtime != nil {
		qo.Realtime = n.realtime
	}
	if n.cache != nil {
		qo.Cache = n.cache
	}
	if n.replicas != nil {
		qo.ReadFrom = n.replicas.ReadFrom
	}
	if n.redis != nil {
		// Quota use counted cluster-wide; without Redis, per node.
		qo.Quota.Counter = redis.NewQuotaCounter(n.redis, n.rprefix)
	}
	qo.Quota.Lookup = n.siteQuota
	api := readBody(query.NewHandler(qo, n.reports, n.store))
	mux.Handle("/v1beta/", api)
	mux.Handle("/v1alpha/", api)                                                // runFunnelReport
	mux.Handle("/v1/gdpr/", governance.NewHandler(n.store, n.log, n.gdpr.Wake)) // data subject requests, admin keys only
	for _, p := range query.GRPCPaths {
		mux.Handle(p, api) // the same methods over gRPC (HTTP/2)
	}
	if n.socket != nil {
		mux.Handle("GET /v1/realtime/ws", n.socket)
	}
	for _, p := range []string{"/metrics", "/v1/cluster/status"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, p+" is served on the operator address (--listen-operator), not on the API address", http.StatusNotFound)
		})
	}
	mux.Handle("/", web.Handler())
	return mux
}

// operatorRoutes is the operator address's handler: health, readiness
// with the reason in full, Prometheus metrics and the cluster status. It
// is meant for a private network (Prometheus, probes, 'avila cluster
// status'), not for API clients.
func (n *Node) operatorRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { n.readyz(w, r, true) })
	if n.metrics != nil {
		mux.Handle("GET /metrics", n.metrics.handler())
	}
	mux.HandleFunc("GET /v1/cluster/status", n.clusterStatus)
	return mux
}

func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// siteQuota is a property's own quota limits (query.Options.Quota.Lookup).
func (n *Node) siteQuota(ctx context.Context, site uint32) (query.QuotaLimits, error) {
	q, err := n.store.SiteQuota(ctx, site)
	if err != nil {
		return query.QuotaLimits{}, err
	}
	return query.QuotaLimits{TokensPerDay: q.TokensPerDay, TokensPerHour: q.TokensPerHour,
		TokensPerProjectPerHour: q.TokensPerProjectPerHour, ConcurrentRequests: q.ConcurrentRequests,
		ServerErrorsPerProjectPerHour: q.ServerErrorsPerProjectPerHour}, nil
}

// readyz answers 200 when the node is not draining and the database answers
// with every migration applied, else 503 with the reason, so
// a load balancer stops sending queries to a node that cannot serve them.
// On the API address (detail false) the reason is generic: a driver's
// error names hosts, users and databases, which anonymous callers must not
// see; it is logged, and the operator address answers it in full.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request, detail bool) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	notReady := func(reason string, err error) {
		if suppressed, ok := n.readyLog.Allow(time.Now()); ok {
			n.log.WarnContext(ctx, "not ready", "reason", reason, "err", err, "suppressed", suppressed)
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		if detail && err != nil {
			reason = err.Error()
		}
		_, _ = w.Write([]byte("not ready: " + reason + "\n"))
	}
	if n.gate != nil && n.gate.isDraining() {
		notReady("draining", nil)
		return
	}
	if err := n.store.Ping(ctx); err != nil {
		notReady("database unavailable", err)
		return
	}
	if err := n.store.CheckSchema(ctx); err != nil {
		notReady("database schema not migrated (run avila migrate)", err)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// apiProtocols are the API server's protocols: HTTP/1.1, and HTTP/2 for
// gRPC clients (the query package serves the Data API's gRPC methods on
// the same port), unencrypted with prior knowledge (h2c) as gRPC clients
// speak it in clear text, and by ALPN (h2) under TLS.
func apiProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return p
}
