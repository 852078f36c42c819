package node

import (
	"log/slog"

	"github.com/avila-analytics/avila/aggregator/governance"
)

// newGDPRWorker returns the worker that runs the API's data subject
// requests on this node: erasures clear this node's realtime memory and
// Redis, and bump the report cache.
func (n *Node) newGDPRWorker(log *slog.Logger) *governance.Worker {
	svc := &governance.Service{Store: n.store, Log: log}
	if n.cache != nil {
		svc.Cache = n.cache
	}
	if n.realtime != nil {
		svc.Realtime = n.realtime
	}
	var m *governance.Metrics
	if n.metrics != nil {
		m = n.metrics.governance
	}
	return governance.NewWorker(svc, governance.WorkerConfig{Metrics: m})
}
