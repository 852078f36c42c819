package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// report is one of the requests the dashboard makes.
type report struct {
	name   string
	method string // runReport or runRealtimeReport
	body   string // request JSON
	// empty: the report may answer no rows (realtime, over a data set
	// written straight to the tables, has no recent commits to count).
	empty bool
}

// last30Days is the dashboard's default range: today and the 29 days before.
const last30Days = `"dateRanges":[{"startDate":"29daysAgo","endDate":"today"}]`

// topBy is a top-10 report of dimension by metrics, the first one ordering.
func topBy(name, dimension string, metrics ...string) report {
	ms := ""
	for i, m := range metrics {
		if i > 0 {
			ms += ","
		}
		ms += `{"name":"` + m + `"}`
	}
	return report{name: name, method: "runReport", body: `{` + last30Days + `,"dimensions":[{"name":"` + dimension + `"}],` +
		`"metrics":[` + ms + `],"orderBys":[{"metric":{"metricName":"` + metrics[0] + `"},"desc":true}],"limit":10}`}
}

// dashboardSet is what the dashboard (web/) asks for on opening the last
// 30 days: the totals, the daily series, top pages, sources, countries and
// devices, revenue and top products, and the live count of the last 30
// minutes.
var dashboardSet = []report{
	{name: "totals", method: "runReport", body: `{` + last30Days + `,"metrics":[{"name":"activeUsers"},{"name":"sessions"},` +
		`{"name":"screenPageViews"},{"name":"eventCount"},{"name":"bounceRate"},{"name":"averageSessionDuration"}]}`},
	{name: "daily series", method: "runReport", body: `{` + last30Days + `,"dimensions":[{"name":"date"}],` +
		`"metrics":[{"name":"screenPageViews"},{"name":"activeUsers"}],"orderBys":[{"dimension":{"dimensionName":"date"}}],"limit":1000}`},
	topBy("top pages", "pagePath", "screenPageViews", "activeUsers"),
	topBy("sources", "sessionSource", "sessions", "activeUsers"),
	topBy("countries", "country", "activeUsers", "screenPageViews"),
	topBy("devices", "deviceCategory", "activeUsers", "screenPageViews"),
	{name: "revenue", method: "runReport", body: `{` + last30Days + `,"metrics":[{"name":"totalRevenue"},{"name":"ecommercePurchases"}]}`},
	topBy("top products", "itemName", "itemRevenue", "itemsPurchased"),
	{name: "realtime", method: "runRealtimeReport", body: `{"metrics":[{"name":"activeUsers"},{"name":"screenPageViews"}]}`, empty: true},
}

// sessionShapes are the reports GA4 users pair across scopes, beside the
// dashboard's set: event metrics by a session's traffic source or landing
// page (GA4 puts a session's values on each of its events) and session
// metrics by a page (the sessions in which the page was viewed).
var sessionShapes = []report{
	topBy("views by session source", "sessionSource", "screenPageViews"),
	topBy("events by session channel", "sessionDefaultChannelGroup", "eventCount", "keyEvents"),
	topBy("views and users by session source / medium", "sessionSourceMedium", "screenPageViews", "totalUsers"),
	topBy("views by landing page", "landingPage", "screenPageViews"),
	topBy("sessions by page", "pagePath", "sessions"),
}

