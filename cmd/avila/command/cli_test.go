package command

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		// The demo test runs this binary as the avila command.
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
	}
	os.Exit(testenv.Run(m))
}

// runMainEnv makes the test binary behave as the avila binary.
const runMainEnv = "AVILA_CLI_TEST_RUN_MAIN"

// runCLI runs avila in-process with only env as its environment.
func runCLI(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	code = newCLI(&out, &errOut, lookup).run(args)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	verbs := []string{"demo", "migrate", "site create", "site list", "site update", "key create", "key list", "key revoke"}
	f := func(args []string, wantCode int, wantStdout bool, want ...string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != wantCode {
			t.Fatalf("avila %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout, stderr)
		}
		got := stderr
		if wantStdout {
			got = stdout
		}
		for _, w := range want {
			if !strings.Contains(got, w) {
				t.Errorf("avila %q: output lacks %q:\n%s", args, w, got)
			}
		}
	}
	f(nil, 2, false, verbs...)
	f([]string{"frobnicate"}, 2, false, append([]string{`unknown command "frobnicate"`}, verbs...)...)
	f([]string{"site"}, 2, false, `"site" needs a verb`, "site create", "site list", "site update")
	f([]string{"site", "delete"}, 2, false, `unknown command "site delete"`, "site create")
	f([]string{"certs"}, 2, false, `"certs" needs a verb`, "certs init", "certs issue")
	f([]string{"help", "certs"}, 0, true, "Usage: avila certs <command>", "certs init", "certs issue")
	f([]string{"help", "key"}, 0, true, "key create", "key list", "key revoke")
	f([]string{"help", "cluster"}, 0, true, "cluster status")
	f([]string{"help", "certs", "revoke"}, 2, false, `unknown command "certs revoke"`, "certs issue")
	f([]string{"help"}, 0, true, verbs...)
	f([]string{"--help"}, 0, true, verbs...)
	f([]string{"help", "site", "create"}, 0, true, "avila site create", "-name", "-domain", "-timezone", "AVILA_DOMAIN", "DATABASE_URL")
	f([]string{"help", "key", "revoke"}, 0, true, "-id", "AVILA_ID")
	f([]string{"help", "demo"}, 0, true, "-data-dir", "-agent-listen", "-api-listen", "-quic-listen", "-traffic", "AVILA_TRAFFIC")
	f([]string{"help", "nope"}, 2, false, `unknown command "nope"`)
	f([]string{"report"}, 2, false, "--property is required")
	f([]string{"site", "list", "extra"}, 2, false, `unexpected arguments ["extra"]`, "Usage: avila site list")
	f([]string{"site", "list", "--no-such-flag"}, 2, false, "-no-such-flag", "Usage: avila site list")
	f([]string{"site", "create", "--domain", "a.example"}, 2, false, "--name is required")
	f([]string{"key", "create", "--property", "x"}, 2, false, `--property "x": want a property id`)
	f([]string{"key", "create", "--property", "0"}, 2, false, `--property "0"`)
	f([]string{"key", "revoke"}, 2, false, "--id is required")
	f([]string{"site", "list"}, 1, false, "no database: set --database-url or DATABASE_URL")
}

// Every group of verbs ("site" for site create, list and update) has its
// own help listing exactly its verbs, whichever groups exist.
func TestHelpGroups(t *testing.T) {
	groups := map[string][]string{}
	for _, v := range Verbs() {
		if first, _, ok := strings.Cut(v.Name, " "); ok {
			groups[first] = append(groups[first], v.Name)
		}
	}
	for _, want := range []string{"site", "key", "certs", "cluster"} {
		if len(groups[want]) == 0 {
			t.Errorf("no verbs in group %q", want)
		}
	}
	for g, verbs := range groups {
		code, stdout, stderr := runCLI(t, nil, "help", g)
		if code != 0 {
			t.Fatalf("avila help %s: exit %d\n%s", g, code, stderr)
		}
		listed := 0
		for _, line := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(line, "  "+g+" ") {
				listed++
			}
		}
		if listed != len(verbs) {
			t.Errorf("avila help %s lists %d verbs, want %d (%q):\n%s", g, listed, len(verbs), verbs, stdout)
		}
		for _, v := range verbs {
			if !strings.Contains(stdout, "  "+v+" ") {
				t.Errorf("avila help %s lacks %q:\n%s", g, v, stdout)
			}
		}
	}
}
