package query

import (
	"context"

	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
)

// runReport answers p from the rollups when they cover it (and p.Route
// allows), else from events.
func runReport(ctx context.Context, db sql.Querier, p *plan.Plan) (*plan.RunReportResponse, error) {
	if p.Route != plan.RouteEvents {
		if rp, ok := rollups.Cover(p); ok {
			return rollups.RunReport(ctx, db, p, rp)
		}
		if p.Route == plan.RouteRollups {
			return nil, rollups.ErrNotCovered
		}
	}
	return sql.RunReport(ctx, db, p)
}
