package command

import (
	"strings"
	"testing"
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
