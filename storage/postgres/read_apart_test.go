package postgres

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TestReadBesideCopy: the stored sketches read on a connection of their
// own while the events' COPY holds the transaction's (readBesideCopy)
// merge into the cells and find the rows as the transaction's own read
// does; the COPY's error comes first, and a COPY done before leaves the
// read to the transaction.
func TestReadBesideCopy(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, SiteSpec{Name: "apart"})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().UTC().Truncate(24 * time.Hour).Add(10 * time.Hour)
	rowsOf := func(shift int64) []EventRow {
		rows := rollupBenchRows(3000)
		first := rows[0].TS
		for i := range rows {
			r := &rows[i]
			r.Site, r.TS, r.Visitor = int32(site.ID), day.Add(r.TS.Sub(first)), r.Visitor+shift*7919
		}
		return rows
	}
	d, err := s.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.addRollups(ctx, rowsOf(0), nil, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Cells of returning and new visitors, some stored, some not.
	aggOf := func() (rollupAgg, []rollupKey) {
		rows := rowsOf(1024)
		agg, hours, last := make(rollupAgg), &hourCache{loc: time.UTC}, new(rollupSlots)
		for i := range rows {
			agg.addTo(&rows[i], hours, true, last)
		}
		agg[rollupKey{site: int32(site.ID), kind: int32(RollupHour), day: localDay(day, time.UTC) + 1, dim: 3}] = newRollupCell()
		agg.settle()
		return agg, sortedRollupKeys(agg)
	}
	d, err = s.BeginDerive(ctx, site.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Rollback(ctx)
	inTx, keys := aggOf()
	wantFound, err := inTx.readAndMerge(ctx, d.tx, keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := inTx.values(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, f := range wantFound {
		if f {
			stored++
		}
	}
	if stored == 0 || stored == len(keys) {
		t.Fatalf("%d of %d cells stored: the test needs both kinds", stored, len(keys))
	}

	apart, _ := aggOf()
	copied := make(chan error, 1)
	time.AfterFunc(50*time.Millisecond, func() { copied <- nil })
	found, err := d.readBesideCopy(ctx, apart, nil, keys, copied)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(found, wantFound) {
		t.Fatal("the read apart found other rows than the transaction's")
	}
	got, err := apart.values(keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("the read apart merged other sketches than the transaction's")
	}

	failed := errors.New("copy failed")
	late := make(chan error, 1)
	time.AfterFunc(50*time.Millisecond, func() { late <- failed })
	other, _ := aggOf()
	if _, err := d.readBesideCopy(ctx, other, nil, keys, late); !errors.Is(err, failed) {
		t.Fatalf("COPY failing during the read: %v, want its error", err)
	}
	// No connection free while the COPY runs: the transaction reads.
	var held []*pgxpool.Conn
	for range s.pool.Stat().MaxConns() - 1 { // d holds one
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	busy := make(chan error, 1)
	time.AfterFunc(50*time.Millisecond, func() { busy <- nil })
	other, _ = aggOf()
	if found, err := d.readBesideCopy(ctx, other, nil, keys, busy); found != nil || err != nil {
		t.Fatalf("no connection free: found %v, %v; want the read left to the transaction", found != nil, err)
	}
	for _, c := range held {
		c.Release()
	}
	done := make(chan error, 1)
	done <- nil
	if found, err := d.readBesideCopy(ctx, make(rollupAgg), nil, keys, done); found != nil || err != nil {
		t.Fatalf("COPY done before: found %v, %v; want the read left to the transaction", found != nil, err)
	}
	done <- failed
	if _, err := d.readBesideCopy(ctx, make(rollupAgg), nil, keys, done); !errors.Is(err, failed) {
		t.Fatalf("COPY failed before: %v, want its error", err)
	}
}
