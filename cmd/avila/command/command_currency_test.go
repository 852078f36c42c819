package command

import (
	"strings"
	"testing"
)

func TestSiteKeyEventsAndCurrency(t *testing.T) {
	env := map[string]string{"DATABASE_URL": migratedDB(t)}
	code, stdout, stderr := runCLI(t, env, "site", "create", "--name", "Shop", "--domain", "shop.example")
	if code != 0 {
		t.Fatalf("site create: exit %d: %s", code, stderr)
	}
	prop := fields(t, stdout)["property"]
	code, stdout, stderr = runCLI(t, env, "site", "update", "--property", prop, "--key-events", "purchase,sign_up", "--currency", "eur")
	if code != 0 {
		t.Fatalf("site update: exit %d: %s", code, stderr)
	}
	if out := fields(t, stdout); out["key_events"] != "purchase,sign_up" || out["currency"] != "EUR" || out["dnt"] != "-" {
		t.Fatalf("site update printed %q", stdout)
	}
	// Only what is given changes.
	if code, stdout, _ = runCLI(t, env, "site", "update", "--property", prop, "--dnt", "drop"); code != 0 ||
		fields(t, stdout)["key_events"] != "purchase,sign_up" || fields(t, stdout)["currency"] != "EUR" {
		t.Fatalf("site update --dnt: exit %d, printed %q", code, stdout)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"site", "update", "--property", prop, "--currency", "EURO"}, "currency_code"},
		{[]string{"site", "update", "--property", prop, "--key-events", strings.Repeat("k", 41)}, "event_name_length"},
		{[]string{"currency", "set-rate", "--from", "EUR", "--rate", "2"}, "--to is required"},
		{[]string{"currency", "set-rate", "--from", "EUR", "--to", "USD"}, "--rate is required"},
		{[]string{"currency", "set-rate", "--from", "EUR", "--to", "eur", "--rate", "2"}, "never converted"},
		{[]string{"currency", "set-rate", "--from", "E1R", "--to", "USD", "--rate", "2"}, "currency_code"},
	} {
		if code, _, stderr := runCLI(t, env, c.args...); code != 2 || !strings.Contains(stderr, c.msg) {
			t.Fatalf("%q: exit %d: %s; want 2 and %q", c.args, code, stderr, c.msg)
		}
	}
	if code, _, stderr = runCLI(t, env, "currency", "set-rate", "--from", "usd", "--to", "EUR", "--rate", "0.9"); code != 0 {
		t.Fatalf("set-rate: exit %d: %s", code, stderr)
	}
	if code, _, stderr = runCLI(t, env, "currency", "set-rate", "--from", "USD", "--to", "EUR", "--rate", "0.92"); code != 0 {
		t.Fatalf("set-rate again: exit %d: %s", code, stderr)
	}
	code, stdout, stderr = runCLI(t, env, "currency", "list")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "USD EUR 0.92 ") {
		t.Fatalf("currency list: exit %d: %s\n%s", code, stderr, stdout)
	}
	if code, _, stderr = runCLI(t, env, "currency", "set-rate", "--from", "USD", "--to", "EUR", "--rate", "0"); code != 0 {
		t.Fatalf("delete rate: exit %d: %s", code, stderr)
	}
	if code, _, stderr = runCLI(t, env, "currency", "set-rate", "--from", "USD", "--to", "EUR", "--rate", "0"); code != 1 || !strings.Contains(stderr, "no rate") {
		t.Fatalf("delete missing rate: exit %d: %s", code, stderr)
	}
}
