package agent

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/internal/httplog"
)

// routes is the agent's net/http handler: the collection endpoints plus
// health, readiness and Prometheus metrics, each request with an id from
// ids (httplog.HandlerIDs). The listener serves the collection endpoints
// natively and the rest through this handler.
func (a *Agent) routes(col *collect.Collector, metrics prometheus.Gatherer, ids *httplog.IDs) http.Handler {
	mux := http.NewServeMux()
	col.Register(mux)
	mux.Handle("GET /metrics", metricsHandler(metrics))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	return httplog.HandlerIDs(a.log, ids, mux)
}

// readyz answers 200 once the agent can record hits for at least one site
// today (a site config with a site and today's salt for it), else 503 with
// the reason.
func (a *Agent) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	sites := a.sites.Load()
	if sites == nil {
		msg := "not ready: no site config yet; no aggregator has answered"
		if st := a.shipper.Stats(); st.LastError != "" {
			msg += " (last error: " + st.LastError + ")"
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(msg + "\n"))
		return
	}
	if err := sites.Ready(time.Now()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}
