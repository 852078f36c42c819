package demo

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// SiteName names the demo site; a site by this name is reused across runs.
const SiteName = "Demo site"

// SiteDomain is the demo site's host name, the one synthetic traffic's
// page URLs use.
const SiteDomain = "demo.avila.test"

// prepareDatabase makes sure the (migrated) database holds the demo site and
// its salts, and creates a new API key for it.
func prepareDatabase(ctx context.Context, databaseURL string, log *slog.Logger) (postgres.Site, string, error) {
	store, err := postgres.Open(ctx, databaseURL, log)
	if err != nil {
		return postgres.Site{}, "", fmt.Errorf("demo: %w", err)
	}
	defer store.Close()
	site, err := ensureSite(ctx, store)
	if err != nil {
		return postgres.Site{}, "", err
	}
	if err := store.EnsureSalts(ctx, time.Now()); err != nil {
		return postgres.Site{}, "", fmt.Errorf("demo: %w", err)
	}
	key, err := store.CreateAPIKey(ctx, "demo "+time.Now().UTC().Format(time.RFC3339), []uint32{site.ID})
	if err != nil {
		return postgres.Site{}, "", fmt.Errorf("demo: %w", err)
	}
	return site, key, nil
}

// ensureSite returns the site named SiteName, creating it on the first run.
func ensureSite(ctx context.Context, store *postgres.Store) (postgres.Site, error) {
	sites, err := store.Sites(ctx)
	if err != nil {
		return postgres.Site{}, fmt.Errorf("demo: %w", err)
	}
	for _, s := range sites {
		if s.Name == SiteName {
			return s, nil
		}
	}
	site, err := store.CreateSite(ctx, postgres.SiteSpec{Name: SiteName, Domains: []string{SiteDomain, "localhost", "127.0.0.1"}})
	if err != nil {
		return postgres.Site{}, fmt.Errorf("demo: %w", err)
	}
	return site, nil
}
