package postgres

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// referenceUpsertSessionsSQL is how sessions were written before
// upsertSessions updated the stored ones and inserted the others: one
// INSERT … ON CONFLICT DO UPDATE of every row.
var referenceUpsertSessionsSQL = "WITH i AS " + zipArrays(1, sessionArrayColumns, "") + `,
	u AS (INSERT INTO sessions (` + strings.Join(sessionColumns, ", ") + `) SELECT * FROM i ORDER BY 1, 3, 4, 2
		ON CONFLICT (site_id, visitor_id, session_id, ts) DO UPDATE SET
		last_ts = greatest(sessions.last_ts, excluded.last_ts),
		events = sessions.events + excluded.events,
		page_views = sessions.page_views + excluded.page_views,
		key_events = sessions.key_events + excluded.key_events,
		engagement_ms = sessions.engagement_ms + excluded.engagement_ms,
		flags = sessions.flags | excluded.flags,
		page_id = CASE WHEN sessions.page_id = 0 THEN excluded.page_id ELSE sessions.page_id END,
		exit_page_id = CASE WHEN excluded.exit_page_id <> 0 AND excluded.last_ts >= sessions.last_ts
			THEN excluded.exit_page_id ELSE sessions.exit_page_id END
		RETURNING session_id, ` + sessionStateColumns + `, client_id, traffic_id, page_id)
	` + sessionsWritten