// loadDataset brings the dashboard site to ds.events events: it generates
// the missing ones over the last datasetDays days with COPY, rebuilds the
// site's rollups and sessions from them (what the write stage would have
// written), then vacuums and analyzes as autovacuum would after a bulk load.
func (r *run) loadDataset(ctx context.Context, ds dataset) error {
	site := r.st.sites[siteDashboard]
	if r.dict == nil {
		d, err := createDictionary(ctx, r.st.db, site.ID)
		if err != nil {
			return err
		}
		r.dict = d
		if r.contents, err = createContents(ctx, r.st.db, site.ID, d); err != nil {
			return err
		}
		if r.clients, err = createClients(ctx, r.st.db, site.ID, d); err != nil {
			return err
		}
		if r.products, err = createProducts(ctx, r.st.store, site.ID); err != nil {
			return err
		}
		if r.traffic, err = createTraffic(ctx, r.st.db, site.ID); err != nil {
			return err
		}
	}
	add := ds.events - r.loaded
	if add <= 0 {
		return nil
	}
	to := time.Now().UTC()
	from := to.AddDate(0, 0, -datasetDays)
	if err := r.st.store.EnsurePartitions(ctx, from, to); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	r.log.Info("query data: generating events with COPY", "site", site.ID, "events", add, "days", datasetDays)
	start := time.Now()
	conn, err := r.st.db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("bench: query data: %w", err)
	}
	defer conn.Release()
	// Chunks of one million rows keep each COPY's transaction bounded.
	const chunk = 1_000_000
	for done := int64(0); done < add; {
		n := min(chunk, add-done)
		span := to.Sub(from)
		cFrom := from.Add(time.Duration(float64(span) * float64(done) / float64(add)))
		cTo := from.Add(time.Duration(float64(span) * float64(done+n) / float64(add)))
		// Purchase ids: a block of the event_commerce sequence as large
		// as the chunk's events could need.
		var first int32
		if err := conn.QueryRow(ctx, `SELECT setval(pg_get_serial_sequence('event_commerce', 'id'),
			nextval(pg_get_serial_sequence('event_commerce', 'id')) + $1) - $1`, n).Scan(&first); err != nil {
			return fmt.Errorf("bench: query data: commerce ids: %w", err)
		}
		gen := newEventGen(site.ID, r.dict, r.contents, r.clients, r.traffic, cFrom, cTo, n, uint64(r.loaded+done+1)).
			withProducts(r.products, first)
		if _, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, datasetCols, gen); err != nil {
			return fmt.Errorf("bench: query data: copy: %w", err)
		}
		if err := gen.writeCommerce(ctx, conn.Conn()); err != nil {
			return fmt.Errorf("bench: query data: %w", err)
		}
		done += n
	}
	r.loaded = ds.events
	r.log.Info("query data: loaded", "events", add, "rows_per_s", int64(perSecond(add, time.Since(start))))
	// COPY bypasses the write stage, which writes sessions (and the
	// session_start and first_visit events they add) and rollups: rebuild
	// them in that order, as avila rebuild does (the rollups count the
	// derived events and each event under its session's traffic source).
	start = time.Now()
	if err := r.st.store.RebuildSessionsBeforeRollups(ctx, site.ID); err != nil {
		return fmt.Errorf("bench: query data: %w", err)
	}
	r.log.Info("query data: sessions rebuilt", "events", ds.events, "seconds", time.Since(start).Seconds())
	start = time.Now()
	if err := r.st.store.RebuildRollups(ctx, site.ID); err != nil {
		return fmt.Errorf("bench: query data: %w", err)
	}
	r.log.Info("query data: rollups rebuilt", "events", ds.events, "seconds", time.Since(start).Seconds())
	// The aggregator's upkeep job packs settled days' events (all but the
	// last four days here) a run at a time; do its runs now.
	start = time.Now()
	for {
		days, err := r.st.store.PackEvents(ctx, time.Now())
		if err != nil {
			return fmt.Errorf("bench: query data: %w", err)
		}
		if days == 0 {
			break
		}
	}
	r.log.Info("query data: settled days' events packed", "events", ds.events, "seconds", time.Since(start).Seconds())
	start = time.Now()
	for {
		days, err := r.st.store.PackItems(ctx, time.Now())
		if err != nil {
			return fmt.Errorf("bench: query data: %w", err)
		}
		if days == 0 {
			break
		}
	}
	r.log.Info("query data: settled days' item rows packed", "events", ds.events, "seconds", time.Since(start).Seconds())
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) events, event_packs, sessions, rollup_days, rollup_packs, session_rollups, event_commerce, event_items, item_packs"); err != nil {
		return fmt.Errorf("bench: query data: vacuum: %w", err)
	}
	return nil
}

