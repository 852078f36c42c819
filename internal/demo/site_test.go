package demo

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

func TestPrepareDatabaseReusesTheDemoSite(t *testing.T) {
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	store, err := postgres.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	other, err := store.CreateSite(ctx, postgres.SiteSpec{Name: "Someone's blog", Domains: []string{"blog.example"}})
	if err != nil {
		t.Fatal(err)
	}

	site, key, err := prepareDatabase(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if site.ID == other.ID || site.Name != SiteName {
		t.Fatalf("demo site %+v; want a new site named %q", site, SiteName)
	}
	again, key2, err := prepareDatabase(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != site.ID || again.MeasurementID != site.MeasurementID || again.APISecret != site.APISecret {
		t.Fatalf("second run made site %+v; want %+v reused", again, site)
	}
	if key == key2 {
		t.Fatal("both runs returned the same API key")
	}
	sites, err := store.Sites(ctx)
	if err != nil || len(sites) != 2 {
		t.Fatalf("%d sites after two runs (%v); want the other site and one demo site", len(sites), err)
	}
	// Each key reads the demo site only.
	for _, k := range []string{key, key2} {
		ids, err := store.LookupAPIKey(ctx, k)
		if err != nil || len(ids) != 1 || ids[0] != site.ID {
			t.Errorf("key reads %v (%v); want only the demo site %d", ids, err, site.ID)
		}
	}
	// The agent needs today's salt for the new site before it accepts hits.
	salts, err := store.Salts(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range salts {
		if s.Site == site.ID && s.Day == time.Now().UTC().Format(time.DateOnly) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no salt for today for the demo site among %d salts", len(salts))
	}
}
