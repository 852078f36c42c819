package postgres

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A derivation commits without waiting for its WAL to be flushed; the
// setting is its transaction's only, so staging and every other statement
// on the store's connections still commit synchronously.
func TestDeriveCommitsAsynchronouslyAlone(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "Async"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	var inDerive string
	if err := d.tx.QueryRow(ctx, "SHOW synchronous_commit").Scan(&inDerive); err != nil {
		t.Fatal(err)
	}
	if inDerive != "off" {
		t.Errorf("synchronous_commit in a derivation = %q, want off", inDerive)
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	conns := s.pool.AcquireAllIdle(ctx)
	if len(conns) == 0 {
		t.Fatal("no idle connection after the derivation committed")
	}
	for _, c := range conns {
		var v string
		if err := c.QueryRow(ctx, "SHOW synchronous_commit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v != "on" {
			t.Errorf("synchronous_commit on a pooled connection after a derivation = %q, want on", v)
		}
		c.Release()
	}
}

// A derivation's statements are planned for their arrays each time: with
// the plan cache's default, a statement run a sixth time on a connection
// may get a generic plan, which takes each array parameter for 10
// elements (a nested loop probing the primary key per rollup cell, where
// the derivation's thousands of cells are cheaper hashed). The setting is
// the transaction's alone.
func TestDeriveStatementsPlannedForTheirArrays(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "Plans"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO rollup_days (site_id, day, kind, dim_id, events)
		SELECT $1, current_date, 1, d, 1 FROM generate_series(1, 3000) d`, int32(site.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE rollup_days"); err != nil {
		t.Fatal(err)
	}
	keys := make([]rollupKey, 2000)
	for i := range keys {
		keys[i] = rollupKey{site: int32(site.ID), kind: 1, day: localDay(time.Now(), time.Local), dim: int32(i + 1)}
	}
	// The read of the cells' stored sketches (readAndMergeSketches), run
	// as pgx runs it: a prepared statement of the connection.
	read := "SELECT u.i, r.users, r.active_users, r.new_users FROM " + keyUnnest +
		" JOIN rollup_days r USING (site_id, kind, day, dim_id)"
	plans := func(q pgx.Tx) (generic, custom int64) {
		t.Helper()
		for range 8 {
			rows, err := q.Query(ctx, read, keyArrays(keys)...)
			if err != nil {
				t.Fatal(err)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := q.QueryRow(ctx, "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1", read).
			Scan(&generic, &custom); err != nil {
			t.Fatal(err)
		}
		return generic, custom
	}
	d, err := s.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	if generic, custom := plans(d.tx); generic != 0 || custom != 8 {
		t.Errorf("in a derivation: %d generic and %d custom plans of 8 executions, want 0 and 8", generic, custom)
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	var mode string
	if err := tx.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "auto" {
		t.Errorf("plan_cache_mode outside a derivation = %q, want auto", mode)
	}
}

// A derivation rewrites every rollup cell it touches; rollup_days pages
// keep room for the new versions (migration 023), so an update of every
// cell of a full table leaves each row on its page (a HOT update, which
// adds no primary key entry), where full pages would move them.
func TestRollupUpdatesStayOnTheirPage(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	sketch := make([]byte, 200) // an inline sketch of a few dozen visitors
	if _, err := s.pool.Exec(ctx, `INSERT INTO rollup_days (site_id, day, kind, dim_id, events, users)
		SELECT 1, current_date, 1, d, 1, $1 FROM generate_series(1, 400) d`, sketch); err != nil {
		t.Fatal(err)
	}
	blocks := func() map[int32]string {
		rows, err := s.pool.Query(ctx, "SELECT dim_id, (ctid::text::point)[0]::text FROM rollup_days")
		if err != nil {
			t.Fatal(err)
		}
		type cell struct {
			Dim   int32
			Block string
		}
		cells, err := pgx.CollectRows(rows, pgx.RowToStructByPos[cell])
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[int32]string, len(cells))
		for _, c := range cells {
			out[c.Dim] = c.Block
		}
		return out
	}
	before := blocks()
	if _, err := s.pool.Exec(ctx, "UPDATE rollup_days SET events = events + 1"); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for dim, b := range blocks() {
		if before[dim] != b {
			moved++
		}
	}
	if moved > 0 {
		t.Errorf("%d of %d rollup rows moved to another page when updated", moved, len(before))
	}
}

// Reading a derivation's rollup cells for the sketch merge takes no row
// lock: the site's derive lock and its sites row lock keep every other
// writer of the site's cells away (storeRollupRounds), and a lock per cell
// before its update cost a WAL record per cell and derivation. While the
// derivation holds the cells it read, another transaction can still lock
// them (it could not with the locks taken).
func TestRollupMergeReadTakesNoRowLock(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "NoRowLocks"})
	if err != nil {
		t.Fatal(err)
	}
	day := localDay(time.Now(), time.UTC)
	keys := []rollupKey{{site: int32(site.ID), kind: int32(DimPagePath), day: day, dim: 1},
		{site: int32(site.ID), kind: int32(DimPagePath), day: day, dim: 2}}
	stored := sparseEncoding([]uint32{encodeHash(VisitorHash(1))})
	if _, err := s.pool.Exec(ctx, `INSERT INTO rollup_days (site_id, kind, day, dim_id, events, users, active_users)
		SELECT $1, $2, $3, d, 1, $4::bytea, $4::bytea FROM unnest($5::int[]) d`,
		int32(site.ID), int16(DimPagePath), dayDate(day), stored, []int32{1, 2}); err != nil {
		t.Fatal(err)
	}
	d, err := s.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback(ctx)
	agg := rollupAgg{}
	agg.addActive(keys[0], VisitorHash(2))
	agg.settle()
	found, err := agg.readAndMerge(ctx, d.tx, keys[:1], nil)
	if err != nil {
		t.Fatal(err)
	}
	if !found[0] {
		t.Fatal("the stored cell was not found")
	}
	if got := agg[keys[0]].sketches.enc[1]; len(got) == 0 || bytes.Equal(got, stored) {
		t.Fatalf("merged active sketch %x: want the stored one and the delta's visitor", got)
	}
	other, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	var n int
	if err := other.QueryRow(ctx, `SELECT count(*) FROM (SELECT 1 FROM rollup_days WHERE site_id = $1 AND dim_id = 1
		FOR UPDATE NOWAIT) l`, int32(site.ID)).Scan(&n); err != nil {
		t.Fatalf("a cell the derivation read for its merge is locked: %v", err)
	}
	if n != 1 {
		t.Fatalf("locked %d cells, want 1", n)
	}
}

// TakeInto reads the payloads Take reads, into the buffer it is given,
// over what the buffer held: payloads of varied sizes, read into a
// buffer too small for them (the ones past its room go to a new array)
// that held an earlier take's bytes, and again into the buffer returned.
func TestTakeIntoReadsWhatTakeReads(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "Take"})
	if err != nil {
		t.Fatal(err)
	}
	for i, size := range []int{300, 5, 70_000, 0, 1200, 90_000, 17} {
		payload := bytes.Repeat([]byte{byte('a' + i)}, size)
		if _, err := s.StageBatch(ctx, "a", uint64(i+1), []Staged{{Site: site.ID, Events: 1, Payload: payload}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	take := func(buf []byte) ([]StagedRow, []byte) {
		t.Helper()
		d, err := s.BeginDerive(ctx, site.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Rollback(ctx)
		if buf == nil {
			rows, _, err := d.TakeInto(ctx, nil, 100, 100)
			if err != nil {
				t.Fatal(err)
			}
			return rows, nil
		}
		rows, buf, err := d.TakeInto(ctx, buf, 100, 100)
		if err != nil {
			t.Fatal(err)
		}
		return rows, buf
	}
	want, _ := take(nil)
	if len(want) != 7 {
		t.Fatalf("Take: %d rows, want 7", len(want))
	}
	buf := bytes.Repeat([]byte{'x'}, 2000)
	for round := range 3 {
		var got []StagedRow
		got, buf = take(buf)
		if len(got) != len(want) {
			t.Fatalf("round %d: %d rows, want %d", round, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || got[i].Events != want[i].Events || !bytes.Equal(got[i].Payload, want[i].Payload) {
				t.Fatalf("round %d: row %d: id %d, %d events, payload of %d bytes; want %d, %d, %d bytes",
					round, i, got[i].ID, got[i].Events, len(got[i].Payload), want[i].ID, want[i].Events, len(want[i].Payload))
			}
			if cap(got[i].Payload) != len(got[i].Payload) {
				t.Fatalf("round %d: row %d: payload of %d bytes with room for %d", round, i, len(got[i].Payload), cap(got[i].Payload))
			}
		}
		// The next round reads over these bytes.
		for i := range buf[:cap(buf)] {
			buf[:cap(buf)][i] = 'y'
		}
	}
}
