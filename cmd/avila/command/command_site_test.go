package command

import (
	"strings"
	"testing"

	"github.com/avila-analytics/avila/internal/testenv"
)

// migratedDB returns the URL of a fresh database with the schema applied.
func migratedDB(t *testing.T) string {
	t.Helper()
	db := testenv.PostgresURL(t)
	if code, _, stderr := runCLI(t, nil, "migrate", "--database-url", db); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}
	return db
}

// fields parses "key  value" lines.
func fields(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for line := range strings.Lines(out) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			t.Fatalf("line %q is not 'key value'", line)
		}
		m[k] = strings.TrimSpace(v)
	}
	return m
}

func TestSiteCreateAndList(t *testing.T) {
	env := map[string]string{"DATABASE_URL": migratedDB(t)}
	code, stdout, stderr := runCLI(t, env, "site", "create", "--name", "Shop", "--domain", "Shop.example, www.shop.example",
		"--domain", "m.shop.example", "--timezone", "Europe/Madrid")
	if code != 0 {
		t.Fatalf("site create: exit %d: %s", code, stderr)
	}
	shop := fields(t, stdout)
	if shop["property"] == "" || !strings.HasPrefix(shop["measurement_id"], "G-") || shop["api_secret"] == "" {
		t.Fatalf("site create printed %q; want property, measurement_id G-…, api_secret", stdout)
	}

	// Flags fall back to AVILA_<FLAG>; a chosen measurement id is kept.
	env["AVILA_NAME"], env["AVILA_DOMAIN"], env["AVILA_MEASUREMENT_ID"] = "Blog", "blog.example", "G-KEEPTHIS1"
	code, stdout, stderr = runCLI(t, env, "site", "create")
	if code != 0 {
		t.Fatalf("site create from env: exit %d: %s", code, stderr)
	}
	blog := fields(t, stdout)
	if blog["measurement_id"] != "G-KEEPTHIS1" || blog["property"] == shop["property"] {
		t.Fatalf("site create from env printed %q", stdout)
	}
	// The same measurement id twice is refused.
	if code, _, stderr = runCLI(t, env, "site", "create"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("duplicate measurement id: exit %d: %s", code, stderr)
	}
	delete(env, "AVILA_MEASUREMENT_ID")
	if code, _, stderr = runCLI(t, env, "site", "create", "--timezone", "Mars/Olympus"); code != 1 || !strings.Contains(stderr, "Mars/Olympus") {
		t.Fatalf("bad time zone: exit %d: %s", code, stderr)
	}

	code, stdout, stderr = runCLI(t, env, "site", "list")
	if code != 0 {
		t.Fatalf("site list: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "PROPERTY") {
		t.Fatalf("site list: want a header and 2 sites, got:\n%s", stdout)
	}
	want := [][]string{
		{shop["property"], shop["measurement_id"], "Shop", "shop.example,www.shop.example,m.shop.example", "Europe/Madrid"},
		{blog["property"], "G-KEEPTHIS1", "Blog", "blog.example", "UTC"},
	}
	for i, w := range want {
		got := strings.Fields(lines[i+1])
		if len(got) < len(w) {
			t.Fatalf("site list row %q", lines[i+1])
		}
		for j := range w {
			if got[j] != w[j] {
				t.Errorf("site list row %d column %d = %q, want %q", i, j, got[j], w[j])
			}
		}
	}
}
