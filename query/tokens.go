package query

import (
	"github.com/avila-analytics/avila/query/engine/rollups"
	"github.com/avila-analytics/avila/query/plan"
	"time"
)

// Token costs (see quota.go). A day of events costs as much as
// eventsWeight days of rollups: a rollup day is one row per dimension
// value, an events day every event of the day.
const (
	tokenDays     = 30   // days × weight per token beyond a report's first
	eventsWeight  = 10   // weight of a day read from events (or sessions)
	rollupsWeight = 1    // weight of a day read from the rollups
	tokenRows     = 1000 // rows received from PostgreSQL per extra token
)

// rangeDays is the number of days in r, a partial day counting whole.
func rangeDays(r plan.RangePlan) int64 {
	d := r.Hi.Sub(r.Lo)
	if d <= 0 {
		return 0
	}
	return int64((d + 24*time.Hour - 1) / (24 * time.Hour))
}

// reportTokens is what computing p costs: 1 + ⌊days × w / 30⌋.
func reportTokens(p *plan.Plan) int64 {
	var days int64
	for _, r := range p.Ranges {
		days += rangeDays(r)
	}
	w := int64(eventsWeight)
	if p.Route != plan.RouteEvents {
		if _, ok := rollups.Cover(p); ok {
			w = rollupsWeight
		}
	}
	return 1 + days*w/tokenDays
}

// reportsCost is the token cost of the request that computed plans: 1
// when it ran no statement (the cache answered), else the sum of the
// reports' costs plus a token per 1000 rows received.
func reportsCost(u *usage, plans ...*plan.Plan) int64 {
	if u.statements.Load() == 0 {
		return 1
	}
	var n int64
	for _, p := range plans {
		n += reportTokens(p)
	}
	return n + u.rows.Load()/tokenRows
}

// funnelCost is what a funnel over fp's range cost: it scans events, so
// 1 + ⌊days × 10 / 30⌋, plus a token per 1000 rows received.
func funnelCost(u *usage, fp *plan.FunnelPlan) int64 {
	return 1 + rangeDays(fp.Rng)*eventsWeight/tokenDays + u.rows.Load()/tokenRows
}
