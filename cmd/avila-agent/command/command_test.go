package command

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/agent"
	"github.com/avila-analytics/avila/agent/collect"
	"github.com/avila-analytics/avila/protocol"
)

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestFlagsAndEnv(t *testing.T) {
	// Defaults.
	o, err := Parse(nil, mapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := agent.Config{Listen: "127.0.0.1:8090", DataDir: "./data/agent", Aggregators: []string{"127.0.0.1:4433"}}
	if got := o.Agent; got.Listen != want.Listen || got.DataDir != want.DataDir || strings.Join(got.Aggregators, ",") != "127.0.0.1:4433" ||
		got.CAFile != "" || got.QueueMaxBytes != 0 || o.LogFormat != "text" || o.LogLevel != "info" || got.QueueKeyFile != "" || got.GeoIPDB != "" {
		t.Fatalf("defaults: %+v", o)
	}

	// Every flag from the environment.
	env := mapEnv(map[string]string{
		"AVILA_LISTEN": "127.0.0.1:0", "AVILA_DATA_DIR": "/srv/a", "AVILA_AGGREGATOR": "a:1, b:2,,",
		"AVILA_CA": "/etc/ca.pem", "AVILA_QUEUE_MAX_BYTES": "1048576", "AVILA_LOG_FORMAT": "json", "AVILA_LOG_LEVEL": "debug",
		"AVILA_QUEUE_KEY_FILE": "/etc/avila/queue.key", "AVILA_GEOIP_DB": "/var/lib/GeoLite2-City.mmdb",
	})
	o, err = Parse(nil, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.Agent; got.Listen != "127.0.0.1:0" || got.DataDir != "/srv/a" || strings.Join(got.Aggregators, ",") != "a:1,b:2" ||
		got.CAFile != "/etc/ca.pem" || got.QueueMaxBytes != 1<<20 || o.LogFormat != "json" || o.LogLevel != "debug" ||
		got.QueueKeyFile != "/etc/avila/queue.key" || got.GeoIPDB != "/var/lib/GeoLite2-City.mmdb" {
		t.Fatalf("from env: %+v", o)
	}

	// Flags win over the environment.
	o, err = Parse([]string{"--data-dir", "/x", "--aggregator", "c:3", "--queue-max-bytes", "5", "--geoip-db", "/g.mmdb"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Agent.DataDir != "/x" || strings.Join(o.Agent.Aggregators, ",") != "c:3" || o.Agent.QueueMaxBytes != 5 || o.Agent.CAFile != "/etc/ca.pem" ||
		o.Agent.GeoIPDB != "/g.mmdb" || o.Agent.QueueKeyFile != "/etc/avila/queue.key" {
		t.Fatalf("flags over env: %+v", o)
	}

	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{env: map[string]string{"AVILA_QUEUE_MAX_BYTES": "big"}, want: `AVILA_QUEUE_MAX_BYTES="big": want an integer (it sets --queue-max-bytes)`},
		{args: []string{"--listen"}, want: "flag needs an argument: -listen"},
		{args: []string{"extra"}, want: `unexpected arguments ["extra"]`},
	} {
		if _, err := Parse(tc.args, mapEnv(tc.env), io.Discard); err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q, %v) error %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
}

func TestEdgePolicyFlags(t *testing.T) {
	o, err := Parse(nil, mapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a := o.Agent; a.TrustedProxies != nil || a.RatePerIP != (collect.Rate{}) || a.RatePerSite != (collect.Rate{}) ||
		a.DoNotTrack != collect.DNTDrop || a.MPStrict {
		t.Fatalf("defaults: %+v", a)
	}
	env := mapEnv(map[string]string{"AVILA_TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1", "AVILA_RATE_IP": "20:100",
		"AVILA_RATE_SITE": "500", "AVILA_DNT": "cookieless", "AVILA_MP_STRICT": "true"})
	o, err = Parse(nil, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a := o.Agent
	if fmt.Sprint(a.TrustedProxies) != "[10.0.0.0/8 127.0.0.1/32]" || a.RatePerIP != (collect.Rate{PerSecond: 20, Burst: 100}) ||
		a.RatePerSite != (collect.Rate{PerSecond: 500, Burst: 500}) || a.DoNotTrack != collect.DNTCookieless || !a.MPStrict {
		t.Fatalf("from env: %+v", a)
	}
	o, err = Parse([]string{"--dnt", "ignore", "--rate-ip", "0", "--mp-strict=false"}, env, io.Discard)
	if err != nil || o.Agent.DoNotTrack != collect.DNTIgnore || o.Agent.RatePerIP != (collect.Rate{}) || o.Agent.MPStrict {
		t.Fatalf("flags over env: %+v %v", o.Agent, err)
	}
	for args, want := range map[string]string{
		"--trusted-proxies=10.0.0.0/33": `--trusted-proxies: collect: trusted proxy "10.0.0.0/33" is not a CIDR prefix (e.g. 10.0.0.0/8)`,
		"--rate-ip=fast":                `--rate-ip: collect: rate "fast": want N (per second) or N:BURST, N >= 0`,
		"--rate-site=5:0":               `--rate-site: collect: rate "5:0": burst must be a whole number >= 1`,
		"--dnt=maybe":                   `--dnt: collect: do-not-track policy "maybe": want drop, cookieless or ignore`,
	} {
		if _, err := Parse([]string{args}, mapEnv(nil), io.Discard); err == nil || err.Error() != want {
			t.Errorf("%s: error %v, want %q", args, err, want)
		}
	}
	_, err = Parse(nil, mapEnv(map[string]string{"AVILA_MP_STRICT": "maybe"}), io.Discard)
	if err == nil || err.Error() != `AVILA_MP_STRICT="maybe": want true or false (it sets --mp-strict)` {
		t.Errorf("AVILA_MP_STRICT=maybe: error %v", err)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	var stdout bytes.Buffer
	err := Run(context.Background(), []string{"--data-dir", t.TempDir()}, mapEnv(nil), &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--ca is empty") {
		t.Fatalf("run without --ca: %v", err)
	}
	err = Run(context.Background(), []string{"--log-format", "xml"}, mapEnv(nil), &stdout, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("run with a bad log format: %v", err)
	}
	if stdout.Len() != 0 {
		t.Fatalf("printed %q although it never became ready", stdout.String())
	}
}

// TestRunReadyLineAndShutdown runs the command as the e2e harness does,
// with no aggregator listening: it prints exactly one JSON ready line, serves
// /healthz at once, reports not ready with a reason, and exits cleanly when
// its context (the signal) ends.
func TestRunReadyLineAndShutdown(t *testing.T) {
	certs, err := protocol.EnsureDevCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		args := []string{"--listen", "127.0.0.1:0", "--data-dir", t.TempDir(), "--aggregator", "127.0.0.1:9", "--ca", certs.CA}
		err := Run(ctx, args, mapEnv(nil), pw, io.Discard)
		pw.Close()
		done <- err
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("no ready line: %v", <-done)
	}
	var ready map[string]string
	if err := json.Unmarshal(lines.Bytes(), &ready); err != nil {
		t.Fatalf("ready line %q: %v", lines.Text(), err)
	}
	if len(ready) != 2 || !strings.HasPrefix(ready["agent"], "http://127.0.0.1:") || len(ready["agent_id"]) != 16 {
		t.Fatalf("ready line %q, want {agent: http://127.0.0.1:PORT, agent_id}", lines.Text())
	}

	get := func(path string) (int, string) {
		resp, err := http.Get(ready["agent"] + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "no site config yet") {
		t.Fatalf("/readyz %d %q, want 503 with the reason", code, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after the signal: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run did not return after its context ended")
	}
	if lines.Scan() {
		t.Fatalf("more than one line on stdout: %q", lines.Text())
	}
}

func TestConnectionCapFlags(t *testing.T) {
	o, err := Parse(nil, mapEnv(nil), io.Discard)
	if err != nil || o.Agent.MaxConns != 0 || o.Agent.MaxConnsPerIP != 0 {
		t.Fatalf("defaults: %d %d %v, want 0 0 (derived from the file limit)", o.Agent.MaxConns, o.Agent.MaxConnsPerIP, err)
	}
	env := mapEnv(map[string]string{"AVILA_MAX_CONNS": "5000", "AVILA_MAX_CONNS_PER_IP": "64"})
	o, err = Parse(nil, env, io.Discard)
	if err != nil || o.Agent.MaxConns != 5000 || o.Agent.MaxConnsPerIP != 64 {
		t.Fatalf("from env: %d %d %v", o.Agent.MaxConns, o.Agent.MaxConnsPerIP, err)
	}
	o, err = Parse([]string{"--max-conns", "100", "--max-conns-per-ip", "10"}, env, io.Discard)
	if err != nil || o.Agent.MaxConns != 100 || o.Agent.MaxConnsPerIP != 10 {
		t.Fatalf("flags over env: %d %d %v", o.Agent.MaxConns, o.Agent.MaxConnsPerIP, err)
	}
	if _, err := Parse(nil, mapEnv(map[string]string{"AVILA_MAX_CONNS": "many"}), io.Discard); err == nil ||
		!strings.Contains(err.Error(), `AVILA_MAX_CONNS="many"`) {
		t.Errorf("bad env: %v", err)
	}
	for _, flag := range []string{"--max-conns", "--max-conns-per-ip"} {
		err := Run(context.Background(), []string{"--data-dir", t.TempDir(), "--ca", "ca.pem", flag, "-1"}, mapEnv(nil), io.Discard, io.Discard)
		if err == nil || err.Error() != "agent: "+flag+" must be >= 0" {
			t.Errorf("%s -1: %v", flag, err)
		}
	}
}
