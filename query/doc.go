// Package query serves the GA4 Data API v1beta (every method: runReport,
// batchRunReports, runPivotReport, batchRunPivotReports, getMetadata,
// checkCompatibility, runRealtimeReport) and v1alpha's runFunnelReport over
// the events stored by storage/postgres, on Google's own protobuf types
// (genproto analytics/data), over REST in proto3 JSON and over gRPC on the
// same port (api.go, protojson.go, grpc.go), so GA4 client libraries and
// dashboards read Avila like a GA4 property. runRealtimeReport and the realtime WebSocket
// (realtime_ws.go; the engine in query/engine/realtime) read the last 30
// minutes' counters from a RealtimeSource (storage/redis.Realtime)
// instead, grouping, filtering and ordering in Go with the same rules as
// the SQL path.
//
// A request flows through three stages, a package each; this package is
// the first and the last:
//
//   - the edge (this package: api.go, protojson.go, grpc.go, convert.go,
//     handler.go, batch.go, pivot.go, cache.go, quota*.go, metadata.go,
//     realtime_ws.go): REST bodies decode with protojson into Google's
//     messages (enum names or numbers, unknown fields and enum names
//     refused naming the field), gRPC requests arrive as them; convert.go
//     turns them into the planning stage's request structs and the
//     engines' answers back into messages; report.go picks the engine; a
//     batch runs its reports in one read-only snapshot; metadata lists the
//     allowlist itself.
//   - planning (query/plan): every dimension and metric name must be in
//     the allowlist (custom parameters by a checked name); dates resolve in
//     the site's time zone to half-open [start, end+1 day) instants;
//     filters become trees of allowlisted fields, fixed operators and
//     values; RE2 patterns are translated to PostgreSQL regular
//     expressions with the same meaning, or refused; scopes choose the
//     report's shape. The result is a plan.Plan that holds no request
//     strings that reach SQL text.
//   - the engines (query/engine/...): sql, the raw engine, assembles SQL
//     text only from the allowlist's expressions and fixed keywords; every
//     value (site, time zone, range bounds, limit, offset, filter values,
//     parameter names, name tables) is a bound parameter, so the text
//     depends only on the shape of the request and pgx caches its plan.
//     Dimension filters are WHERE, metric filters HAVING. Case-insensitive
//     matching and ordering lower-case with a fixed translate() table, the
//     same on every database locale. One statement per report, run with a
//     timeout, answered with values as strings like GA4. rollups, funnel
//     and realtime are the other engines (below). Engines read storage's
//     tables through storage/postgres' relation builders and typed reads
//     (EventsIn, ItemsIn, SessionsNear, RollupsIn, SumRollupCounters,
//     ReadRollupSketches), never a packed table's layout.
//
// The tests of this package hold every engine to one oracle: they go
// through the handler, force an engine with the plan's route, and compare
// its answer with a reference computed in Go from the events written.
//
// Errors are google.rpc.Status on both transports (REST:
// {"error":{"code","message","status","details"}}), with BadRequest field
// violations and ErrorInfo reasons as Google sends them: 400
// INVALID_ARGUMENT for a bad request (naming the offending field path or
// name), 401 UNAUTHENTICATED without a valid bearer key, 403
// PERMISSION_DENIED when the key may not read the property, 404 NOT_FOUND
// for an unknown property.
//
// Reports read the daily rollups (query/engine/rollups) when those
// hold what the report asks: day-level time dimensions, at most one
// dictionary dimension among the rolled kinds, rolled metrics, no metric
// filter, and days from the site's rollups_from on. The rollup statement
// returns groups with their counters and visitor sketches; grouping of
// sketches, ordering, paging and summaries then run in Go, in the same
// order the events statement uses. Everything else reads raw events. User
// counts from rollups are HyperLogLog estimates (about 0.8% standard error,
// exact for small counts); from events they are exact. Either way a user is
// counted once over the range: sketches of several days are merged, never
// added. A cookieless visitor's id is daily, so such a visitor seen on
// several days counts once per day.
//
// The scopes of a report's names choose its shape (query/plan: schema.go,
// scope_rules.go). Session reports (a session metric, dimensions that
// describe a session) read the session rollups the same way when those
// hold what they ask: day-level time dimensions, at most one session
// dimension among postgres.SessionRollupKinds (geography, platform,
// traffic source), and days from the site's session_rollups_from on; else
// the sessions table. Event reports by session- or user-scoped dimensions
// and event-session reports (a session metric by pagePath …) read events
// joined to their sessions.
//
// Computed reports are cached (cache.go) when Options.Cache is set: in
// Redis, shared by the cluster, or in the node's memory without Redis
// (storage/redis.Cache). The key hashes the site's data version, its
// reporting settings, the resolved date ranges and the canonical request,
// so a report is never served after a batch of its site committed (ingest
// bumps the version before the batch is acknowledged) and "today" is a new
// key each day. A batch is cached as a whole, keeping its one snapshot;
// the method is part of the key (a batch of one and a runReport are
// different answers). Pivot reports (pivot.go) are assembled from engine
// reports run and cached together the same way.
// The cache never decides an answer: when it is unavailable, reports are
// computed from PostgreSQL.
//
// Funnels (planned in query/plan's funnel_*.go, run by query/engine/funnel): POST /v1alpha/properties/{id}:runFunnelReport in
// GA4's v1alpha shape. Step filters compile to the same allowlisted filter
// trees as dimensionFilter (event name, event parameters as customEvent:
// dimensions, dimension fields); one statement ranks each visitor's events
// in the range by time and decides with window frames whether each event
// reaches each step, honoring closed/open funnels, isDirectlyFollowedBy and
// withinDurationFromPriorStep (see funnel.buildFunnelSQL). Users are visitor ids,
// so a funnel follows a visitor within a day.
//
// Property quotas (quota.go, quota_admit.go, tokens.go) are GA4's, enforced:
// a request over one is answered 429 RESOURCE_EXHAUSTED; a request costs
// tokens by what it makes PostgreSQL do (date range days, rollups or
// events, rows read), counted per property and category in the UTC hour
// and day (cluster-wide through Redis when configured) and answered as
// propertyQuota. A property's statements hold at most PropertyConns
// report connections at once (limit.go); its other admitted requests
// queue, at most its concurrentRequests quota of them.
//
// Dates resolve in query/plan, which imports time/tzdata, so a site's
// days are the same on every node whatever the host's zoneinfo files.
package query
