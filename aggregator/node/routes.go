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

// routes is the API server's handler: health, readiness and metrics here, everything
// else (the Data API under /v1beta/, funnels under /v1alpha/, both over gRPC under
// query.GRPCPaths) from the query package,
// and the dashboard (package web) at "/".
func (n *Node) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", n.readyz)
	var qm *query.Metrics
	if n.metrics != nil {
		mux.Handle("GET /metrics", n.metrics.handler())
		qm = n.metrics.query
	}
	mux.HandleFunc("GET /v1/cluster/status", n.clusterStatus)
	qo := query.Options{Logger: n.log, Metrics: qm}
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
	api := query.NewHandler(qo, n.store.Pool, n.store)
	mux.Handle("/v1beta/", api)
	mux.Handle("/v1alpha/", api)                                   // runFunnelReport
	mux.Handle("/v1/gdpr/", governance.NewHandler(n.store, n.log)) // data subject requests, admin keys only
	for _, p := range query.GRPCPaths {
		mux.Handle(p, api) // the same methods over gRPC (HTTP/2)
	}
	if n.socket != nil {
		mux.Handle("GET /v1/realtime/ws", n.socket)
	}
	mux.Handle("/", web.Handler())
	return mux
}

// readyz answers 200 when the node is not draining and the database answers
// with every migration applied, else 503 with the reason, so
// a load balancer stops sending queries to a node that cannot serve them.
func (n *Node) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if n.gate != nil && n.gate.isDraining() {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: draining\n"))
		return
	}
	if err := n.store.Ping(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
		return
	}
	if err := n.store.CheckSchema(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
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