// queries times the dashboard set over HTTP. The first pass is the cold
// figure (fresh statement plans, PostgreSQL's buffers as the load left
// them). Then repetitions until r.sz.warmRuns or r.sz.warmFor, each request
// twice: with Cache-Control: no-cache, computed from PostgreSQL (the p50/p99
// the targets are about), and plainly, answered from the query cache the
// request before filled (the warm-cache figures).
func (r *run) queries(ctx context.Context, ds dataset) error {
	site := r.st.sites[siteDashboard]
	client := &http.Client{Timeout: 2 * time.Minute}
	base := r.st.apiURL + "/v1beta/properties/" + strconv.FormatUint(uint64(site.ID), 10) + ":"
	var cold time.Duration
	for _, rep := range dashboardSet {
		d, err := r.runReport(ctx, client, base, rep, true)
		if err != nil {
			return err
		}
		cold += d
	}
	var uncached, cached []float64
	byReport := make([][]float64, len(dashboardSet))
	deadline := time.Now().Add(r.sz.warmFor)
	runs := 0
	for ; runs < r.sz.warmRuns && (runs < 2 || time.Now().Before(deadline)); runs++ {
		for i, rep := range dashboardSet {
			d, err := r.runReport(ctx, client, base, rep, true)
			if err != nil {
				return err
			}
			uncached = append(uncached, ms(d))
			byReport[i] = append(byReport[i], ms(d))
			if d, err = r.runReport(ctx, client, base, rep, false); err != nil {
				return err
			}
			cached = append(cached, ms(d))
		}
	}
	for i, rep := range dashboardSet {
		r.log.Info("dashboard request", "events", ds.events, "report", rep.name,
			"p50_ms", Percentile(byReport[i], 50), "max_ms", Percentile(byReport[i], 100))
	}
	r.log.Info("dashboard queries", "events", ds.events, "cold_ms", ms(cold), "runs", runs, "requests", len(uncached),
		"p99_ms", Percentile(uncached, 99), "p99_ms_cached", Percentile(cached, 99))
	r.set("query_cold_ms_"+ds.key, ms(cold))
	r.set("query_p50_ms_"+ds.key, Percentile(uncached, 50))
	r.set("query_p99_ms_"+ds.key, Percentile(uncached, 99))
	r.set("query_p50_ms_"+ds.key+"_cached", Percentile(cached, 50))
	r.set("query_p99_ms_"+ds.key+"_cached", Percentile(cached, 99))
	if err := r.shapeQueries(ctx, client, base, ds, runs); err != nil {
		return err
	}
	return r.grpcQueries(ctx, ds, runs)
}

// shapeQueries runs sessionShapes uncached as many times as the dashboard
// set ran, at least 3 and at most 5 (two of them still read events and take
// seconds at 10M; more runs would add minutes, not precision), and records
// their p50 and p99.
func (r *run) shapeQueries(ctx context.Context, client *http.Client, base string, ds dataset, runs int) error {
	var all []float64
	byReport := make([][]float64, len(sessionShapes))
	for range min(max(runs, 3), 5) {
		for i, rep := range sessionShapes {
			d, err := r.runReport(ctx, client, base, rep, true)
			if err != nil {
				return err
			}
			all = append(all, ms(d))
			byReport[i] = append(byReport[i], ms(d))
		}
	}
	for i, rep := range sessionShapes {
		r.log.Info("session shape request", "events", ds.events, "report", rep.name,
			"p50_ms", Percentile(byReport[i], 50), "max_ms", Percentile(byReport[i], 100))
	}
	r.set("query_p50_ms_"+ds.key+"_session_shapes", Percentile(all, 50))
	r.set("query_p99_ms_"+ds.key+"_session_shapes", Percentile(all, 99))
	return nil
}

