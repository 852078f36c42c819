package write

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// sessionRollupEvents makes visitors' visits over two local days of
// Madrid, in time order: each visit a few events a minute or two apart
// (so a session grows over several batches), some engaged, some short,
// from a few sources and countries; half the visitors send GA4 session ids;
// some come back for a second session.
func sessionRollupEvents(site uint32, visitors int) []protocol.Event {
	start := time.Date(2025, 6, 1, 21, 30, 0, 0, time.UTC) // 23:30 in Madrid: visits cross midnight
	var out []protocol.Event
	for v := range visitors {
		at := start.Add(time.Duration(v*53) * time.Second)
		n := 1 + v%5
		for i := range n {
			e := protocol.Event{
				Site: site, TimeMicros: at.Add(time.Duration(i*70) * time.Second).UnixMicro(),
				Name: "page_view", Visitor: uint64(1000 + v), Path: fmt.Sprintf("/p/%d", (v+i)%7),
				Country: []string{"ES", "FR", "DE", ""}[v%4], Device: []string{"mobile", "desktop"}[v%2],
			}
			if i == 0 {
				e.Flags |= protocol.FlagSessionStart
				e.Referrer = []string{"", "https://www.google.com/", "https://news.example.org/a"}[v%3]
				if v%6 == 0 {
					e.Path += "?utm_source=mail&utm_medium=email"
				}
			}
			if i > 0 && v%3 == 0 {
				e.Name = "scroll"
			}
			if v%7 == 0 && i == n-1 {
				e.Flags |= protocol.FlagKeyEvent
			}
			if v%11 == 0 {
				e.Flags |= protocol.FlagFirstVisit
			}
			if v%4 == 1 {
				e.EngageMs = int64(300 * i)
			}
			if v%2 == 0 {
				e.SessionID = at.Unix()
			}
			if v%20 == 3 {
				e.SessionNum = 2
			}
			out = append(out, e)
		}
		if v%20 == 3 {
			// Returning visitors whose session (no engagement, no first
			// visit) does not make them active come back 45 minutes later
			// and engage: active in the first session's cells too when
			// that is the same local day.
			for i := range 2 {
				e := protocol.Event{Site: site, TimeMicros: at.Add(45*time.Minute + time.Duration(i)*time.Minute).UnixMicro(),
					Name: "page_view", Visitor: uint64(1000 + v), Path: "/back", Country: "ES", Device: "mobile", EngageMs: int64(2000 * i),
					SessionNum: 3}
				if i == 0 {
					e.Flags |= protocol.FlagSessionStart
					e.Referrer = "https://www.google.com/"
				}
				out = append(out, e)
			}
		}
	}
	// Time order across visitors, as agents send them.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].TimeMicros < out[j-1].TimeMicros; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// sessionRollupRow is a session_rollups row, or what it must hold.
type sessionRollupRow struct {
	Sessions, Engaged, Events, Views, Keys int64
	DurationUs, EngageMs                   int64
	Users, Active, New                     uint64
}

// exactSessionRollups is what session_rollups must hold, computed from the
// sessions table (and the events, for active users) at kinds 0, country
// and source.
func exactSessionRollups(t *testing.T, s *testStore, site uint32) map[string]sessionRollupRow {
	t.Helper()
	engaged := fmt.Sprintf("(flags & %d <> 0 OR engagement_ms >= 10000 OR page_views >= 2 OR key_events > 0)",
		protocol.FlagEngaged)
	// A session's user is active when it is active (an event with the
	// engaged session's flag, a first visit or engagement time) on a local
	// day on which the session has an event.
	active := fmt.Sprintf(`EXISTS (SELECT 1 FROM events a JOIN events x ON x.site_id = a.site_id AND x.visitor_id = a.visitor_id
		AND (x.ts AT TIME ZONE 'Europe/Madrid')::date = (a.ts AT TIME ZONE 'Europe/Madrid')::date
		WHERE a.site_id = s.site_id AND a.visitor_id = s.visitor_id AND (a.flags & %d <> 0 OR a.engagement_ms > 0)
		AND x.session_id = s.session_id)`, protocol.FlagEngaged|protocol.FlagFirstVisit)
	rows, err := s.Pool.Query(context.Background(), `
		SELECT k.kind || ' ' || k.dim || ' ' || (s.ts AT TIME ZONE 'Europe/Madrid')::date,
			count(*), count(*) FILTER (WHERE `+engaged+`), sum(s.events), sum(s.page_views), sum(s.key_events),
			sum((extract(epoch FROM s.last_ts - s.ts) * 1000000)::bigint), sum(s.engagement_ms),
			count(DISTINCT s.visitor_id), count(DISTINCT s.visitor_id) FILTER (WHERE `+active+`),
			count(DISTINCT s.visitor_id) FILTER (WHERE s.flags & $2 <> 0)
		FROM sessions s LEFT JOIN client_profiles c ON c.id = s.client_id LEFT JOIN traffic_profiles t ON t.id = s.traffic_id
		CROSS JOIN LATERAL (VALUES (0, 0), ($3, COALESCE(c.country_id, 0)), ($4, COALESCE(t.source_id, 0))) AS k(kind, dim)
		WHERE s.site_id = $1 GROUP BY 1`, int32(site), int16(protocol.FlagFirstVisit), postgres.DimCountry, postgres.DimSource)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]sessionRollupRow{}
	for rows.Next() {
		var k string
		var r sessionRollupRow
		if err := rows.Scan(&k, &r.Sessions, &r.Engaged, &r.Events, &r.Views, &r.Keys, &r.DurationUs, &r.EngageMs,
			&r.Users, &r.Active, &r.New); err != nil {
			t.Fatal(err)
		}
		out[k] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedSessionRollups reads session_rollups at kinds 0, country and
// source, with the sketches' estimates (exact at these sizes).
func storedSessionRollups(t *testing.T, s *testStore, site uint32) map[string]sessionRollupRow {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), `SELECT kind || ' ' || dim_id || ' ' || day, sessions, engaged, events,
			page_views, key_events, duration_us, engagement_ms, users, active_users, new_users
		FROM session_rollups WHERE site_id = $1 AND kind IN (0, $2, $3)`, int32(site), postgres.DimCountry, postgres.DimSource)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]sessionRollupRow{}
	for rows.Next() {
		var k string
		var r sessionRollupRow
		var sk [3][]byte
		if err := rows.Scan(&k, &r.Sessions, &r.Engaged, &r.Events, &r.Views, &r.Keys, &r.DurationUs, &r.EngageMs,
			&sk[0], &sk[1], &sk[2]); err != nil {
			t.Fatal(err)
		}
		postgres.ExpandSketches(&sk)
		for i, n := range []*uint64{&r.Users, &r.Active, &r.New} {
			est := postgres.NewSketch()
			if err := postgres.MergeSketch(est, sk[i]); err != nil {
				t.Fatal(err)
			}
			*n = est.Estimate()
		}
		out[k] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Session rollups written batch by batch, as sessions grow across batches
// (their rows counted again with new values), hold what the sessions
// table gives; rebuilt from it, they hold the same.
func TestSessionRollupsFollowSessions(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "sessions", TimeZone: "Europe/Madrid"})
	if err != nil {
		t.Fatal(err)
	}
	events := sessionRollupEvents(site.ID, 300)
	for b, i := 0, 0; i < len(events); b, i = b+1, i+37 {
		if _, err := s.WriteBatch(ctx, "agent", uint64(b), events[i:min(i+37, len(events))], nil); err != nil {
			t.Fatal(err)
		}
	}
	exact := exactSessionRollups(t, s, site.ID)
	if len(exact) < 15 {
		t.Fatalf("only %d exact rows: the data proves little", len(exact))
	}
	var grown int
	if err := s.Pool.QueryRow(ctx, "SELECT count(*) FROM sessions WHERE site_id = $1 AND events > 1", int32(site.ID)).Scan(&grown); err != nil || grown < 100 {
		t.Fatalf("%d sessions with several events (%v): the batches prove little", grown, err)
	}
	if diff := cmp.Diff(exact, storedSessionRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("session rollups written with batches (-exact +stored):\n%s", diff)
	}
	if err := s.RebuildSessions(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	// The rebuild takes each visitor's first session for a new user's
	// (events do not keep the session count the returning visitors sent),
	// adding first_visit events: the rows follow the rebuilt sessions.
	if diff := cmp.Diff(exactSessionRollups(t, s, site.ID), storedSessionRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("session rollups rebuilt (-exact +stored):\n%s", diff)
	}

	// avila rebuild's two steps: the sessions step leaves the session
	// rollups' rows alone (no version of theirs rewritten) and their days
	// to the sessions table; the rollups step writes them once, in its
	// transaction.
	versions := func() string {
		var v string
		if err := s.Pool.QueryRow(ctx, `SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY kind, day, dim_id)
			FROM session_rollups WHERE site_id = $1`, int32(site.ID)).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := versions()
	if err := s.RebuildSessionsBeforeRollups(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if after := versions(); after != before {
		t.Fatalf("the sessions step rewrote session rollups:\n%s\nthen\n%s", before, after)
	}
	var uncovered bool
	if err := s.Pool.QueryRow(ctx, "SELECT session_rollups_from > (now() AT TIME ZONE time_zone)::date FROM sites WHERE id = $1",
		int32(site.ID)).Scan(&uncovered); err != nil || !uncovered {
		t.Fatalf("after the sessions step the session rollups cover days before tomorrow (%v)", err)
	}
	if err := s.RebuildRollups(ctx, site.ID); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exactSessionRollups(t, s, site.ID), storedSessionRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("session rollups after the sessions and rollups steps (-exact +stored):\n%s", diff)
	}
	var writers int
	if err := s.Pool.QueryRow(ctx, "SELECT count(DISTINCT xmin::text) FROM session_rollups WHERE site_id = $1", int32(site.ID)).Scan(&writers); err != nil || writers != 1 {
		t.Fatalf("session rollups written by %d transactions (%v), want the rollups step's alone", writers, err)
	}
}

// Batches from two writers and session rebuilds running among them leave
// session rollups that match the sessions table, and mark the site's
// session rollups complete.
func TestSessionRollupsDuringRebuilds(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, postgres.SiteSpec{Name: "busy", TimeZone: "Europe/Madrid"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool.Exec(ctx, "UPDATE sites SET session_rollups_from = current_date + 1 WHERE id = $1", int32(site.ID)); err != nil {
		t.Fatal(err)
	}
	events := sessionRollupEvents(site.ID, 400)
	var odd, even []protocol.Event
	for _, e := range events {
		if e.Visitor%2 == 0 {
			even = append(even, e)
		} else {
			odd = append(odd, e)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for w, part := range [][]protocol.Event{odd, even} {
		wg.Go(func() {
			for b, i := 0, 0; i < len(part); b, i = b+1, i+25 {
				if _, err := s.WriteBatch(ctx, fmt.Sprint("agent-", w), uint64(b), part[i:min(i+25, len(part))], nil); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		for range 3 {
			if err := s.RebuildSessions(ctx, site.ID); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if diff := cmp.Diff(exactSessionRollups(t, s, site.ID), storedSessionRollups(t, s, site.ID)); diff != "" {
		t.Fatalf("session rollups after batches and rebuilds (-exact +stored):\n%s", diff)
	}
	if n := count(t, s, "SELECT count(*) FROM sites WHERE id = $1 AND session_rollups_from = '-infinity'", int32(site.ID)); n != 1 {
		t.Error("rebuild did not mark the site's session rollups complete")
	}
}