// referenceUpsertSessions is upsertSessions through
// referenceUpsertSessionsSQL: the states before by sessionsBeforeSQL, then
// the conflict upsert of all rows.
func referenceUpsertSessions(ctx context.Context, tx pgx.Tx, rows []SessionRow) (SessionChanges, error) {
	n := len(rows)
	sites, visitors, ids, starts := make([]int32, n), make([]int64, n), make([]int64, n), make([]time.Time, n)
	all := make([]int32, n)
	first, last := rows[0].TS, rows[0].TS
	for i := range rows {
		sites[i], visitors[i], ids[i], starts[i], all[i] = rows[i].Site, rows[i].Visitor, rows[i].ID, rows[i].TS, int32(i)
		first, last = earlierTime(first, rows[i].TS), laterTime(last, rows[i].TS)
	}
	before := map[sessionKey]sessionState{}
	res, err := tx.Query(ctx, sessionsBeforeSQL, sites, visitors, ids, starts, first, last)
	if err != nil {
		return nil, err
	}
	for res.Next() {
		var k sessionKey
		var ts time.Time
		var o sessionState
		var client, traffic int32
		if err := res.Scan(&k.visitor, &k.id, &ts, &o.last, &o.events, &o.pageViews, &o.keyEvents, &o.engage, &o.flags, &o.landing, &client, &traffic); err != nil {
			res.Close()
			return nil, err
		}
		k.start = ts.UnixMicro()
		before[k] = o
	}
	res.Close()
	if err := res.Err(); err != nil {
		return nil, err
	}
	res, err = tx.Query(ctx, referenceUpsertSessionsSQL, sessionArrays(rows, all, false)...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	var out SessionChanges
	for res.Next() {
		var c sessionChange
		dest := append([]any{&c.id, &c.now.traffic, &c.now.landing}, c.now.scanDest()...)
		if err := res.Scan(dest...); err != nil {
			return nil, err
		}
		if o, ok := before[sessionKey{c.now.visitor, c.id, c.now.ts.UnixMicro()}]; ok {
			b := c.now
			b.dims = slices.Clone(c.now.dims)
			b.last, b.events, b.pageViews, b.keyEvents, b.engage, b.flags = o.last, o.events, o.pageViews, o.keyEvents, o.engage, o.flags
			b.landing = o.landing
			c.before = &b
		}
		out = append(out, c)
	}
	return out, res.Err()
}

// TestUpsertSessionsEqualsConflictUpsert: chunks of sessions, new ones and
// stored ones mixed in one chunk, in no order, over two days' partitions,
// with landing and exit pages, flags and latest times that the rules of a
// stored session keep or replace, written by UpsertSessions to one site
// and by the conflict upsert of before to another, leave the same
// sessions rows and return the same changes (values after and before,
// profiles' dims), in derivations committed or not.
func TestUpsertSessionsEqualsConflictUpsert(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	if err := s.EnsurePartitions(ctx, day.Add(-24*time.Hour), day.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	var sites [2]Site
	var clients, traffics [2][2]int32
	for i := range sites {
		site, err := s.CreateSite(ctx, SiteSpec{Name: fmt.Sprint("sessions ", i)})
		if err != nil {
			t.Fatal(err)
		}
		sites[i] = site
		for j := range 2 {
			if err := s.pool.QueryRow(ctx, `INSERT INTO client_profiles (site_id, language_id, screen_id, country_id, region_id, city_id, browser_id, os_id, device_id)
				VALUES ($1, $2, 2, 3, 4, 5, 6, 7, 8) RETURNING id`, int32(site.ID), int32(j+1)).Scan(&clients[i][j]); err != nil {
				t.Fatal(err)
			}
			if err := s.pool.QueryRow(ctx, `INSERT INTO traffic_profiles (site_id, source_id, medium_id, campaign_id, channel_id)
				VALUES ($1, $2, 2, 3, 4) RETURNING id`, int32(site.ID), int32(j+1)).Scan(&traffics[i][j]); err != nil {
				t.Fatal(err)
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 11))
	// A session v starts on one of two days; each chunk picks sessions
	// among the first 400 + 200 × round (stored ones and new ones) and gives each new values,
	// the same for both sites but their ids and profiles'.
	chunk := func(n, round int) [2][]SessionRow {
		var rows [2][]SessionRow
		for _, v := range rng.Perm(400 + 200*round)[:n] {
			start := day.Add(time.Duration(v)*time.Minute - 12*time.Hour)
			first := [numDimKinds]int32{}
			first[DimHost-1], first[DimReferrer-1] = int32(1+v%3), int32(round)
			r := SessionRow{TS: start,
				Last: start.Add(time.Duration(rng.IntN(600)) * time.Second), Visitor: int64(1000 + v%150), ID: int64(7000 + v),
				Events: int32(1 + rng.IntN(4)), PageViews: int32(rng.IntN(3)), KeyEvents: int32(rng.IntN(2)),
				Engage: int64(rng.IntN(20000)), Flags: int16(1 << rng.IntN(8)),
				Landing: int32(rng.IntN(3)), Exit: int32(rng.IntN(3)), First: &first, FirstSource: int32(rng.IntN(4))}
			client, traffic := rng.IntN(3), rng.IntN(3) // 2: none
			for i := range rows {
				r.Site, r.Client, r.TrafficProfile = int32(sites[i].ID), 0, 0
				if client < 2 {
					r.Client = clients[i][client]
				}
				if traffic < 2 {
					r.TrafficProfile = traffics[i][traffic]
				}
				rows[i] = append(rows[i], r)
			}
		}
		return rows
	}
	for round := range 6 {
		var chunks [][2][]SessionRow
		for _, n := range []int{150, 90, 250} {
			chunks = append(chunks, chunk(n, round))
		}
		var changes [2]SessionChanges
		for site := range 2 {
			d, err := s.BeginDerive(ctx, sites[site].ID)
			if err != nil {
				t.Fatal(err)
			}
			for _, rows := range chunks {
				var c SessionChanges
				if site == 0 {
					c, err = d.UpsertSessions(ctx, rows[site])
					c = deepChanges(c)
				} else {
					c, err = referenceUpsertSessions(ctx, d.tx, rows[site])
				}
				if err != nil {
					t.Fatal(err)
				}
				changes[site] = append(changes[site], c...)
			}
			if round == 3 {
				d.Rollback(ctx) // a derivation that failed: nothing of it stays
				continue
			}
			if err := d.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		got, want := changes[0], changes[1]
		stored := 0
		for i := range want {
			if want[i].before != nil {
				stored++
			}
		}
		if round > 0 && (stored == 0 || stored == len(want)) {
			t.Fatalf("round %d: %d of %d changes of stored sessions, want some of each", round, stored, len(want))
		}
		if g, w := changesOf(got, traffics[0]), changesOf(want, traffics[1]); !reflect.DeepEqual(g, w) {
			t.Fatalf("round %d: %d changes, %d by the conflict upsert, or they differ:\n%v\n%v", round, len(g), len(w), g[:2], w[:2])
		}
	}
	if g, w := storedSessions(t, s, sites[0].ID, clients[0], traffics[0]), storedSessions(t, s, sites[1].ID, clients[1], traffics[1]); !reflect.DeepEqual(g, w) || len(g) < 300 {
		t.Fatalf("%d sessions rows, %d by the conflict upsert, or they differ", len(g), len(w))
	}
}

// changesOf is cs as text without the site, the traffic profile's id
// replaced by its index in traffics, one line a change, sorted.
func changesOf(cs SessionChanges, traffics [2]int32) []string {
	state := func(s *sessionState) string {
		return fmt.Sprintf("%d %s %s %d %d %d %d %d %v %d %d", s.visitor, s.ts.UTC(), s.last.UTC(), s.events, s.pageViews, s.keyEvents,
			s.engage, s.flags, s.dims, slices.Index(traffics[:], s.traffic), s.landing)
	}
	out := make([]string, len(cs))
	for i := range cs {
		c := &cs[i]
		out[i] = fmt.Sprintf("%d %s", c.id, state(&c.now))
		if c.before != nil {
			out[i] += " before " + state(c.before)
		}
	}
	slices.Sort(out)
	return out
}

// storedSessions is every sessions row of site as text, without the site,
// the profiles' ids replaced by their index, sorted.
func storedSessions(t *testing.T, s *Store, site uint32, clients, traffics [2]int32) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT ts, last_ts, visitor_id, session_id, engagement_ms, events, page_views,
		key_events, page_id, exit_page_id, host_id, referrer_id, client_id, traffic_id, first_source_id, flags FROM sessions WHERE site_id = $1`, int32(site))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		ts, last                                                         time.Time
		visitor, id, engage                                              int64
		events, views, keyEvents, page, exit, host, ref, client, traffic int32
		firstSource                                                      int32
		flags                                                            int16
	}
	var out []string
	var r row
	_, err = pgx.ForEachRow(rows, []any{&r.ts, &r.last, &r.visitor, &r.id, &r.engage, &r.events, &r.views, &r.keyEvents,
		&r.page, &r.exit, &r.host, &r.ref, &r.client, &r.traffic, &r.firstSource, &r.flags}, func() error {
		c := r
		c.ts, c.last = c.ts.UTC(), c.last.UTC()
		c.client, c.traffic = int32(slices.Index(clients[:], c.client)), int32(slices.Index(traffics[:], c.traffic))
		out = append(out, fmt.Sprintf("%+v", c))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(out, cmp.Compare)
	return out
}

// BenchmarkUpsertSessions writes 2000 stored sessions a derivation (each
// iteration one, committed), as the end-to-end bench's derivations do its
// visitors' sessions: update, UpsertSessions; conflict, the conflict
// upsert of before. pg-cpu-µs/session is the backend's CPU time
// (/proc/PID/schedstat, a server on this machine).
func BenchmarkUpsertSessions(b *testing.B) {
	b.Run("update", func(b *testing.B) { benchmarkUpsertSessions(b, false) })
	b.Run("conflict", func(b *testing.B) { benchmarkUpsertSessions(b, true) })
}

func benchmarkUpsertSessions(b *testing.B, conflict bool) {
	ctx := context.Background()
	s := newStore(b)
	day := time.Now().UTC().Truncate(24 * time.Hour)
	if err := s.EnsurePartitions(ctx, day, day); err != nil {
		b.Fatal(err)
	}
	site, err := s.CreateSite(ctx, SiteSpec{Name: "sessions"})
	if err != nil {
		b.Fatal(err)
	}
	const n = 2000
	rows := sessionRowsOn(site.ID, day, n)
	write := func() time.Duration {
		return deriveBackendCPU(b, s, site.ID, func(d *DeriveTx) {
			var err error
			if conflict {
				_, err = referenceUpsertSessions(ctx, d.tx, rows)
			} else {
				_, err = d.UpsertSessions(ctx, rows)
			}
			if err != nil {
				b.Fatal(err)
			}
		})
	}
	write() // the sessions are stored
	var cpu time.Duration
	b.ResetTimer()
	for i := range b.N {
		for j := range rows {
			rows[j].Last = rows[j].TS.Add(time.Duration(i+1) * time.Second)
		}
		cpu += write()
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "pg-cpu-µs/session")
}

// deriveBackendCPU runs f in a derivation of site, which it commits, and
// returns the CPU time the derivation's backend spent in f.
func deriveBackendCPU(b *testing.B, s *Store, site uint32, f func(d *DeriveTx)) time.Duration {
	b.Helper()
	ctx := context.Background()
	d, err := s.BeginDerive(ctx, site)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Rollback(ctx)
	var pid int32
	if err := d.tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	cpu0 := schedCPU(b, pid)
	f(d)
	cpu := schedCPU(b, pid) - cpu0
	if err := d.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	return cpu
}

// schedCPU is the CPU time the process pid has spent, from
// /proc/PID/schedstat.
func schedCPU(b *testing.B, pid int32) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/schedstat", pid))
	if err != nil {
		b.Skipf("the server's backend is not on this machine: %v", err)
	}
	ns, err := strconv.ParseInt(strings.Fields(string(raw))[0], 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(ns)
}

// sessionRowsOn are n sessions of site starting on day a second apart,
// each a visitor's own.
func sessionRowsOn(site uint32, day time.Time, n int) []SessionRow {
	rows := make([]SessionRow, n)
	first := [numDimKinds]int32{}
	for i := range rows {
		start := day.Add(time.Duration(i) * time.Second)
		rows[i] = SessionRow{Site: int32(site), TS: start, Last: start, Visitor: int64(1 + i*7919), ID: int64(i),
			Events: 25, PageViews: 10, Engage: 1000, Landing: 3, Exit: 4, First: &first}
	}
	return rows
}

// upsertSessionsCommitted writes rows in a derivation of site, which it
// commits.
func upsertSessionsCommitted(t testing.TB, s *Store, site uint32, rows []SessionRow) {
	t.Helper()
	ctx := context.Background()
	d, err := s.BeginDerive(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback(ctx)
	if _, err := d.UpsertSessions(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}