// runReport sends one request of the set and checks it answered rows;
// fresh asks the server to compute it rather than read its cache.
func (r *run) runReport(ctx context.Context, client *http.Client, base string, rep report, fresh bool) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+rep.method, bytes.NewReader([]byte(rep.body)))
	if err != nil {
		return 0, fmt.Errorf("bench: report %s: %w", rep.name, err)
	}
	req.Header.Set("Authorization", "Bearer "+r.st.apiKey)
	req.Header.Set("Content-Type", "application/json")
	if fresh {
		req.Header.Set("Cache-Control", "no-cache")
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("bench: report %s: %w", rep.name, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("bench: report %s: read answer: %w", rep.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("bench: report %s: %s: %s", rep.name, resp.Status, body)
	}
	var out struct {
		RowCount int `json:"rowCount"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return 0, fmt.Errorf("bench: report %s: answer is not JSON: %w", rep.name, err)
	}
	if out.RowCount == 0 && !rep.empty {
		return 0, errors.New("bench: report " + rep.name + " answered no rows over the generated data")
	}
	return d, nil
}

// diskBytes measures bytes per event on disk: every events partition with
// its indexes and TOAST, the item rows (event_items partitions and
// item_packs), the dims dictionary, the client and traffic
// profiles, and the rollup (event and session rollups) and session tables
// when the schema has them, over the number of events stored.
func (r *run) diskBytes(ctx context.Context, key string) error {
	var bytes, events int64
	err := r.st.db.QueryRow(ctx, `SELECT
		(SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c
		  JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = current_schema() AND c.relkind = 'r'
		   AND (c.relname ~ '^(event_items|events)_p[0-9]{8}$' OR c.relname IN ('event_packs', 'item_packs', 'dims', 'content_profiles', 'client_profiles', 'traffic_profiles',
		        'event_commerce', 'event_items', 'item_profiles')
		        OR c.relname LIKE '%rollup%' OR c.relname LIKE 'sessions%')),
		(SELECT count(*) FROM events) + (SELECT coalesce(sum(events), 0) FROM event_packs)`).Scan(&bytes, &events)
	if err != nil {
		return fmt.Errorf("bench: disk bytes: %w", err)
	}
	if events == 0 {
		return errors.New("bench: disk bytes: no events stored")
	}
	r.log.Info("disk use", "bytes", bytes, "events", events)
	// Where the bytes go: each table group (events partitions, their
	// indexes, dims, rollups, sessions) per event, for the log.
	parts, err := r.st.db.Query(ctx, `SELECT CASE WHEN c.relname ~ '^events_p[0-9]{8}$' THEN 'events'
			WHEN c.relname ~ '^sessions_p[0-9]{8}$' THEN 'sessions'
			WHEN c.relname ~ '^event_items_p[0-9]{8}$' THEN 'event_items' ELSE c.relname END,
			sum(pg_table_size(c.oid))::bigint, sum(pg_indexes_size(c.oid))::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r'
		  AND (c.relname ~ '^(event_items|events)_p[0-9]{8}$' OR c.relname IN ('event_packs', 'item_packs', 'dims', 'content_profiles', 'client_profiles', 'traffic_profiles',
		        'event_commerce', 'event_items', 'item_profiles')
		       OR c.relname LIKE '%rollup%' OR c.relname LIKE 'sessions%')
		GROUP BY 1 ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("bench: disk bytes by table: %w", err)
	}
	for parts.Next() {
		var name string
		var table, index int64
		if err := parts.Scan(&name, &table, &index); err != nil {
			parts.Close()
			return fmt.Errorf("bench: disk bytes by table: %w", err)
		}
		r.log.Info("disk use by table", "table", name, "table_bytes_per_event", float64(table)/float64(events),
			"index_bytes_per_event", float64(index)/float64(events))
	}
	if err := parts.Err(); err != nil {
		return fmt.Errorf("bench: disk bytes by table: %w", err)
	}
	r.set(key, float64(bytes)/float64(events))
	return nil
}
