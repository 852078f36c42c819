package write

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// newQuarantineStore is newStore with its Writer's metrics registered,
// and a site.
func newQuarantineStore(t *testing.T) (*testStore, *Metrics, uint32) {
	t.Helper()
	s := newStore(t)
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s.w = New(Config{Metrics: m}, s.Store)
	site, err := s.CreateSite(context.Background(), postgres.SiteSpec{Name: "quarantine"})
	if err != nil {
		t.Fatal(err)
	}
	return s, m, site.ID
}

// stageOnly stages events as one batch without deriving them.
func stageOnly(t *testing.T, s *testStore, seq uint64, events []protocol.Event) {
	t.Helper()
	if _, err := s.w.WriteBatch(context.Background(), "a", seq, events, nil); err != nil {
		t.Fatal(err)
	}
}

// stageRaw stages payload as a row of site counting events, as no
// aggregator would write it, and returns its id.
func stageRaw(t *testing.T, s *testStore, site uint32, events int, payload []byte) int64 {
	t.Helper()
	var id int64
	if err := s.Pool.QueryRow(context.Background(), `INSERT INTO staged_events (site_id, events, payload) VALUES ($1, $2, $3) RETURNING id`,
		int32(site), events, payload).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// stagedIDs lists the ids of site's staged rows in order.
func stagedIDs(t *testing.T, s *testStore, site uint32) []int64 {
	t.Helper()
	var ids []int64
	if err := s.Pool.QueryRow(context.Background(), "SELECT array_agg(id ORDER BY id) FROM staged_events WHERE site_id = $1",
		int32(site)).Scan(&ids); err != nil {
		t.Fatal(err)
	}
	return ids
}

// stagedEventsDerived counts the events rows of site that came from
// staged events (not the derivation's own session_start and first_visit).
func stagedEventsDerived(t *testing.T, s *testStore, site uint32) int {
	t.Helper()
	return count(t, s, "SELECT count(*) FROM events WHERE site_id = $1 AND flags & $2 = 0", int32(site), postgres.EventFlagDerived)
}

// TestUndecodableRowQuarantined: a staged row whose payload does not
// decode fails every derivation that takes it. It is moved to quarantine
// and the rows staged before and after it are derived: the site's
// reports go on. Requeue puts it back as it was, in its place.
func TestUndecodableRowQuarantined(t *testing.T) {
	s, m, site := newQuarantineStore(t)
	ctx := context.Background()
	stageOnly(t, s, 1, visitEvents(site, 0, 50))
	bad := stageRaw(t, s, site, 7, []byte("not a batch"))
	stageOnly(t, s, 2, visitEvents(site, 50, 50))

	err := s.w.Flush(ctx)
	if !errors.Is(err, ErrQuarantined) {
		t.Fatalf("Flush: %v, want ErrQuarantined", err)
	}
	if n := stagedEventsDerived(t, s, site); n != 100 {
		t.Fatalf("%d staged events derived, want the 100 of the rows before and after the bad one", n)
	}
	if n := count(t, s, "SELECT count(*) FROM staged_events WHERE site_id = $1", int32(site)); n != 0 {
		t.Fatalf("%d rows still staged, want none", n)
	}
	rows, err := s.QuarantinedRows(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ID != bad || rows[0].Site != site || rows[0].Events != 7 || rows[0].Bytes != len("not a batch") ||
		!strings.Contains(rows[0].Reason, "staged row") || rows[0].Refused {
		t.Fatalf("quarantined %+v, want row %d of site %d, 7 events, its reason, not refused", rows, bad, site)
	}
	if got := metricValue(t, m.quarantined); got != 1 {
		t.Fatalf("quarantined rows metric %v, want 1", got)
	}
	if got := metricValue(t, m.quarantinedEvents); got != 7 {
		t.Fatalf("quarantined events metric %v, want 7", got)
	}
	// A Flush with nothing bad staged reports nothing.
	if err := s.w.Flush(ctx); err != nil {
		t.Fatalf("Flush after the quarantine: %v", err)
	}

	// Back as it was staged: the same id, events and payload.
	n, events, err := s.Requeue(ctx, site, nil)
	if err != nil || n != 1 || events != 7 {
		t.Fatalf("Requeue: %d rows, %d events, %v; want 1, 7", n, events, err)
	}
	var payload []byte
	if err := s.Pool.QueryRow(ctx, "SELECT payload FROM staged_events WHERE site_id = $1 AND id = $2 AND events = 7",
		int32(site), bad).Scan(&payload); err != nil || string(payload) != "not a batch" {
		t.Fatalf("the requeued row: %q, %v", payload, err)
	}
	if rows, err := s.QuarantinedRows(ctx, site); err != nil || len(rows) != 0 {
		t.Fatalf("quarantine after requeue: %v, %v; want empty", rows, err)
	}
	// Still bad: quarantined again, and nothing else changes.
	if err := s.w.Flush(ctx); !errors.Is(err, ErrQuarantined) {
		t.Fatalf("Flush of the requeued row: %v, want ErrQuarantined", err)
	}
	if n := stagedEventsDerived(t, s, site); n != 100 {
		t.Fatalf("%d staged events derived, want 100", n)
	}
}

// TestRefusedRowIsolated: PostgreSQL refuses a derivation's events (a
// NUL in a text, which no text column holds) though the row decodes. The
// site's rows are derived one at a time until the one that fails alone
// is found and quarantined; the rows around it are derived once.
func TestRefusedRowIsolated(t *testing.T) {
	s, m, site := newQuarantineStore(t)
	ctx := context.Background()
	stageOnly(t, s, 1, visitEvents(site, 0, 40))
	refused := visitEvents(site, 40, 40)
	refused[17].Title = "a title\x00with a NUL"
	stageOnly(t, s, 2, refused)
	stageOnly(t, s, 3, visitEvents(site, 80, 40))
	stageOnly(t, s, 4, visitEvents(site, 120, 40))
	var bad int64
	if err := s.Pool.QueryRow(ctx, "SELECT id FROM staged_events WHERE site_id = $1 ORDER BY id OFFSET 1 LIMIT 1",
		int32(site)).Scan(&bad); err != nil {
		t.Fatal(err)
	}

	if err := s.w.Flush(ctx); !errors.Is(err, ErrQuarantined) {
		t.Fatalf("Flush: %v, want ErrQuarantined", err)
	}
	if n := stagedEventsDerived(t, s, site); n != 120 {
		t.Fatalf("%d staged events derived, want the 120 of the three good rows", n)
	}
	rows, err := s.QuarantinedRows(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ID != bad || rows[0].Events != 40 || !strings.Contains(rows[0].Reason, "22021") || !rows[0].Refused {
		t.Fatalf("quarantined %+v, want row %d, 40 events, PostgreSQL's reason (SQLSTATE 22021), refused", rows, bad)
	}
	if got := metricValue(t, m.quarantined); got != 1 {
		t.Fatalf("quarantined rows metric %v, want 1", got)
	}
	if len(s.w.isolate) != 0 {
		t.Fatalf("sites still derived a row at a time: %v", s.w.isolate)
	}
	// The events, sessions and rollups agree: each derived event once.
	st := writtenState(t, s, site)
	all := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1", int32(site))
	if st[1] != all || st[3] != all || st[6] != 0 {
		t.Fatalf("sessions hold %d events, rollups %d, %d staged; want %d, %d, none", st[1], st[3], st[6], all, all)
	}
}

// TestTransientFailureNotQuarantined: a derivation that fails for a
// reason other than its rows (here its context ends) leaves every row
// staged for the next, and quarantines nothing.
func TestTransientFailureNotQuarantined(t *testing.T) {
	s, m, site := newQuarantineStore(t)
	stageOnly(t, s, 1, visitEvents(site, 0, 40))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.w.Flush(ctx); err == nil || errors.Is(err, ErrQuarantined) {
		t.Fatalf("Flush with its context ended: %v, want its failure", err)
	}
	if rows, err := s.QuarantinedRows(context.Background(), 0); err != nil || len(rows) != 0 || metricValue(t, m.quarantined) != 0 {
		t.Fatalf("quarantined %v (%v)", rows, err)
	}
	if err := s.w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := stagedEventsDerived(t, s, site); n != 40 {
		t.Fatalf("%d derived, want 40", n)
	}
}

// TestRunQuarantines: a node's Run, not only Flush, moves a row no
// derivation can take to quarantine and derives the rows after it.
func TestRunQuarantines(t *testing.T) {
	s, m, site := newQuarantineStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() { defer close(done); s.w.Run(ctx) }()
	stageOnly(t, s, 1, visitEvents(site, 0, 40))
	refused := visitEvents(site, 40, 40)
	refused[3].Path = "/\x00"
	stageOnly(t, s, 2, refused)
	stageOnly(t, s, 3, visitEvents(site, 80, 40))
	waitDerived(t, s, site, 30*time.Second)
	if n := stagedEventsDerived(t, s, site); n != 80 {
		t.Fatalf("%d staged events derived, want the 80 of the good rows", n)
	}
	if rows, err := s.QuarantinedRows(context.Background(), site); err != nil || len(rows) != 1 || rows[0].Events != 40 {
		t.Fatalf("quarantined %+v (%v), want the refused row", rows, err)
	}
	if got := metricValue(t, m.quarantined); got != 1 {
		t.Fatalf("quarantined rows metric %v, want 1", got)
	}
}

// TestQuarantinedRowKeepsTombstones: a row staged before an erasure and
// quarantined after it holds the erased subject's events. The erasure's
// tombstone outlives its end while such a row, staged before that end, is
// quarantined, and the derivation of the requeued row drops the
// subject's events: an erasure is not undone by a requeue.
func TestQuarantinedRowKeepsTombstones(t *testing.T) {
	s, m, site := newQuarantineStore(t)
	ctx := context.Background()
	const subject = 5
	events := visitEvents(site, 0, 80) // visitors 1 … 40, two events each
	row := encodeStaged(site, events)
	subjectEvents := 0
	for _, e := range events {
		if e.Visitor == subject {
			subjectEvents++
		}
	}
	if _, err := s.EraseSubject(ctx, site, []uint64{subject}, postgres.AuditEntry{Actor: "test", Action: "gdpr.erase"}); err != nil {
		t.Fatal(err)
	}
	// A row staged two hours ago, still staged at the erasure (which
	// rewrites quarantined rows, not staged ones), quarantined after it.
	if _, err := s.Pool.Exec(ctx, `INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason)
		VALUES ($1, 1000, $2, $3, now() - interval '2 hours', 'test')`, int32(site), row.Events, row.Payload); err != nil {
		t.Fatal(err)
	}
	// The tombstone ended an hour ago, after the row was staged.
	exec(t, s, "UPDATE gdpr_tombstones SET until = now() - interval '1 hour'")
	if _, err := s.ExpireTombstones(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM gdpr_tombstones WHERE site_id = $1", int32(site)); n != 1 {
		t.Fatalf("%d tombstones after expiry, want the one a quarantined row may need", n)
	}
	if _, _, err := s.Requeue(ctx, site, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM events WHERE site_id = $1 AND visitor_id = $2", int32(site), int64(subject)); n != 0 {
		t.Fatalf("%d events of the erased subject derived from the requeued row, want none", n)
	}
	if n, want := stagedEventsDerived(t, s, site), len(events)-subjectEvents; n != want {
		t.Fatalf("%d staged events derived, want %d (all but the subject's)", n, want)
	}
	if got := metricValue(t, m.erased); got != float64(subjectEvents) {
		t.Fatalf("erased events dropped %v, want %d", got, subjectEvents)
	}
	// Nothing staged or quarantined from before its end: it goes.
	if _, err := s.ExpireTombstones(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM gdpr_tombstones WHERE site_id = $1", int32(site)); n != 0 {
		t.Fatalf("%d tombstones after the row was derived, want none", n)
	}
}

// TestErasureRewritesQuarantinedRows: an erasure takes the subject's
// events out of the site's quarantined rows (a row of its events only
// goes), and counts the rows it cannot search (they do not decode).
func TestErasureRewritesQuarantinedRows(t *testing.T) {
	s, _, site := newQuarantineStore(t)
	ctx := context.Background()
	const subject = 5
	mixed := visitEvents(site, 0, 80) // visitors 1 … 40, two events each
	only := visitEvents(site, 4, 1)   // visitor 5
	rows := []struct {
		id      int64
		events  int
		payload []byte
	}{{1, len(mixed), protocol.EncodeEvents(mixed)}, {2, 1, protocol.EncodeEvents(only)}, {3, 9, []byte("not a batch")}}
	for _, r := range rows {
		if _, err := s.Pool.Exec(ctx, `INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason)
			VALUES ($1, $2, $3, $4, now(), 'test')`, int32(site), r.id, r.events, r.payload); err != nil {
			t.Fatal(err)
		}
	}
	out, err := s.EraseSubject(ctx, site, []uint64{subject}, postgres.AuditEntry{Actor: "test", Action: "gdpr.erase"})
	if err != nil {
		t.Fatal(err)
	}
	if out.Quarantined != 3 || out.Unsearched != 1 {
		t.Fatalf("erasure took %d events out of quarantined rows and could not search %d rows, want 3 and 1", out.Quarantined, out.Unsearched)
	}
	left, err := s.QuarantinedRows(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0].ID != 1 || left[0].Events != len(mixed)-2 || left[1].ID != 3 {
		t.Fatalf("quarantined after the erasure: %+v, want row 1 with %d events and row 3", left, len(mixed)-2)
	}
	var payload []byte
	if err := s.Pool.QueryRow(ctx, "SELECT payload FROM staged_quarantine WHERE site_id = $1 AND id = 1", int32(site)).Scan(&payload); err != nil {
		t.Fatal(err)
	}
	var dec protocol.EventDecoder
	defer dec.Release()
	got, err := dec.Append(nil, payload)
	if err != nil || len(got) != len(mixed)-2 {
		t.Fatalf("the rewritten row decodes to %d events (%v), want %d", len(got), err, len(mixed)-2)
	}
	for _, e := range got {
		if e.Visitor == subject {
			t.Fatal("the rewritten row still holds the subject's events")
		}
	}
}

// TestNewerVersionRowLeft: a staged row of a newer protocol version (a
// node of that version staged it during a rolling upgrade) is not
// quarantined: the derivation fails naming the version, nothing of the
// site is derived or moved, and the node leaves the site to nodes of that
// version. Once they took the row, the site derives here again.
func TestNewerVersionRowLeft(t *testing.T) {
	s, m, site := newQuarantineStore(t)
	ctx := context.Background()
	id := stageNewerBetween(t, s, site)

	// A node of the newer version is in the cluster: the row is left to
	// it however long this node has met the row.
	read := New(Config{Metrics: m, Readers: func(v uint8) bool { return v == protocol.Version+1 }, UnreadFor: time.Nanosecond}, s.Store)
	for _, w := range []*Writer{s.w, read, read} {
		err := w.Flush(ctx)
		if !errors.Is(err, protocol.ErrNewerVersion) || errors.Is(err, ErrQuarantined) {
			t.Fatalf("Flush: %v, want the newer version's error and nothing quarantined", err)
		}
		if n := count(t, s, "SELECT count(*) FROM staged_events WHERE site_id = $1", int32(site)); n != 3 {
			t.Fatalf("%d rows staged, want the 3 left as they were", n)
		}
		if n := count(t, s, "SELECT count(*) FROM staged_quarantine"); n != 0 || metricValue(t, m.quarantined) != 0 {
			t.Fatalf("%d rows quarantined, want none", n)
		}
		if !w.derivedElsewhere(site) {
			t.Fatal("the site is not left to the newer nodes")
		}
	}
	// A node of the newer version derived that row (here: took it away).
	exec(t, s, fmt.Sprintf("DELETE FROM staged_events WHERE id = %d", id))
	if err := New(Config{}, s.Store).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := stagedEventsDerived(t, s, site); n != 60 {
		t.Fatalf("%d staged events derived, want the 60 of this version's rows", n)
	}
}

// stageNewerBetween stages three rows of site: 30 events, 5 events of a
// newer protocol version than this build's, 30 events; it returns the
// newer row's id.
func stageNewerBetween(t *testing.T, s *testStore, site uint32) int64 {
	t.Helper()
	stageOnly(t, s, 1, visitEvents(site, 0, 30))
	newer := visitEvents(site, 30, 5)
	plain := protocol.AppendBatchHead(nil, "a", 2, 0, len(newer))
	plain[6] = protocol.Version + 1 // the head's uint8 version
	for i := range newer {
		plain = protocol.AppendEvent(plain, &newer[i])
	}
	id := stageRaw(t, s, site, 5, protocol.CompressBatch(nil, plain))
	stageOnly(t, s, 3, visitEvents(site, 35, 30))
	return id
}

// TestUnreadNewerVersionRowQuarantined: a staged row of a newer protocol
// version that no node of the cluster reads (a downgrade) holds up its
// site for Config.UnreadFor from when the node first met it, and is then
// quarantined, marked with its version, so the site's other rows are
// derived. A node of an older version still does not requeue it.
func TestUnreadNewerVersionRowQuarantined(t *testing.T) {
	s, m, site := newQuarantineStore(t)
	ctx := context.Background()
	id := stageNewerBetween(t, s, site)
	// The only other node reads older versions only.
	s.w = New(Config{Metrics: m, Readers: func(v uint8) bool { return v <= protocol.Version }, UnreadFor: 50 * time.Millisecond}, s.Store)
	if err := s.w.Flush(ctx); !errors.Is(err, protocol.ErrNewerVersion) || errors.Is(err, ErrQuarantined) {
		t.Fatalf("first Flush: %v, want the newer version's error: the row is left while UnreadFor runs", err)
	}
	if n := count(t, s, "SELECT count(*) FROM staged_quarantine"); n != 0 {
		t.Fatalf("%d rows quarantined at the first meeting, want none", n)
	}
	time.Sleep(60 * time.Millisecond)
	if err := s.w.Flush(ctx); !errors.Is(err, ErrQuarantined) {
		t.Fatalf("Flush after UnreadFor: %v, want ErrQuarantined", err)
	}
	if n := stagedEventsDerived(t, s, site); n != 60 {
		t.Fatalf("%d staged events derived, want the 60 of this version's rows", n)
	}
	rows, err := s.QuarantinedRows(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].ID != id || rows[0].Events != 5 || rows[0].NewerVersion != protocol.Version+1 || rows[0].Refused ||
		!strings.Contains(rows[0].Reason, "newer protocol version") {
		t.Fatalf("quarantined %+v, want row %d of 5 events marked version %d", rows, id, protocol.Version+1)
	}
	if got := metricValue(t, m.quarantined); got != 1 {
		t.Fatalf("%v rows counted quarantined, want 1", got)
	}
	// This node's version does not read it: its requeue leaves it.
	if n, _, err := s.RequeueReadable(ctx, protocol.Version); err != nil || n != 0 {
		t.Fatalf("RequeueReadable(%d) = %d, %v; want nothing requeued", protocol.Version, n, err)
	}
	if err := New(Config{}, s.Store).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM staged_quarantine WHERE newer_version = $1", int16(protocol.Version+1)); n != 1 {
		t.Fatalf("%d rows of version %d quarantined after a pass of this version, want 1", n, protocol.Version+1)
	}
}

// TestReadableRowsRequeued: rows that nodes of an older version
// quarantined as newer than theirs are requeued by a node that reads
// them, at its first pass, and derived once, in their place; rows of a
// version newer still, and rows quarantined for another cause, stay.
func TestReadableRowsRequeued(t *testing.T) {
	s, _, site := newQuarantineStore(t)
	ctx := context.Background()
	stageOnly(t, s, 1, visitEvents(site, 0, 20))
	stageOnly(t, s, 2, visitEvents(site, 20, 25))
	stageOnly(t, s, 3, visitEvents(site, 45, 30))
	ids := stagedIDs(t, s, site)
	// As nodes of older versions quarantined them: the first two rows as
	// of this version, the third as undecodable.
	d, err := s.BeginDerive(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []postgres.QuarantineCause{
		{Reason: "newer", NewerVersion: protocol.Version},
		{Reason: "newer", NewerVersion: protocol.Version},
		{Reason: "does not decode"},
	} {
		if _, found, err := d.Quarantine(ctx, ids[i], c); err != nil || !found {
			t.Fatalf("quarantine row %d: found %v, %v", ids[i], found, err)
		}
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	newer := stageRaw(t, s, site, 1, []byte("of a version newer still"))
	exec(t, s, fmt.Sprintf(`INSERT INTO staged_quarantine (site_id, id, events, payload, staged_at, reason, newer_version)
		SELECT site_id, id, events, payload, staged_at, 'newer', %d FROM staged_events WHERE id = %d`, protocol.Version+1, newer))
	exec(t, s, fmt.Sprintf("DELETE FROM staged_events WHERE id = %d", newer))

	w := New(Config{}, s.Store)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); w.Run(runCtx) }()
	deadline := time.Now().Add(20 * time.Second)
	for stagedEventsDerived(t, s, site) < 45 {
		if time.Now().After(deadline) {
			t.Fatalf("%d staged events derived after 20 s, want the 45 of the requeued rows", stagedEventsDerived(t, s, site))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if n := stagedEventsDerived(t, s, site); n != 45 {
		t.Fatalf("%d staged events derived, want 45 once", n)
	}
	rows, err := s.QuarantinedRows(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].ID != ids[2] || rows[0].NewerVersion != 0 || rows[1].ID != newer || rows[1].NewerVersion != protocol.Version+1 {
		t.Fatalf("quarantined %+v, want rows %d (undecodable) and %d (newer still)", rows, ids[2], newer)
	}
}

// TestRefusingSiteNotDrained: when PostgreSQL refuses every row of a
// site alike (its stored state, not the rows, is at fault), the write
// stage quarantines at most maxRefused of them and then leaves the rest
// staged, its derivations failing until the cause is fixed; another node,
// or this one restarted, quarantines no more.
func TestRefusingSiteNotDrained(t *testing.T) {
	s, m, site := newQuarantineStore(t)
	ctx := context.Background()
	for i := range 12 {
		stageOnly(t, s, uint64(i+1), visitEvents(site, 10*i, 10))
	}
	exec(t, s, `CREATE FUNCTION refuse_all() RETURNS trigger LANGUAGE plpgsql AS
		$$BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '22012'; END$$`)
	exec(t, s, "CREATE TRIGGER refuse_all BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_all()")
	err := s.w.Flush(ctx)
	if err == nil || !strings.Contains(err.Error(), "22012") {
		t.Fatalf("Flush: %v, want the derivation's failure", err)
	}
	if got := metricValue(t, m.quarantined); got != maxRefused {
		t.Fatalf("%v rows quarantined, want %d", got, maxRefused)
	}
	if n := count(t, s, "SELECT count(*) FROM staged_events WHERE site_id = $1", int32(site)); n != 12-maxRefused {
		t.Fatalf("%d rows still staged, want %d", n, 12-maxRefused)
	}
	m2, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := New(Config{Metrics: m2}, s.Store).Flush(ctx); err == nil || !strings.Contains(err.Error(), "22012") {
		t.Fatalf("another node's Flush: %v, want the derivation's failure", err)
	}
	if got := metricValue(t, m2.quarantined); got != 0 {
		t.Fatalf("another node quarantined %v rows more, want none: the site's bound is reached", got)
	}
	if n := count(t, s, "SELECT count(*) FROM staged_quarantine WHERE site_id = $1 AND refused", int32(site)); n != maxRefused {
		t.Fatalf("%d refused rows quarantined, want %d", n, maxRefused)
	}
	// Fixed: the rest is derived, and the quarantined rows once requeued.
	exec(t, s, "DROP TRIGGER refuse_all ON events")
	if _, _, err := s.Requeue(ctx, site, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := stagedEventsDerived(t, s, site); n != 120 {
		t.Fatalf("%d staged events derived, want 120", n)
	}
}
