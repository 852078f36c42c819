package query

import (
	"context"

	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/engine/sql"
	"github.com/avila-analytics/avila/query/plan"
)

// runReport answers p from the rollups when they cover it (and p.Route
// allows), else from events; names keeps the rollups' dim_ids' values
// across reports (nil: none kept).
func runReport(ctx context.Context, db sql.Querier, p *plan.Plan, names *rollups.Names) (*plan.RunReportResponse, error) {
	if p.Route != plan.RouteEvents {
		if rp, ok := rollups.Cover(p); ok {
			return rollups.RunReport(ctx, db, p, rp, names)
		}
		if p.Route == plan.RouteRollups {
			return nil, rollups.ErrNotCovered
		}
	}
	return sql.RunReport(ctx, db, p)
}
