package query

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// fixture is a migrated database holding sites and generated events, stored
// through postgres.Store.WriteBatch as the aggregator stores them.
type fixture struct {
	store  *postgres.Store
	writer *write.Writer // the aggregator's write stage
	pool   *pgxpool.Pool
	events []protocol.Event
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

// Values the generated events draw from; "" is an absent value. They mix
// case, non-ASCII letters (with upper-case forms outside ASCII), quotes and
// query strings, and codes without a display name (country ZZ, language zz).
var (
	fixtureNames     = []string{"page_view", "click", "scroll", "Sign Up", "purchase"}
	fixturePaths     = []string{"", "/", "/a", "/B", "/b", "/ünï", "/x?q='1'", "/a?utm_source=News"}
	fixtureHosts     = []string{"", "example.com", "Shop.Example.com"}
	fixtureTitles    = []string{"", "Home", "Über uns", "O'Reilly; DROP"}
	fixtureReferrers = []string{"", "https://news.example.org/x", "https://search.example/?q=1"}
	fixtureLanguages = []string{"", "en-us", "en-gb", "fr", "de-ch", "pt-br", "zz-zz"}
	fixtureScreens   = []string{"", "1920x1080", "390x844"}
	fixtureCountries = []string{"", "US", "DE", "CH", "JP", "ZZ"}
	fixtureRegions   = []string{"", "Île-de-France", "Bayern", "Zürich", "new york"}
	fixtureCities    = []string{"", "Paris", "München", "ZÜRICH", "São Paulo", "zürich"}
	fixtureBrowsers  = []string{"", "Chrome", "Firefox", "Safari"}
	fixtureOSes      = []string{"", "Windows", "macOS", "iOS", "Android"}
	fixtureDevices   = []string{"", "desktop", "mobile", "tablet"}
	fixturePlans     = []string{"pro", "Free", "FREE", "ünï", "a plan name longer than thirty-one bytes"}
	fixtureTiers     = []string{"gold", "Silver"}
	fixtureButtons   = []string{"1", "2", "10", "-0.5", "b", "2.50"} // numbers and not
)

// newFixture migrates a fresh database and stores n random events per site
// between 2026-03-01 and 2026-03-11 UTC, clustered near local midnights so
// the time-zone conversion decides their day.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	return newFixtureOf(t, n, nil)
}

