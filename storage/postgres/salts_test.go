package postgres

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
	"github.com/google/go-cmp/cmp"
)

func TestSaltsLifecycle(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, _ := s.CreateSite(ctx, SiteSpec{Name: "a"})
	b, _ := s.CreateSite(ctx, SiteSpec{Name: "b"})
	// CreateSite made salts by the real clock; this test runs its own.
	if _, err := s.pool.Exec(ctx, "DELETE FROM salts"); err != nil {
		t.Fatal(err)
	}
	day := func(d int) time.Time { return time.Date(2025, 3, d, 23, 30, 0, 0, time.FixedZone("x", -2*3600)) } // 01:30 UTC next day

	now := day(9) // 2025-03-10 UTC
	if err := s.EnsureSalts(ctx, now); err != nil {
		t.Fatal(err)
	}
	first, err := s.Salts(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	type sd struct {
		Site uint32
		Day  string
	}
	keys := func(salts []protocol.Salt) []sd {
		var out []sd
		for _, x := range salts {
			out = append(out, sd{x.Site, x.Day})
			if len(x.Key) != SaltLen {
				t.Errorf("salt %d/%s has %d bytes", x.Site, x.Day, len(x.Key))
			}
		}
		return out
	}
	want := []sd{{a.ID, "2025-03-10"}, {a.ID, "2025-03-11"}, {b.ID, "2025-03-10"}, {b.ID, "2025-03-11"}}
	if diff := cmp.Diff(want, keys(first)); diff != "" {
		t.Fatalf("salts (-want +got):\n%s", diff)
	}
	if bytes.Equal(first[0].Key, first[1].Key) || bytes.Equal(first[0].Key, first[2].Key) {
		t.Error("salts repeat across days or sites")
	}

	// Idempotent: a second node running it changes nothing.
	if err := s.EnsureSalts(ctx, now); err != nil {
		t.Fatal(err)
	}
	again, _ := s.Salts(ctx, now)
	if diff := cmp.Diff(first, again); diff != "" {
		t.Fatalf("EnsureSalts replaced salts (-before +after):\n%s", diff)
	}

	// Next day: yesterday's is still served, a new tomorrow appears, and
	// tomorrow's salt of the day before became today's unchanged.
	now = day(10)
	if err := s.EnsureSalts(ctx, now); err != nil {
		t.Fatal(err)
	}
	next, _ := s.Salts(ctx, now)
	want = []sd{{a.ID, "2025-03-10"}, {a.ID, "2025-03-11"}, {a.ID, "2025-03-12"}, {b.ID, "2025-03-10"}, {b.ID, "2025-03-11"}, {b.ID, "2025-03-12"}}
	if diff := cmp.Diff(want, keys(next)); diff != "" {
		t.Fatalf("salts next day (-want +got):\n%s", diff)
	}
	if !bytes.Equal(next[1].Key, first[1].Key) {
		t.Error("tomorrow's salt changed when its day came")
	}

	// Three days on, 2025-03-10 and 11 are more than two days old: deleted.
	now = day(13) // 2025-03-14 UTC
	if err := s.EnsureSalts(ctx, now); err != nil {
		t.Fatal(err)
	}
	var days []string
	rows, _ := s.pool.Query(ctx, "SELECT DISTINCT to_char(day, 'YYYY-MM-DD') FROM salts ORDER BY 1")
	for rows.Next() {
		var d string
		_ = rows.Scan(&d)
		days = append(days, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"2025-03-12", "2025-03-14", "2025-03-15"}, days); diff != "" {
		t.Errorf("kept salt days (-want +got):\n%s", diff)
	}
}

// A new site comes with today's and tomorrow's salt, so agents can count its
// visitors before the next upkeep run.
func TestCreateSiteMakesSalts(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	site, err := s.CreateSite(ctx, SiteSpec{Name: "fresh"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	salts, err := s.Salts(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	var days []string
	for _, x := range salts {
		if x.Site == site.ID {
			days = append(days, x.Day)
		}
	}
	want := []string{utcDay(now).Format(time.DateOnly), utcDay(now).AddDate(0, 0, 1).Format(time.DateOnly)}
	if diff := cmp.Diff(want, days); diff != "" {
		t.Fatalf("salts of a new site (-want +got):\n%s", diff)
	}
}
