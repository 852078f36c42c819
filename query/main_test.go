package query

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// testEvent is a generated event as the test knows it, independent of SQL.
type testEvent struct {
	site    uint32
	ts      time.Time
	visitor int64
	name    string
	path    string // "" = absent (page_id 0)
}

// fixture is a migrated database holding sites and generated events.
type fixture struct {
	store  *postgres.Store
	pool   *pgxpool.Pool
	events []testEvent
	zones  map[uint32]string
	ids    map[uint32]map[string]int32 // dims ids by site, "n"+event name, "p"+path
}

// Sites of the fixture: time zones either side of UTC, one crossing a
// daylight-saving change inside the data (New York, 2026-03-08).
var fixtureSites = []struct {
	id   uint32
	zone string
}{{1, "America/New_York"}, {2, "Pacific/Auckland"}, {3, "UTC"}}

// fixtureNow is the clock of the report tests: "today" is 2026-03-10 in all
// three zones.
var fixtureNow = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

var (
	fixtureNames = []string{"page_view", "click", "scroll", "Sign Up"}
	fixturePaths = []string{"", "/", "/a", "/B", "/b", "/ünï", "/x?q='1'"}
)

// newFixture migrates a fresh database and stores n random events per site
// between 2026-03-01 and 2026-03-11 UTC, clustered near local midnights so
// the time-zone conversion decides their day.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	ctx := context.Background()
	store, err := postgres.Open(ctx, testenv.PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	from, to := time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 12, 0, 0, 0, 0, time.UTC)
	if err := store.EnsurePartitions(ctx, from, to); err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, pool: store.Pool, zones: map[uint32]string{}, ids: map[uint32]map[string]int32{}}
	rng := rand.New(rand.NewPCG(1, 2))
	var rows [][]any
	for _, s := range fixtureSites {
		f.zones[s.id] = s.zone
		mustExec(t, f.pool, "INSERT INTO sites (id, measurement_id, api_secret, name, time_zone) VALUES ($1, $2, 'secret', $3, $4)",
			int32(s.id), fmt.Sprintf("G-TEST%d", s.id), fmt.Sprintf("site %d", s.id), s.zone)
		// Dictionary ids differ per site; inserting in a shuffled order makes
		// one site's page_view id another site's click.
		ids := map[string]int32{}
		f.ids[s.id] = ids
		for _, v := range shuffled(rng, fixtureNames) {
			ids["n"+v] = insertDim(t, f.pool, s.id, postgres.DimEventName, v)
		}
		for _, v := range shuffled(rng, fixturePaths[1:]) {
			ids["p"+v] = insertDim(t, f.pool, s.id, postgres.DimPagePath, v)
		}
		loc, _ := time.LoadLocation(s.zone)
		for range n {
			day := time.Date(2026, 3, 1+rng.IntN(10), 0, 0, 0, 0, loc)
			// Within three hours of a local midnight, or anywhere in the day.
			offset := time.Duration(rng.Int64N(int64(6*time.Hour))) - 3*time.Hour
			if rng.IntN(3) == 0 {
				offset = time.Duration(rng.Int64N(int64(24 * time.Hour)))
			}
			e := testEvent{
				site:    s.id,
				ts:      day.Add(offset).Truncate(time.Microsecond).UTC(),
				visitor: rng.Int64N(40),
				name:    fixtureNames[rng.IntN(len(fixtureNames))],
				path:    fixturePaths[rng.IntN(len(fixturePaths))],
			}
			if e.ts.Before(from) || !e.ts.Before(to) {
				continue
			}
			f.events = append(f.events, e)
			pageID := int32(0)
			if e.path != "" {
				pageID = ids["p"+e.path]
			}
			rows = append(rows, []any{int32(e.site), e.ts, e.visitor, ids["n"+e.name], pageID})
		}
	}
	_, err = f.pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"site_id", "ts", "visitor_id", "name_id", "page_id"}, pgx.CopyFromRows(rows))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func shuffled(rng *rand.Rand, in []string) []string {
	out := append([]string(nil), in...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func insertDim(t testing.TB, pool *pgxpool.Pool, site uint32, kind postgres.DimKind, value string) int32 {
	t.Helper()
	var id int32
	err := pool.QueryRow(context.Background(), "INSERT INTO dims (site_id, kind, value) VALUES ($1, $2, $3) RETURNING id",
		int32(site), int16(kind), value).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustExec(t testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}
