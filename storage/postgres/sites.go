package postgres

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SiteSpec describes a site to create.
type SiteSpec struct {
	Name string
	// MeasurementID is the GA4 id senders use; generated ("G-" + 10
	// upper-case letters and digits) when empty.
	MeasurementID string
	Domains       []string // own host names, lower-cased on write
	TimeZone      string   // IANA name; UTC when empty
	Policy        SitePolicy
}

// SitePolicy is what agents apply at the edge for a site, beside their own
// flags.
type SitePolicy struct {
	// DNT is what a browser hit with DNT: 1 or Sec-GPC: 1 becomes: "drop",
	// "cookieless" or "ignore"; "" leaves it to the agent's --dnt.
	DNT string
	// KeepParams are page and referrer query parameters kept beyond utm_*
	// and gclid; lower-cased on write.
	KeepParams []string
	// Identity is the identity policy for hits without a consent signal:
	// IdentityCookie (the default, also for "") or IdentityCookieless.
	Identity string
}

// Identity policies (SitePolicy.Identity), as protocol.Site carries them.
const (
	IdentityCookie     = "cookie"
	IdentityCookieless = "cookieless"
)

// ErrBadPolicy: a SitePolicy value is not one of the accepted ones.
var ErrBadPolicy = errors.New("bad site policy")

// normalize checks p and lower-cases, trims and de-duplicates KeepParams.
func (p SitePolicy) normalize() (SitePolicy, error) {
	switch p.DNT {
	case "", "drop", "cookieless", "ignore":
	default:
		return p, fmt.Errorf("dnt %q: want drop, cookieless or ignore (or empty for the agent's --dnt): %w", p.DNT, ErrBadPolicy)
	}
	switch p.Identity {
	case "":
		p.Identity = IdentityCookie
	case IdentityCookie, IdentityCookieless:
	default:
		return p, fmt.Errorf("identity %q: want cookie or cookieless: %w", p.Identity, ErrBadPolicy)
	}
	keep := make([]string, 0, len(p.KeepParams))
	for _, k := range p.KeepParams {
		k = strings.ToLower(strings.TrimSpace(k))
		if k == "" || slices.Contains(keep, k) {
			continue
		}
		if strings.ContainsAny(k, "&=#? ") {
			return p, fmt.Errorf("keep param %q: not a query parameter name: %w", k, ErrBadPolicy)
		}
		keep = append(keep, k)
	}
	p.KeepParams = keep
	return p, nil
}

// Site is a property.
type Site struct {
	ID            uint32
	MeasurementID string
	APISecret     string // Measurement Protocol secret
	Name          string
	Domains       []string
	TimeZone      string
	CurrencyCode  string
	CreatedAt     time.Time
	Policy        SitePolicy
	// IdentitySecret is the site's long-lived key for client ids and
	// user_ids (protocol/identity); IdentityRotated when an operator last
	// replaced it (zero: never).
	IdentitySecret  []byte
	IdentityRotated time.Time
}

const siteColumns = "id, measurement_id, api_secret, name, domains, time_zone, currency_code, created_at, dnt, keep_params, " +
	"identity, identity_secret, identity_rotated_at"

// measurementAlphabet is what GA4 measurement ids are made of.
const measurementAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// CreateSite creates a site with a fresh Measurement Protocol secret.
// A taken measurement id gives ErrExists.
func (s *Store) CreateSite(ctx context.Context, spec SiteSpec) (Site, error) {
	tz := spec.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return Site{}, fmt.Errorf("postgres: create site: time zone %q: %w", tz, err)
	}
	domains := make([]string, 0, len(spec.Domains))
	for _, d := range spec.Domains {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			domains = append(domains, d)
		}
	}
	policy, err := spec.Policy.normalize()
	if err != nil {
		return Site{}, fmt.Errorf("postgres: create site: %w", err)
	}
	generated := spec.MeasurementID == ""
	// A generated id collides with probability ~36^-10; retry a few times anyway.
	for attempt := 0; ; attempt++ {
		mid := spec.MeasurementID
		if generated {
			mid = "G-" + randomString(measurementAlphabet, 10)
		}
		name := spec.Name
		if name == "" {
			name = mid
		}
		// The site gets today's and tomorrow's visitor salts with it, so
		// agents can count its visitors as soon as they fetch the config
		// instead of after the next upkeep run.
		today := utcDay(time.Now())
		days := []time.Time{today, today.AddDate(0, 0, 1)}
		salts := [][]byte{randomBytes(SaltLen), randomBytes(SaltLen)}
		row := s.pool.QueryRow(ctx, `WITH site AS (
				INSERT INTO sites (measurement_id, api_secret, name, domains, time_zone, dnt, keep_params, identity, identity_secret)
				VALUES ($1, $2, $3, $4, $5, $8, $9, $10, $11) RETURNING `+siteColumns+`
			), salt AS (
				INSERT INTO salts (site_id, day, salt)
				SELECT site.id, k.day, k.salt FROM site, unnest($6::date[], $7::bytea[]) AS k(day, salt)
			)
			SELECT `+siteColumns+` FROM site`, mid, randomToken(16), name, domains, tz, days, salts, policy.DNT, policy.KeepParams,
			policy.Identity, randomBytes(IdentitySecretLen))
		site, err := scanSite(row)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			if generated && attempt < 5 {
				continue
			}
			return Site{}, fmt.Errorf("postgres: create site: measurement id %s: %w", mid, ErrExists)
		}
		if err != nil {
			return Site{}, fmt.Errorf("postgres: create site: %w", err)
		}
		return site, nil
	}
}

