package governance

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// CacheBumper makes cached reports of sites stale (storage/redis.Cache).
type CacheBumper interface {
	Bump(ctx context.Context, sites []uint32)
}

// RealtimeForgetter removes visitors from a site's realtime counters
// (storage/redis.Realtime).
type RealtimeForgetter interface {
	Forget(ctx context.Context, site uint32, visitors []uint64) error
}

// Service runs subject requests against the store and the derived state
// in Redis or memory.
type Service struct {
	Store *postgres.Store
	// Cache, when set, is bumped after an erasure so no cached report
	// still counts the subject.
	Cache CacheBumper
	// Realtime, when set, loses the subject's last 30 minutes.
	Realtime RealtimeForgetter
	Log      *slog.Logger
	Now      func() time.Time
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

// Export reads everything stored of sub and records the access in the
// audit trail under actor.
func (s *Service) Export(ctx context.Context, sub Subject, actor string) (*Export, error) {
	data, err := s.Store.SubjectData(ctx, sub.Site, []uint64{sub.Key})
	if err != nil {
		return nil, fmt.Errorf("governance: export: %w", err)
	}
	e := &Export{Property: sub.Site, Identity: sub.Identity, Key: keyText(sub.Key), GeneratedAt: s.now(),
		Note: CookielessNote, Events: data.Events, Sessions: data.Sessions, Commerce: data.Commerce, Items: data.Items,
		Quarantined: data.Quarantined}
	if _, err := s.Store.AppendAudit(ctx, postgres.AuditEntry{Actor: actor, Action: "gdpr.export", Site: sub.Site,
		Detail: map[string]any{"identity": string(sub.Identity), "key": keyText(sub.Key),
			"events": len(e.Events), "sessions": len(e.Sessions), "commerce": len(e.Commerce), "items": len(e.Items),
			"quarantined_events": len(e.Quarantined)}}); err != nil {
		return nil, fmt.Errorf("governance: export: %w", err)
	}
	return e, nil
}

// Erase removes sub from the store (see postgres.Store.EraseSubject), then
// from the realtime counters and the report cache. A failure after the
// store's commit is returned, but the stored data is gone already, and
// cached reports expire with the next derivation of the site.
func (s *Service) Erase(ctx context.Context, sub Subject, actor string) (postgres.Erased, error) {
	start := time.Now()
	out, err := s.Store.EraseSubject(ctx, sub.Site, []uint64{sub.Key}, postgres.AuditEntry{Actor: actor, Action: "gdpr.erase",
		Detail: map[string]any{"identity": string(sub.Identity), "key": keyText(sub.Key)}})
	if err != nil {
		return out, fmt.Errorf("governance: erase: %w", err)
	}
	if s.Cache != nil {
		s.Cache.Bump(ctx, []uint32{sub.Site})
	}
	if s.Realtime != nil {
		if err := s.Realtime.Forget(ctx, sub.Site, []uint64{sub.Key}); err != nil {
			return out, fmt.Errorf("governance: erase: stored data erased, realtime counters not: %w", err)
		}
	}
	s.log().Info("data subject erased", "site", sub.Site, "identity", sub.Identity, "events", out.Events,
		"sessions", out.Sessions, "rollup_days", len(out.RollupDays), "quarantined_events", out.Quarantined, "took", time.Since(start))
	if out.Unsearched > 0 {
		s.log().Warn("data subject erased, but quarantined staged rows that do not decode could not be searched for its events; "+
			"they go with the site's event retention, or once requeued and derived (the erasure's tombstone applies)",
			"site", sub.Site, "rows", out.Unsearched)
	}
	return out, nil
}

// keyText shows a key as 16 hex digits.
func keyText(k uint64) string {
	s := strconv.FormatUint(k, 16)
	for len(s) < 16 {
		s = "0" + s
	}
	return s
}
