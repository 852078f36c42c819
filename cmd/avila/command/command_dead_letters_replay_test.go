package command

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/ingest"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

func TestDeadLettersReplay(t *testing.T) {
	db, a, b := deadLetterDB(t)
	env := map[string]string{"DATABASE_URL": db}
	pool := testenv.Pool(t, db)
	now := time.Now()
	ev := protocol.Event{Site: a, TimeMicros: now.Add(-time.Minute).UnixMicro(), Name: "page_view", Visitor: 1, Path: "/", Title: "caf\xe9"}
	addDeadLetter(t, pool, "edge-1", 1, now, "title: not valid UTF-8 (rule invalid_utf8)", ev)
	ev.Title, ev.Name = "", strings.Repeat("n", 41)
	addDeadLetter(t, pool, "edge-1", 2, now, "name: event name has 41 characters, GA4 allows 40 (rule event_name_length)", ev)
	ev.Site, ev.Name, ev.City = b, "click", "K\x00ln"
	addDeadLetter(t, pool, "edge-2", 1, now, "city: contains a NUL character (rule nul_byte)", ev)
	count := func(sql string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(context.Background(), sql).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	replay := func(args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, append([]string{"dead-letters", "replay"}, args...)...)
		if code != 0 {
			t.Fatalf("dead-letters replay %q: exit %d: %s", args, code, stderr)
		}
		return stdout, stderr
	}

	stdout, stderr := replay("--dry-run")
	if !strings.Contains(stderr, "0 stored, 0 already stored, 2 would be stored, 1 still refused") || !strings.Contains(stdout, "event_name_length") {
		t.Fatalf("dry run: %s%s", stdout, stderr)
	}
	if count("SELECT count(*) FROM events WHERE flags & 256 = 0") != 0 || count("SELECT count(*) FROM dead_letters") != 3 {
		t.Fatal("dry run stored or deleted")
	}

	stdout, stderr = replay("--property", itoa(b), "--json")
	var res []ingest.ReplayResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res) != 1 || res[0].Outcome != ingest.ReplayStored || res[0].Repairs != "nul_byte" {
		t.Fatalf("replay --property --json: %q %s (%v)", stdout, stderr, err)
	}
	_, stderr = replay()
	if !strings.Contains(stderr, "1 stored, 0 already stored, 0 would be stored, 1 still refused") {
		t.Fatalf("replay: %s", stderr)
	}
	if n := count("SELECT count(*) FROM events WHERE flags & 256 = 0"); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
	// A rerun stores nothing twice; the refused one stays for the next fix.
	_, stderr = replay()
	if !strings.Contains(stderr, "0 stored, 0 already stored, 0 would be stored, 1 still refused") ||
		count("SELECT count(*) FROM events WHERE flags & 256 = 0") != 2 || count("SELECT count(*) FROM dead_letters") != 1 {
		t.Fatalf("rerun: %s", stderr)
	}
	if code, _, stderr := runCLI(t, env, "dead-letters", "replay", "--since", "soon"); code != exitUsage || !strings.Contains(stderr, "--since") {
		t.Fatalf("bad --since: exit %d %s", code, stderr)
	}
}
