package command

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// derived counts a site's sessions rows and rollup rows (rows of
// rollup_days and values of the packed days of rollup_packs).
func derived(t *testing.T, db *pgxpool.Pool, site uint32) (sessions, rollups int) {
	t.Helper()
	err := db.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM sessions WHERE site_id = $1),
		(SELECT count(*) FROM rollup_days WHERE site_id = $1) +
		(SELECT COALESCE(sum(cardinality(dim_ids)), 0) FROM rollup_packs WHERE site_id = $1)`,
		int32(site)).Scan(&sessions, &rollups)
	if err != nil {
		t.Fatal(err)
	}
	return sessions, rollups
}

// TestRebuild: events stored by the aggregator's write path, their sessions
// and rollups then lost (as after a bulk load), and `avila rebuild` brings
// back exactly what the write path had made; --only limits it; an unknown
// property or a bad --only is an error that says so.
func TestRebuild(t *testing.T) {
	db := migratedDB(t)
	ctx := context.Background()
	sql := testenv.Pool(t, db)
	store, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	site, err := store.CreateSite(ctx, postgres.SiteSpec{Name: "Rebuild", Domains: []string{"rebuild.example"}})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Hour)
	var evs []protocol.Event
	for v := range 30 {
		for i := range 3 {
			e := protocol.Event{Site: site.ID, Visitor: uint64(v + 1), SessionID: at.Unix() + int64(v),
				TimeMicros: at.Add(time.Duration(v)*time.Minute + time.Duration(i)*time.Second).UnixMicro(),
				Name:       "page_view", Host: "rebuild.example", Path: "/p" + string(rune('a'+i)), Country: "DE", Device: "mobile"}
			if i == 0 {
				e.Flags, e.Referrer = protocol.FlagSessionStart, "https://www.google.com/"
			}
			evs = append(evs, e)
		}
	}
	// Through the aggregator's write stage, derived before the test reads.
	w := write.New(write.Config{}, store)
	if _, err := w.WriteBatch(ctx, "rebuild-test", 1, evs, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	wantSessions, wantRollups := derived(t, sql, site.ID)
	if wantSessions != 30 || wantRollups == 0 {
		t.Fatalf("write path made %d sessions and %d rollup rows; want 30 and some", wantSessions, wantRollups)
	}
	lose := func() {
		t.Helper()
		if _, err := sql.Exec(ctx, `DELETE FROM sessions WHERE site_id = $1`, int32(site.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := sql.Exec(ctx, `DELETE FROM rollup_days WHERE site_id = $1`, int32(site.ID)); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"DATABASE_URL": db}
	prop := "--property=" + strconv.FormatUint(uint64(site.ID), 10)

	lose()
	if code, _, stderr := runCLI(t, env, "rebuild", prop, "--only", "sessions"); code != 0 {
		t.Fatalf("rebuild --only sessions: exit %d: %s", code, stderr)
	}
	if s, r := derived(t, sql, site.ID); s != wantSessions || r != 0 {
		t.Fatalf("after --only sessions: %d sessions, %d rollup rows; want %d and 0", s, r, wantSessions)
	}

	lose()
	code, _, stderr := runCLI(t, env, "rebuild", prop)
	if code != 0 {
		t.Fatalf("rebuild: exit %d: %s", code, stderr)
	}
	if s, r := derived(t, sql, site.ID); s != wantSessions || r != wantRollups {
		t.Fatalf("after rebuild: %d sessions, %d rollup rows; want %d and %d", s, r, wantSessions, wantRollups)
	}
	if !strings.Contains(stderr, "what=rollups") || !strings.Contains(stderr, "what=sessions") {
		t.Errorf("rebuild did not report its steps: %s", stderr)
	}

	if code, _, stderr := runCLI(t, env, "rebuild", "--property=999"); code != 1 || !strings.Contains(stderr, "property 999") {
		t.Errorf("unknown property: exit %d, stderr %q; want 1 naming it", code, stderr)
	}
	if code, _, stderr := runCLI(t, env, "rebuild", prop, "--only", "hours"); code != 2 || !strings.Contains(stderr, `--only "hours"`) {
		t.Errorf("bad --only: exit %d, stderr %q; want 2 naming it", code, stderr)
	}
	if code, _, stderr := runCLI(t, env, "rebuild"); code != 2 || !strings.Contains(stderr, "--property is required") {
		t.Errorf("no --property: exit %d, stderr %q; want 2", code, stderr)
	}
}
