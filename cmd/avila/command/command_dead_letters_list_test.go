package command

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// deadLetterDB is a migrated database with two sites; addDeadLetter stores
// a dead letter as the aggregator does.
func deadLetterDB(t *testing.T) (db string, a, b uint32) {
	t.Helper()
	db = migratedDB(t)
	ctx := context.Background()
	store, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sa, err := store.CreateSite(ctx, postgres.SiteSpec{Name: "A", Domains: []string{"a.example"}})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := store.CreateSite(ctx, postgres.SiteSpec{Name: "B", Domains: []string{"b.example"}})
	if err != nil {
		t.Fatal(err)
	}
	return db, sa.ID, sb.ID
}

func addDeadLetter(t *testing.T, db *pgxpool.Pool, agent string, seq int64, received time.Time, reason string, e protocol.Event) {
	t.Helper()
	raw, err := protocol.EncodeEvent(&e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(context.Background(), `INSERT INTO dead_letters (agent_id, seq, idx, reason, event, received_at)
		VALUES ($1, $2, 0, $3, $4, $5)`, agent, seq, reason, raw, received); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLettersList(t *testing.T) {
	db, a, b := deadLetterDB(t)
	env := map[string]string{"DATABASE_URL": db}
	sql := testenv.Pool(t, db)
	now := time.Now()
	ev := protocol.Event{Site: a, TimeMicros: now.UnixMicro(), Name: "page_view", Visitor: 1, Path: "/", Title: "caf\xe9"}
	addDeadLetter(t, sql, "edge-1", 7, now.Add(-48*time.Hour), "title: not valid UTF-8 (rule invalid_utf8)", ev)
	ev.Title, ev.Name = "", "sign\tup"
	addDeadLetter(t, sql, "edge-1", 8, now, "name: … (rule name_encoding)", ev)
	ev.Site, ev.Name = b, "click"
	addDeadLetter(t, sql, "edge-2", 3, now, "city: contains a NUL character (rule nul_byte)", ev)

	rows := func(args ...string) []string {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, append([]string{"dead-letters", "list"}, args...)...)
		if code != 0 {
			t.Fatalf("dead-letters list %q: exit %d: %s", args, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if !strings.HasPrefix(lines[0], "ID") {
			t.Fatalf("no header: %q", stdout)
		}
		return lines[1:]
	}
	if got := rows(); len(got) != 3 || !strings.Contains(got[0], "(rule invalid_utf8)") || !strings.Contains(got[1], `"sign\tup"`) {
		t.Fatalf("list: %q", got)
	}
	if got := rows("--property", itoa(b)); len(got) != 1 || !strings.Contains(got[0], "edge-2") {
		t.Fatalf("--property: %q", got)
	}
	if got := rows("--agent", "edge-1"); len(got) != 2 {
		t.Fatalf("--agent: %q", got)
	}
	if got := rows("--since", "24h"); len(got) != 2 {
		t.Fatalf("--since 24h: %q", got)
	}
	if got := rows("--since", now.Add(-72*time.Hour).UTC().Format(time.DateOnly), "--limit", "1"); len(got) != 1 || !strings.Contains(got[0], "invalid_utf8") {
		t.Fatalf("--since date --limit 1: %q", got)
	}

	env["AVILA_JSON"] = "true"
	code, stdout, stderr := runCLI(t, env, "dead-letters", "list", "--agent", "edge-2")
	delete(env, "AVILA_JSON")
	var out []deadLetterView
	if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil || len(out) != 1 || out[0].Site != b || out[0].Seq != 3 ||
		!strings.Contains(out[0].Reason, "nul_byte") {
		t.Fatalf("--json: exit %d %q %s", code, stdout, stderr)
	}

	for _, bad := range [][]string{{"--since", "yesterday-ish"}, {"--limit", "-1"}, {"--property", "x"}} {
		code, _, stderr := runCLI(t, env, append([]string{"dead-letters", "list"}, bad...)...)
		if code != exitUsage || !strings.Contains(stderr, bad[0]) {
			t.Fatalf("%q: exit %d %q, want 2 naming the flag", bad, code, stderr)
		}
	}
}

func itoa(id uint32) string { return strconv.FormatUint(uint64(id), 10) }
