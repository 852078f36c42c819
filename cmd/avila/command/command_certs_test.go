package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

func TestCertsInitAndIssue(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	env := map[string]string{"AVILA_DIR": dir}
	f := func(wantCode int, want string, args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, env, args...)
		if code != wantCode || !strings.Contains(stdout+stderr, want) {
			t.Fatalf("avila %q: exit %d, want %d with %q\nstdout: %s\nstderr: %s", args, code, wantCode, want, stdout, stderr)
		}
		return stdout
	}
	f(1, "no CA in "+dir+" (run `avila certs init", "certs", "issue", "--agent", "edge-1")
	ca := strings.TrimSpace(f(0, "ca.pem", "certs", "init"))
	f(1, "a CA already exists", "certs", "init")
	agent := strings.Fields(f(0, "agent-edge-1.pem", "certs", "issue", "--agent", "edge-1"))
	agg := strings.Fields(f(0, "aggregator-agg-1.pem", "certs", "issue", "--aggregator", "agg-1", "--host", "10.0.0.7", "--days", "30"))
	if len(agent) != 2 || len(agg) != 2 {
		t.Fatalf("printed %q and %q, want certificate and key paths", agent, agg)
	}
	if fi, err := os.Stat(agent[1]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("agent key %v %v, want mode 0600", fi.Mode(), err)
	}
	// What was issued works for mTLS as the aggregator and agent load it.
	if _, err := protocol.ServerTLS(agg[0], agg[1], ca); err != nil {
		t.Error(err)
	}
	if _, err := protocol.ClientTLS(ca, agent[0], agent[1]); err != nil {
		t.Error(err)
	}

	f(2, "--agent NAME or --aggregator NAME is required", "certs", "issue")
	f(2, "not both", "certs", "issue", "--agent", "a", "--aggregator", "b")
	f(2, "--host goes with --aggregator", "certs", "issue", "--agent", "a", "--host", "x")
	f(2, `--days "0"`, "certs", "issue", "--agent", "a", "--days", "0")
	f(1, `name "a b"`, "certs", "issue", "--agent", "a b")
}
