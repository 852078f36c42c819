package collect

import (
	"errors"
	"fmt"
	"time"

	"github.com/avila-analytics/avila/agent/privacy"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/identity"
)

// Sites is the agent's view of one site config from the aggregator: which
// measurement ids it records for and their daily salts. It is immutable, so
// a new config replaces it whole while requests keep using the old one.
type Sites struct {
	byMeasurementID map[string]*protocol.Site
	salts           *privacy.Salts
	hashers         map[uint32]*identity.Hasher // by site id; none for a site without an identity secret
	list            []protocol.Site
}

// NewSites indexes cfg. Unusable entries (a salt of the wrong size, an empty
// or repeated measurement id) are left out and described in the returned
// error; the Sites returned is usable either way.
func NewSites(cfg *protocol.Config) (*Sites, error) {
	s := &Sites{byMeasurementID: map[string]*protocol.Site{}, hashers: map[uint32]*identity.Hasher{}}
	if cfg == nil {
		return s, nil
	}
	var errs []error
	s.list = make([]protocol.Site, 0, len(cfg.Sites))
	owner := make(map[string]uint32, len(cfg.Sites))
	for _, site := range cfg.Sites {
		if site.MeasurementID == "" {
			errs = append(errs, fmt.Errorf("collect: site %d has no measurement id", site.ID))
			continue
		}
		if first, dup := owner[site.MeasurementID]; dup {
			errs = append(errs, fmt.Errorf("collect: measurement id %s belongs to sites %d and %d; keeping %d",
				site.MeasurementID, first, site.ID, first))
			continue
		}
		owner[site.MeasurementID] = site.ID
		switch p := site.Identity; p {
		case "", protocol.IdentityCookie, protocol.IdentityCookieless:
		default:
			errs = append(errs, fmt.Errorf("collect: site %d: identity policy %q unknown; treating it as %s",
				site.ID, p, protocol.IdentityCookieless))
			site.Identity = protocol.IdentityCookieless
		}
		if len(site.IdentitySecret) > 0 {
			h, err := identity.New(site.ID, site.IdentitySecret)
			if err != nil {
				errs = append(errs, fmt.Errorf("collect: %w; its hits get daily cookieless ids", err))
			} else {
				s.hashers[site.ID] = h
			}
		}
		site.IdentitySecret = nil // kept in the hasher only
		s.list = append(s.list, site)
	}
	for i := range s.list {
		s.byMeasurementID[s.list[i].MeasurementID] = &s.list[i]
	}
	salts, err := privacy.NewSalts(cfg.Salts)
	if err != nil {
		errs = append(errs, err)
	}
	s.salts = salts
	return s, errors.Join(errs...)
}

// Lookup returns the site a measurement id (GA4 tid) belongs to.
func (s *Sites) Lookup(measurementID string) (*protocol.Site, bool) {
	site, ok := s.byMeasurementID[measurementID]
	return site, ok
}

// Key returns the visitor-id key of site for t's UTC day, or a
// *privacy.NoSaltError.
func (s *Sites) Key(site uint32, t time.Time) (*privacy.Key, error) {
	return s.salts.For(site, t)
}

// Identity returns the identity hasher of site (its long-lived secret),
// nil when the config gave none: then its hits get daily cookieless ids.
func (s *Sites) Identity(site uint32) *identity.Hasher {
	return s.hashers[site]
}

// Len is the number of sites hits are accepted for.
func (s *Sites) Len() int { return len(s.list) }

// Ready returns nil when at least one site can record hits at now (it has a
// salt for now's UTC day), else why not.
func (s *Sites) Ready(now time.Time) error {
	if len(s.list) == 0 {
		return errors.New("the site config has no sites yet; create one on the aggregator")
	}
	var first error
	for i := range s.list {
		_, err := s.salts.For(s.list[i].ID, now)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	return first
}
