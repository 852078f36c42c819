package command

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

// quarantineRow puts a staged row into quarantine as a derivation does.
func quarantineRow(t *testing.T, db *pgxpool.Pool, site uint32, id int64, events int, reason string) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason)
		VALUES ($1, $2, $3, 'payload', $4, $5)`, int32(site), id, events, time.Now().Add(-time.Hour), reason); err != nil {
		t.Fatal(err)
	}
}

func TestStagedListAndRequeue(t *testing.T) {
	db, a, b := deadLetterDB(t)
	env := map[string]string{"DATABASE_URL": db}
	sql := testenv.Pool(t, db)
	quarantineRow(t, sql, a, 11, 40, "staged row 11: msgpack: invalid code")
	quarantineRow(t, sql, a, 12, 5, "ERROR: invalid byte sequence for encoding \"UTF8\": 0x00 (SQLSTATE 22021)")
	quarantineRow(t, sql, b, 13, 7, "staged row 13: 6 events decoded where its row counts 7")

	list := func(args ...string) (rows []string, stderr string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, append([]string{"staged", "list"}, args...)...)
		if code != 0 {
			t.Fatalf("staged list %q: exit %d: %s", args, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if !strings.HasPrefix(lines[0], "ID") {
			t.Fatalf("no header: %q", stdout)
		}
		return lines[1:], stderr
	}
	rows, summary := list()
	if len(rows) != 3 || !strings.HasPrefix(rows[0], "11") || !strings.Contains(rows[1], "SQLSTATE 22021") ||
		!strings.Contains(summary, "3 rows quarantined, 52 events in no report") {
		t.Fatalf("list: %q %q", rows, summary)
	}
	if rows, _ := list("--property", itoa(b)); len(rows) != 1 || !strings.HasPrefix(rows[0], "13") {
		t.Fatalf("--property: %q", rows)
	}
	code, stdout, stderr := runCLI(t, env, "staged", "list", "--json", "--property", itoa(a))
	var out []postgres.QuarantinedRow
	if code != 0 || json.Unmarshal([]byte(stdout), &out) != nil || len(out) != 2 || out[1].ID != 12 || out[1].Events != 5 ||
		out[1].Bytes != len("payload") {
		t.Fatalf("--json: exit %d %q %s", code, stdout, stderr)
	}

	// One row by id, then the rest of a property: back in staged_events
	// with their ids.
	code, stdout, stderr = runCLI(t, env, "staged", "requeue", "--id", "12")
	if code != 0 || !strings.Contains(stdout, "requeued 1 rows (5 events)") {
		t.Fatalf("requeue --id 12: exit %d %q %s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "staged", "requeue", "--property", itoa(a))
	if code != 0 || !strings.Contains(stdout, "requeued 1 rows (40 events)") {
		t.Fatalf("requeue --property: exit %d %q %s", code, stdout, stderr)
	}
	var ids []int64
	rowsBack, err := sql.Query(context.Background(), "SELECT id FROM staged_events WHERE site_id = $1 ORDER BY id", int32(a))
	if err == nil {
		for rowsBack.Next() {
			var id int64
			if err := rowsBack.Scan(&id); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		err = rowsBack.Err()
	}
	if err != nil || len(ids) != 2 || ids[0] != 11 || ids[1] != 12 {
		t.Fatalf("staged after requeue: %v (%v), want rows 11 and 12", ids, err)
	}
	if rows, _ := list(); len(rows) != 1 || !strings.HasPrefix(rows[0], "13") {
		t.Fatalf("list after requeue: %q", rows)
	}
	code, stdout, stderr = runCLI(t, env, "staged", "requeue", "--id", "11,13", "--property", itoa(b))
	if code != 0 || !strings.Contains(stdout, "requeued 1 rows") || !strings.Contains(stderr, "1 of the 2 rows named") {
		t.Fatalf("requeue of a row not quarantined: exit %d %q %q", code, stdout, stderr)
	}

	for _, bad := range [][]string{{"--id", "x"}, {"--id", "0"}, {"--property", "y"}} {
		code, _, stderr := runCLI(t, env, append([]string{"staged", "requeue"}, bad...)...)
		if code != exitUsage || !strings.Contains(stderr, bad[0]) {
			t.Fatalf("%q: exit %d %q, want 2 naming the flag", bad, code, stderr)
		}
	}
}