// Sites lists all sites by id.
func (s *Store) Sites(ctx context.Context) ([]Site, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+siteColumns+" FROM sites ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("postgres: list sites: %w", err)
	}
	sites, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Site, error) { return scanSite(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list sites: %w", err)
	}
	return sites, nil
}

// Site returns one site, or ErrNotFound.
func (s *Store) Site(ctx context.Context, id uint32) (Site, error) {
	site, err := scanSite(s.pool.QueryRow(ctx, "SELECT "+siteColumns+" FROM sites WHERE id = $1", int64(id)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Site{}, fmt.Errorf("postgres: site %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Site{}, fmt.Errorf("postgres: site %d: %w", id, err)
	}
	return site, nil
}

// SetSitePolicy replaces a site's edge policy; agents pick it up with
// their next config fetch. An unknown site gives ErrNotFound.
func (s *Store) SetSitePolicy(ctx context.Context, id uint32, p SitePolicy) (Site, error) {
	p, err := p.normalize()
	if err != nil {
		return Site{}, fmt.Errorf("postgres: site %d policy: %w", id, err)
	}
	site, err := scanSite(s.pool.QueryRow(ctx, "UPDATE sites SET dnt = $2, keep_params = $3, identity = $4 WHERE id = $1 RETURNING "+siteColumns,
		int64(id), p.DNT, p.KeepParams, p.Identity))
	if errors.Is(err, pgx.ErrNoRows) {
		return Site{}, fmt.Errorf("postgres: site %d policy: %w", id, ErrNotFound)
	}
	if err != nil {
		return Site{}, fmt.Errorf("postgres: site %d policy: %w", id, err)
	}
	return site, nil
}

// IdentitySecretLen is the size of a site's identity secret
// (protocol/identity.SecretLen).
const IdentitySecretLen = 32

// RotateIdentitySecret replaces a site's identity secret with a fresh
// random one. Agents use it from their next config fetch: every returning
// device and signed-in user of the site is a new user from then on, and
// the keys stored before can no longer be recomputed from a client id or
// user_id (a data subject's request then finds only what was stored
// since). An unknown site gives ErrNotFound.
func (s *Store) RotateIdentitySecret(ctx context.Context, id uint32) (Site, error) {
	site, err := scanSite(s.pool.QueryRow(ctx, `UPDATE sites SET identity_secret = $2, identity_rotated_at = now()
		WHERE id = $1 RETURNING `+siteColumns, int64(id), randomBytes(IdentitySecretLen)))
	if errors.Is(err, pgx.ErrNoRows) {
		return Site{}, fmt.Errorf("postgres: site %d: rotate identity secret: %w", id, ErrNotFound)
	}
	if err != nil {
		return Site{}, fmt.Errorf("postgres: site %d: rotate identity secret: %w", id, err)
	}
	return site, nil
}

func scanSite(row pgx.Row) (Site, error) {
	var st Site
	var id int32
	var rotated *time.Time
	err := row.Scan(&id, &st.MeasurementID, &st.APISecret, &st.Name, &st.Domains, &st.TimeZone, &st.CurrencyCode, &st.CreatedAt,
		&st.Policy.DNT, &st.Policy.KeepParams, &st.Policy.Identity, &st.IdentitySecret, &rotated)
	if rotated != nil {
		st.IdentityRotated = *rotated
	}
	st.ID = uint32(id)
	if st.Domains == nil {
		st.Domains = []string{}
	}
	if st.Policy.KeepParams == nil {
		st.Policy.KeepParams = []string{}
	}

	return st, err
}

// randomString returns n characters drawn uniformly from alphabet.
func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[randIntn(len(alphabet))]
	}
	return string(b)
}

// randomToken returns n random bytes as unpadded URL-safe base64
// (16 bytes → 22 characters).
func randomToken(n int) string {
	// crypto/rand.Read never fails (it crashes the program instead).
	return base64.RawURLEncoding.EncodeToString(randomBytes(n))
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// randIntn returns a uniform random int in [0, n) for small n, by rejection
// sampling so no character is more likely than another.
func randIntn(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		_, _ = rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// siteUpdateErr wraps the error of an UPDATE … RETURNING of site id's what.
func siteUpdateErr(id uint32, what string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: site %d %s: %w", id, what, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: site %d %s: %w", id, what, err)
	}
	return nil
}
