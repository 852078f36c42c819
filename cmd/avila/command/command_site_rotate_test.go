package command

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/storage/postgres"
)

// TestSiteIdentity: --identity on create and update, and rotating the
// identity secret replaces it (agents get it with the config).
func TestSiteIdentity(t *testing.T) {
	db := migratedDB(t)
	env := map[string]string{"DATABASE_URL": db}
	code, stdout, stderr := runCLI(t, env, "site", "create", "--name", "Shop", "--domain", "shop.example", "--identity", "cookieless")
	if code != 0 {
		t.Fatalf("site create: exit %d: %s", code, stderr)
	}
	out := fields(t, stdout)
	if out["identity"] != "cookieless" {
		t.Fatalf("site create printed %q", stdout)
	}
	prop := out["property"]
	id, _ := strconv.ParseUint(prop, 10, 32)
	if code, _, stderr = runCLI(t, env, "site", "create", "--name", "Bad", "--domain", "b.example", "--identity", "fingerprint"); code != 2 || !strings.Contains(stderr, `identity "fingerprint": want cookie or cookieless`) {
		t.Fatalf("bad --identity: exit %d: %s; want 2 naming the value", code, stderr)
	}
	ctx := context.Background()
	store, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	before, err := store.Site(ctx, uint32(id))
	if err != nil {
		t.Fatal(err)
	}
	if len(before.IdentitySecret) != postgres.IdentitySecretLen || !before.IdentityRotated.IsZero() {
		t.Fatalf("new site: secret of %d bytes, rotated %v; want 32 bytes, never", len(before.IdentitySecret), before.IdentityRotated)
	}
	if code, stdout, stderr = runCLI(t, env, "site", "update", "--property", prop, "--identity", "cookie"); code != 0 || fields(t, stdout)["identity"] != "cookie" {
		t.Fatalf("site update --identity cookie: exit %d: %s %s", code, stdout, stderr)
	}
	if code, stdout, stderr = runCLI(t, env, "site", "rotate-identity-secret", "--property", prop); code != 0 || fields(t, stdout)["rotated"] == "" {
		t.Fatalf("rotate: exit %d: %s %s", code, stdout, stderr)
	}
	after, err := store.Site(ctx, uint32(id))
	if err != nil {
		t.Fatal(err)
	}
	if len(after.IdentitySecret) != postgres.IdentitySecretLen || bytes.Equal(after.IdentitySecret, before.IdentitySecret) ||
		after.IdentityRotated.IsZero() || after.Policy.Identity != "cookie" {
		t.Fatalf("after rotation: %+v; want a new 32-byte secret, a rotation time, the policy kept", after)
	}
	if code, _, stderr = runCLI(t, env, "site", "rotate-identity-secret", "--property", "999999"); code != 1 || !strings.Contains(stderr, "avila site list") {
		t.Fatalf("rotate unknown: exit %d: %s", code, stderr)
	}
}
