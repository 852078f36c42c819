// Package sql is the raw engine of the Data API: it answers a plan.Plan
// with one statement over events (or sessions, or item rows), run with a
// timeout and answered with values as strings like GA4 (RunReport), and
// holds the SQL writer the rollup and funnel engines build on (Writer,
// FilterSQL, the dimension expressions of rollup rows).
//
// SQL text is assembled only from the allowlist's expressions (query/plan)
// and fixed keywords; every value (site, time zone, range bounds, limit,
// offset, filter values, parameter names, name tables) is a bound
// parameter, so the text depends only on the shape of the request and pgx
// caches its plan. Dimension filters are WHERE, metric filters HAVING;
// case-insensitive matching and ordering lower-case with a fixed
// translate() table (fold.go), the same on every database locale.
//
// Events and item rows are read through storage/postgres' EventsIn and
// ItemsIn over the columns a statement reads (events_source.go), joined to
// their sessions (SessionsNear, SessionOf) when the statement reads a
// session's columns; the engine never names a packed table.
package sql
