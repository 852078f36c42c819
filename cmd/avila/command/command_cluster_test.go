package command

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/cluster"
	"github.com/avila-analytics/avila/aggregator/node"
)

func TestClusterStatus(t *testing.T) {
	st := node.ClusterStatus{Node: "b", State: "serving", Clustered: true, Load: 4, Agents: 2, Members: []cluster.Member{
		{Name: "a", State: "alive", Meta: cluster.Meta{QUICAddr: "127.0.0.2:4433", APIAddr: "127.0.0.2:8080", Load: 12.5, Agents: 3, Version: "v1", Protocol: 2}},
		{Name: "b", State: "alive", Self: true, Meta: cluster.Meta{QUICAddr: "127.0.0.3:4433", Load: 4, Agents: 2, Version: "v1", Protocol: 1}},
		{Name: "c", State: "suspect", Meta: cluster.Meta{QUICAddr: "127.0.0.4:4433", Draining: true}},
		{Name: "d", State: "dead", Meta: cluster.Meta{QUICAddr: "127.0.0.5:4433"}},
		{Name: "e", State: "alive", Meta: cluster.Meta{QUICAddr: "127.0.0.6:4433", Draining: true}},
	}, Staged: node.StagedStatus{Events: 1234, Sites: 2, OldestSeconds: 3.04, LookedAt: time.Now().Add(-time.Second),
		QuarantinedRows: 2, QuarantinedEvents: 57}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/cluster/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()

	code, stdout, stderr := runCLI(t, nil, "cluster", "status", "--operator", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	// The reports line's "looked … ago" depends on when the CLI ran
	// (stagedLine's own test has it).
	const reports = "reports: 1234 events staged on 2 sites, not in reports yet; the oldest staged 3s ago (looked"
	if len(lines) < 2 || !strings.HasPrefix(lines[1], reports) {
		t.Errorf("status:\n%s\nwant its second line to begin %q", stdout, reports)
	} else {
		lines[1] = reports
	}
	want := []string{"node b: serving, cluster of 4", reports,
		"quarantine: 2 staged rows (57 events) no derivation could take, in no report: 'avila staged list'",
		"", "NAME STATE QUIC API LOAD AGENTS VERSION BATCHES",
		"a alive 127.0.0.2:4433 127.0.0.2:8080 12.5/s 3 v1 v2",
		"b * alive 127.0.0.3:4433 4.0/s 2 v1 v1",
		"c suspect,draining 127.0.0.4:4433 0.0/s 0",
		"d dead 127.0.0.5:4433 0.0/s 0",
		"e draining 127.0.0.6:4433 0.0/s 0"}
	for i := range lines {
		lines[i] = strings.Join(strings.Fields(lines[i]), " ")
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("status table:\n%s\nwant (spacing aside):\n%s", stdout, strings.Join(want, "\n"))
	}

	// The address alone works too (AVILA_OPERATOR), and --json passes the answer through.
	env := map[string]string{"AVILA_OPERATOR": strings.TrimPrefix(srv.URL, "http://"), "AVILA_JSON": "true"}
	code, stdout, _ = runCLI(t, env, "cluster", "status")
	var got node.ClusterStatus
	if code != 0 || json.Unmarshal([]byte(stdout), &got) != nil || len(got.Members) != 5 || got.Members[2].Draining != true {
		t.Errorf("--json: exit %d, %s", code, stdout)
	}

	if code, stdout, _ = runCLI(t, env, "cluster", "status", "--json=false"); !strings.HasPrefix(stdout, "node b:") {
		t.Errorf("--json=false over AVILA_JSON: exit %d, %s", code, stdout)
	}
	env["AVILA_JSON"] = "maybe"
	if code, _, stderr = runCLI(t, env, "cluster", "status"); code != 2 || !strings.Contains(stderr, `AVILA_JSON="maybe"`) {
		t.Errorf("bad AVILA_JSON: exit %d, %s", code, stderr)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	code, _, stderr = runCLI(t, nil, "cluster", "status", "--operator", dead)
	if code != 1 || !strings.Contains(stderr, "is the aggregator running? check --operator") {
		t.Errorf("dead aggregator: exit %d, %s", code, stderr)
	}
}

func TestStagedLine(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		st   node.StagedStatus
		want string
	}{
		{node.StagedStatus{}, "backlog not looked at yet"},
		{node.StagedStatus{LookedAt: now.Add(-250 * time.Millisecond)}, "up to date, nothing staged (looked 300ms ago)"},
		{node.StagedStatus{Events: 5, Sites: 1, OldestSeconds: 0.42, LookedAt: now.Add(-2 * time.Second)},
			"5 events staged on 1 site, not in reports yet; the oldest staged 400ms ago (looked 2s ago)"},
		{node.StagedStatus{Events: 90000, Sites: 3, OldestSeconds: 75, LookedAt: now},
			"90000 events staged on 3 sites, not in reports yet; the oldest staged 1m15s ago (looked 0s ago)"},
	} {
		if got := stagedLine(c.st, now); got != c.want {
			t.Errorf("stagedLine(%+v) = %q, want %q", c.st, got, c.want)
		}
	}
}
