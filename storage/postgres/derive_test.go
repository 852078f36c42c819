package postgres

import (
	"context"
	"testing"
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
