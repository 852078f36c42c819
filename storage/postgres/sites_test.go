package postgres

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCreateSite(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, err := s.CreateSite(ctx, SiteSpec{Name: "Blog", Domains: []string{" Example.COM ", ""}, TimeZone: "Europe/Madrid"})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^G-[A-Z0-9]{10}$`).MatchString(a.MeasurementID) {
		t.Errorf("generated measurement id %q", a.MeasurementID)
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{22,}$`).MatchString(a.APISecret) {
		t.Errorf("api secret %q", a.APISecret)
	}
	if a.ID == 0 || a.Name != "Blog" || a.TimeZone != "Europe/Madrid" || a.CurrencyCode != "USD" || a.CreatedAt.IsZero() {
		t.Errorf("site %+v", a)
	}
	if diff := cmp.Diff([]string{"example.com"}, a.Domains); diff != "" {
		t.Errorf("domains (-want +got):\n%s", diff)
	}
	b, err := s.CreateSite(ctx, SiteSpec{MeasurementID: "G-FIXED12345"})
	if err != nil {
		t.Fatal(err)
	}
	if b.TimeZone != "UTC" || b.Name != "G-FIXED12345" || b.APISecret == a.APISecret {
		t.Errorf("defaults: %+v", b)
	}
	if _, err := s.CreateSite(ctx, SiteSpec{MeasurementID: "G-FIXED12345"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate measurement id: err %v, want ErrExists", err)
	}
	if _, err := s.CreateSite(ctx, SiteSpec{Name: "x", TimeZone: "Mars/Olympus"}); err == nil {
		t.Error("unknown time zone accepted")
	}

	got, err := s.Site(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("Site (-created +read):\n%s", diff)
	}
	if _, err := s.Site(ctx, 999999); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing site: err %v, want ErrNotFound", err)
	}
	all, err := s.Sites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Site{a, b}, all); diff != "" {
		t.Errorf("Sites (-want +got):\n%s", diff)
	}
}

func TestAPIKeys(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, _ := s.CreateSite(ctx, SiteSpec{Name: "a"})
	b, _ := s.CreateSite(ctx, SiteSpec{Name: "b"})
	key, err := s.CreateAPIKey(ctx, "reports", []uint32{a.ID, b.ID, a.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^avk_[a-z2-7]{32}$`).MatchString(key) {
		t.Fatalf("key %q", key)
	}
	ids, err := s.LookupAPIKey(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]uint32{a.ID, b.ID}, ids); diff != "" {
		t.Errorf("site ids (-want +got):\n%s", diff)
	}
	var stored int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM api_keys WHERE key_hash = $1::bytea", []byte(key)).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("key stored in clear (count %d, err %v)", stored, err)
	}

	changed := "x" // a key that differs in its last character
	if key[len(key)-1] == 'x' {
		changed = "y"
	}
	for _, bad := range []string{"", "avk_", key[:len(key)-1] + changed, "Bearer " + key} {
		if _, err := s.LookupAPIKey(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("LookupAPIKey(%q): err %v, want ErrNotFound", bad, err)
		}
	}
	if _, err := s.CreateAPIKey(ctx, "x", []uint32{a.ID, 424242}); !errors.Is(err, ErrNotFound) {
		t.Errorf("key for a missing site: err %v, want ErrNotFound", err)
	}
	if _, err := s.CreateAPIKey(ctx, "x", nil); err == nil {
		t.Error("key for no site accepted")
	}

	other, _ := s.CreateAPIKey(ctx, "other", []uint32{b.ID})
	if err := s.RevokeAPIKey(ctx, key[:KeyPrefixLen]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupAPIKey(ctx, key); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked key still works: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, key[:KeyPrefixLen]); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice: err %v, want ErrNotFound", err)
	}
	if _, err := s.LookupAPIKey(ctx, other); err != nil {
		t.Errorf("revoking one key affected another: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, other); err != nil {
		t.Errorf("revoke by whole key: %v", err)
	}
	keys, err := s.APIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].Prefix != key[:KeyPrefixLen] || keys[0].Name != "reports" || keys[0].RevokedAt == nil || keys[1].RevokedAt == nil {
		t.Errorf("APIKeys = %+v", keys)
	}
}

func TestSitePolicy(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, err := s.CreateSite(ctx, SiteSpec{Name: "a", Policy: SitePolicy{DNT: "cookieless", KeepParams: []string{" Ref ", "ref", "", "page"}}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(SitePolicy{DNT: "cookieless", KeepParams: []string{"ref", "page"}, Identity: IdentityCookie}, a.Policy); diff != "" {
		t.Errorf("created policy (-want +got):\n%s", diff)
	}
	b, err := s.CreateSite(ctx, SiteSpec{Name: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(SitePolicy{KeepParams: []string{}, Identity: IdentityCookie}, b.Policy); diff != "" {
		t.Errorf("default policy (-want +got):\n%s", diff)
	}
	if _, err := s.CreateSite(ctx, SiteSpec{Name: "c", Policy: SitePolicy{DNT: "maybe"}}); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("dnt maybe: err %v, want ErrBadPolicy", err)
	}
	if _, err := s.CreateSite(ctx, SiteSpec{Name: "c", Policy: SitePolicy{KeepParams: []string{"a=b"}}}); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("keep param a=b: err %v, want ErrBadPolicy", err)
	}
	if _, err := s.CreateSite(ctx, SiteSpec{Name: "c", Policy: SitePolicy{Identity: "fingerprint"}}); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("identity fingerprint: err %v, want ErrBadPolicy", err)
	}
	up, err := s.SetSitePolicy(ctx, b.ID, SitePolicy{DNT: "ignore", KeepParams: []string{"Q"}, Identity: IdentityCookieless})
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Sites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !cmp.Equal(all[1], up) || !cmp.Equal(up.Policy, SitePolicy{DNT: "ignore", KeepParams: []string{"q"}, Identity: IdentityCookieless}) {
		t.Errorf("after SetSitePolicy: %+v", all)
	}
	if _, err := s.SetSitePolicy(ctx, 999999, SitePolicy{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing site: err %v, want ErrNotFound", err)
	}
	if _, err := s.SetSitePolicy(ctx, b.ID, SitePolicy{DNT: "x"}); !errors.Is(err, ErrBadPolicy) {
		t.Errorf("bad update: err %v, want ErrBadPolicy", err)
	}
}
