package command

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/query"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestSitePolicyFlags(t *testing.T) {
	env := map[string]string{"DATABASE_URL": migratedDB(t)}
	code, stdout, stderr := runCLI(t, env, "site", "create", "--name", "Shop", "--domain", "shop.example",
		"--dnt", "cookieless", "--keep-param", "Page,ref", "--keep-param", "lang")
	if code != 0 {
		t.Fatalf("site create: exit %d: %s", code, stderr)
	}
	prop := fields(t, stdout)["property"]
	if code, _, stderr = runCLI(t, env, "site", "create", "--name", "Bad", "--domain", "b.example", "--dnt", "sometimes"); code != 2 || !strings.Contains(stderr, "sometimes") {
		t.Fatalf("bad --dnt: exit %d: %s; want 2 naming the value", code, stderr)
	}
	listRow := func() []string {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, "site", "list")
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		if code != 0 || len(lines) != 2 {
			t.Fatalf("site list: exit %d: %s\n%s", code, stderr, stdout)
		}
		f := strings.Fields(lines[1])
		return f[len(f)-4 : len(f)-2]
	}
	if got := listRow(); got[0] != "cookieless" || got[1] != "page,ref,lang" {
		t.Fatalf("site list policy columns %q, want cookieless page,ref,lang", got)
	}

	// update changes only what it is given.
	code, stdout, stderr = runCLI(t, env, "site", "update", "--property", prop, "--dnt", "ignore")
	if code != 0 {
		t.Fatalf("site update: exit %d: %s", code, stderr)
	}
	if out := fields(t, stdout); out["dnt"] != "ignore" || out["keep_params"] != "page,ref,lang" {
		t.Fatalf("site update --dnt printed %q", stdout)
	}
	env["AVILA_KEEP_PARAM"] = ""
	if code, stdout, stderr = runCLI(t, env, "site", "update", "--property", prop, "--dnt", ""); code != 0 {
		t.Fatalf("site update clearing: exit %d: %s", code, stderr)
	}
	delete(env, "AVILA_KEEP_PARAM")
	if out := fields(t, stdout); out["dnt"] != "-" || out["keep_params"] != "-" {
		t.Fatalf("site update clearing printed %q", stdout)
	}
	if got := listRow(); got[0] != "-" || got[1] != "-" {
		t.Fatalf("site list after clearing: %q", got)
	}

	f := func(want int, msg string, args ...string) {
		t.Helper()
		code, _, stderr := runCLI(t, env, append([]string{"site", "update"}, args...)...)
		if code != want || !strings.Contains(stderr, msg) {
			t.Fatalf("site update %q: exit %d: %s; want %d and %q", args, code, stderr, want, msg)
		}
	}
	f(2, "--property is required", "--dnt", "drop")
	f(2, "nothing to change", "--property", prop)
	f(1, "avila site list", "--property", "999999", "--dnt", "drop")
	f(2, "not a query parameter name", "--property", prop, "--keep-param", "a=b")
}

// TestSiteQuotaFlags: site update sets and restores a site's Data API
// quota limits, which the store then holds for the aggregators.
func TestSiteQuotaFlags(t *testing.T) {
	db := migratedDB(t)
	env := map[string]string{"DATABASE_URL": db}
	code, stdout, stderr := runCLI(t, env, "site", "create", "--name", "Quota", "--domain", "q.example")
	if code != 0 {
		t.Fatalf("site create: exit %d: %s", code, stderr)
	}
	prop := fields(t, stdout)["property"]
	code, stdout, stderr = runCLI(t, env, "site", "update", "--property", prop, "--quota-tokens-per-hour", "500",
		"--quota-concurrent-requests", "3")
	if code != 0 {
		t.Fatalf("site update --quota-…: exit %d: %s", code, stderr)
	}
	out := fields(t, stdout)
	if out["tokens-per-hour"] != "500" || out["concurrent-requests"] != "3" || out["tokens-per-day"] != "default (200000)" || out["dnt"] != "-" {
		t.Fatalf("site update printed %q", stdout)
	}
	// Other flags keep the quotas; 0 restores one default.
	code, stdout, stderr = runCLI(t, env, "site", "update", "--property", prop, "--quota-tokens-per-hour", "0", "--dnt", "drop")
	if out := fields(t, stdout); code != 0 || out["tokens-per-hour"] != "default (40000)" || out["concurrent-requests"] != "3" || out["dnt"] != "drop" {
		t.Fatalf("site update restoring: exit %d: %s %s", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, env, "site", "update", "--property", prop, "--quota-tokens-per-day", "-5")
	if code != 2 || !strings.Contains(stderr, "--quota-tokens-per-day -5") {
		t.Fatalf("negative quota: exit %d: %s; want 2 naming the flag", code, stderr)
	}
	store, err := postgres.Open(context.Background(), db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	id, _ := strconv.ParseUint(prop, 10, 32)
	q, err := store.SiteQuota(context.Background(), uint32(id))
	if err != nil || q != (postgres.SiteQuota{ConcurrentRequests: 3}) {
		t.Fatalf("stored quota %+v, %v; want concurrent 3, the rest default", q, err)
	}
}

// TestQuotaHelpDefaults: each quota flag's help names the default the
// aggregators apply.
func TestQuotaHelpDefaults(t *testing.T) {
	for _, f := range siteQuotaFlags {
		def := strconv.FormatInt(f.def(query.DefaultQuotaLimits()), 10)
		if !strings.HasSuffix(quotaHelp[f.name], "default, "+def) {
			t.Errorf("--%s help %q does not end with its default %s", f.name, quotaHelp[f.name], def)
		}
	}
}
