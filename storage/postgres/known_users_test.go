package postgres

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkAddKnownUsers adds 2000 users a derivation (each iteration
// one, committed), all known and with first sources after the first, as
// the end-to-end bench's derivations add its visitors. pg-cpu-µs/user is
// the backend's CPU time (/proc/PID/schedstat, a server on this machine).
func BenchmarkAddKnownUsers(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "users"})
	if err != nil {
		b.Fatal(err)
	}
	const n = 2000
	users, sources := make(map[uint64]int64, n), make(map[uint64]int32, n)
	now := time.Now().UnixMicro()
	for i := range n {
		users[uint64(1+i*7919)] = now + int64(i)
		sources[uint64(1+i*7919)] = int32(1 + i%7)
	}
	add := func() time.Duration {
		return deriveBackendCPU(b, s, site.ID, func(d *DeriveTx) {
			added, known, err := d.AddKnownUsers(ctx, users)
			if err != nil {
				b.Fatal(err)
			}
			if len(added) > 0 {
				if err := d.SetFirstSources(ctx, sources); err != nil {
					b.Fatal(err)
				}
			} else if !maps.Equal(known, sources) {
				b.Fatalf("%d users known with their sources, want %d", len(known), len(sources))
			}
		})
	}
	add() // the users are known
	var cpu time.Duration
	b.ResetTimer()
	for range b.N {
		cpu += add()
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*n), "pg-cpu-µs/user")
}

// referenceAddKnownUsersSQL is how AddKnownUsers wrote and read before:
// every user inserted, those known found by the insert's conflict check,
// their first sources read by visitor_id = ANY($2).
const referenceAddKnownUsersSQL = `WITH ins AS (INSERT INTO known_users (site_id, visitor_id, first_ts)
		SELECT $1, k.v, k.t FROM (SELECT unnest($2::bigint[]) AS v, unnest($3::timestamptz[]) AS t) AS k ORDER BY 2
		ON CONFLICT DO NOTHING RETURNING visitor_id)
		SELECT visitor_id, 0 FROM ins
		UNION ALL SELECT visitor_id, first_source_id FROM known_users WHERE site_id = $1 AND visitor_id = ANY($2) AND first_source_id <> 0`

// TestAddKnownUsersEqualsConflictInsert: rounds of users, new ones and
// known ones (with first sources set and not), added by AddKnownUsers to
// one site and by the statement of before to another, give the same
// users added and known sources, and leave the same known_users rows;
// a third site's users are not theirs.
func TestAddKnownUsersEqualsConflictInsert(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var sites [2]Site
	for i := range sites {
		site, err := s.CreateSite(ctx, SiteSpec{Name: fmt.Sprint("users ", i)})
		if err != nil {
			t.Fatal(err)
		}
		sites[i] = site
	}
	// A third site knows every user the rounds add, with a source:
	// none of its rows is the others'.
	other, err := s.CreateSite(ctx, SiteSpec{Name: "users known elsewhere"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO known_users (site_id, visitor_id, first_ts, first_source_id)
		SELECT $1, v::bigint * 7919 + 1, now(), 9 FROM generate_series(0, 800) v`, int32(other.ID)); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 5))
	now := time.Now().Truncate(time.Microsecond)
	for round := range 5 {
		users := map[uint64]int64{}
		for _, v := range rng.Perm(300 + 100*round)[:200] {
			users[uint64(v)*7919+1] = now.Add(time.Duration(rng.IntN(1000)) * time.Second).UnixMicro()
		}
		sources := map[uint64]int32{}
		for v := range users {
			if rng.IntN(3) > 0 {
				sources[v] = int32(1 + rng.IntN(5))
			}
		}
		var added [2]map[uint64]bool
		var known [2]map[uint64]int32
		for i, site := range sites {
			d, err := s.BeginDerive(ctx, site.ID)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				added[i], known[i], err = d.AddKnownUsers(ctx, users)
			} else {
				added[i], known[i], err = referenceAddKnownUsers(ctx, d, users)
			}
			if err != nil {
				t.Fatal(err)
			}
			// The new users' first sources, some of them.
			set := map[uint64]int32{}
			for v := range added[i] {
				if src, ok := sources[v]; ok {
					set[v] = src
				}
			}
			if err := d.SetFirstSources(ctx, set); err != nil {
				t.Fatal(err)
			}
			if err := d.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if !maps.Equal(added[0], added[1]) || !maps.Equal(known[0], known[1]) {
			t.Fatalf("round %d: %d users added and %d known with sources, %d and %d by the statement of before, or they differ",
				round, len(added[0]), len(known[0]), len(added[1]), len(known[1]))
		}
		if round > 0 && (len(added[0]) == 0 || len(known[0]) == 0 || len(added[0])+len(known[0]) == len(users)) {
			t.Fatalf("round %d: %d of %d users added, %d known with sources: want some of each, and some known without", round, len(added[0]), len(users), len(known[0]))
		}
	}
	var rows [2][]string
	for i, site := range sites {
		r, err := s.pool.Query(ctx, "SELECT visitor_id, first_ts, first_source_id FROM known_users WHERE site_id = $1 ORDER BY 1", int32(site.ID))
		if err != nil {
			t.Fatal(err)
		}
		var v int64
		var ts time.Time
		var src int32
		if _, err := pgx.ForEachRow(r, []any{&v, &ts, &src}, func() error {
			rows[i] = append(rows[i], fmt.Sprint(v, ts.UnixMicro(), src))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(rows[0], rows[1]) || len(rows[0]) < 400 {
		t.Fatalf("%d known users, %d by the statement of before, or they differ", len(rows[0]), len(rows[1]))
	}
}

// referenceAddKnownUsers is AddKnownUsers through referenceAddKnownUsersSQL.
func referenceAddKnownUsers(ctx context.Context, d *DeriveTx, users map[uint64]int64) (map[uint64]bool, map[uint64]int32, error) {
	return d.addKnownUsersWith(ctx, referenceAddKnownUsersSQL, users)
}
