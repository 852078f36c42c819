package agent

import (
	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/protocol"
)

// setConfig installs a site config from the cache or an aggregator.
// Requests in progress keep the config they started with.
func (a *Agent) setConfig(cfg *protocol.Config, from string) {
	sites, err := collect.NewSites(cfg)
	if err != nil {
		// The rest of the config is usable; the entries left out are named.
		a.log.Warn("site config has unusable entries", "from", from, "err", err)
	}
	old := a.sites.Swap(sites)
	if old == nil || old.Len() != sites.Len() {
		a.log.Info("site config loaded", "from", from, "sites", sites.Len(), "salts", len(cfg.Salts))
	}
}