// newFixtureOf is newFixture with alter (if not nil) applied to each
// generated event.
func newFixtureOf(t testing.TB, n int, alter func(e *protocol.Event)) *fixture {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	store, err := postgres.Open(ctx, url, nil)
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
	// The fixture's events are what its oracle counts: the write stage adds
	// no session_start or first_visit of its own (the identity oracle
	// checks those).
	f := &fixture{store: store, writer: write.New(write.Config{NoDerivedEvents: true}, store), pool: testenv.Pool(t, url), zones: map[uint32]string{}, ids: map[uint32]map[string]int32{}}
	rng := rand.New(rand.NewPCG(1, 2))
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
			ts := day.Add(offset).Truncate(time.Microsecond)
			if ts.Before(from) || !ts.Before(to) {
				continue
			}
			e := randomEvent(rng, s.id, ts)
			if alter != nil {
				alter(&e)
			}
			f.events = append(f.events, e)
		}
	}
	addSessionIDs(f.events, f.zones)
	for i := range f.events { // as the write stage marks them
		if e := &f.events[i]; write.DefaultKeyEvents.Has(e.Name) {
			e.Flags |= protocol.FlagKeyEvent
		}
	}
	// Two thirds in, the rollups of the days written so far are packed
	// (rollup_packs), so reports add packed days, rows of days written after
	// and rows of late events on the last packed day. So are the events of
	// those UTC days (event_packs), so reports from events read packs, the
	// events table, and both on the last packed day.
	packAt := len(f.events) * 2 / 3
	for i := 0; i < len(f.events); i += 500 {
		batch := f.events[i:min(i+500, len(f.events))]
		if i <= packAt && packAt < i+500 {
			if _, err := f.writeBatch(ctx, "fixture", uint64(i/500+1)<<1, batch[:packAt-i], nil); err != nil {
				t.Fatal(err)
			}
			at := time.UnixMicro(f.events[packAt].TimeMicros)
			if err := store.PackRollups(ctx, at.Add(48*time.Hour)); err != nil {
				t.Fatal(err)
			}
			// At +96 h, UTC days up to at's are settled.
			if days, err := store.PackEvents(ctx, at.Add(96*time.Hour)); err != nil || days == 0 {
				t.Fatalf("packing events: %d days, %v", days, err)
			}
			batch = batch[packAt-i:]
		}
		if _, err := f.writeBatch(ctx, "fixture", uint64(i/500+1)<<1|1, batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	sites := make([]uint32, len(fixtureSites))
	for i, s := range fixtureSites {
		sites[i] = s.id
	}
	markSessions(f.events, sites)
	return f
}

// addSessionIDs sorts the events by time, the order an agent ships them
// in, and makes every fourth visitor a sender of GA4 session ids: one per
// local day whatever the gaps (so its sessions are not cut by inactivity),
// with session count 1 on the visitor's first day and 2 after.
func addSessionIDs(events []protocol.Event, zones map[uint32]string) {
	slices.SortStableFunc(events, func(a, b protocol.Event) int { return cmp.Compare(a.TimeMicros, b.TimeMicros) })
	firstDay := map[[2]uint64]string{}
	for i := range events {
		e := &events[i]
		if (e.Visitor>>58)%4 != 0 {
			continue
		}
		loc, _ := time.LoadLocation(zones[e.Site])
		local := time.UnixMicro(e.TimeMicros).In(loc)
		y, m, d := local.Date()
		e.SessionID = time.Date(y, m, d, 0, 0, 0, 0, loc).Unix() + int64(e.Visitor>>58)
		k := [2]uint64{uint64(e.Site), e.Visitor}
		day := local.Format(time.DateOnly)
		if firstDay[k] == "" {
			firstDay[k] = day
		}
		e.SessionNum = 2
		if firstDay[k] == day {
			e.SessionNum = 1
		}
	}
}

func randomEvent(rng *rand.Rand, site uint32, ts time.Time) protocol.Event {
	pick := func(vs []string) string { return vs[rng.IntN(len(vs))] }
	e := protocol.Event{
		Site:       site,
		TimeMicros: ts.UnixMicro(),
		Name:       pick(fixtureNames),
		Visitor:    uint64(rng.IntN(40)) << 58, // high bits: stored as negative bigints
		Host:       pick(fixtureHosts),
		Path:       pick(fixturePaths),
		Title:      pick(fixtureTitles),
		Referrer:   pick(fixtureReferrers),
		Language:   pick(fixtureLanguages),
		Screen:     pick(fixtureScreens),
		Country:    pick(fixtureCountries),
		Region:     pick(fixtureRegions),
		City:       pick(fixtureCities),
		Browser:    pick(fixtureBrowsers),
		OS:         pick(fixtureOSes),
		Device:     pick(fixtureDevices),
	}
	for _, bit := range []uint8{protocol.FlagSessionStart, protocol.FlagFirstVisit, protocol.FlagEngaged, protocol.FlagKeyEvent} {
		if rng.IntN(5) == 0 {
			e.Flags |= bit
		}
	}
	if e.Name == "purchase" { // a key event of every site by default: the write stage marks it
		e.Flags |= protocol.FlagKeyEvent
	}
	if rng.IntN(3) == 0 {
		e.EngageMs = 1 + rng.Int64N(90000)
	}
	// Parameters in every combination of sections, so reading one section
	// skips the others.
	if rng.IntN(2) == 0 {
		e.Params = map[string]string{"plan": pick(fixturePlans)}
		if rng.IntN(2) == 0 {
			e.Params["button"] = pick(fixtureButtons)
		}
	}
	if rng.IntN(3) == 0 {
		e.NumParams = map[string]float64{"value": float64(rng.IntN(100)) / 4, "plan": 1}
	}
	if rng.IntN(3) == 0 {
		e.UserProps = map[string]string{"tier": pick(fixtureTiers)}
	}
	return e
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

// writeBatch stores a batch through the write stage and derives it, as the
// aggregator does, before it returns: reports read it from then on.
func (f *fixture) writeBatch(ctx context.Context, agent string, seq uint64, events []protocol.Event, dead []postgres.DeadLetter) (postgres.StageResult, error) {
	res, err := f.writer.WriteBatch(ctx, agent, seq, events, dead)
	if err != nil {
		return res, err
	}
	return res, f.writer.Flush(ctx)
}
