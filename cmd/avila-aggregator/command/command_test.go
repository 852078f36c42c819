package command

import (
	"io"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/storage/redis"
)

func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParse(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	o, err := Parse(nil, mapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n := o.Node; n.ListenQUIC != "127.0.0.1:4433" || n.ListenAPI != "127.0.0.1:8080" || n.DataDir != "./data/aggregator" ||
		n.NodeName != host || n.DatabaseURL != "" || n.RedisURL != "" || o.LogLevel != "info" || n.ListenOperator != "127.0.0.1:8081" ||
		n.ReportTimeout != 30*time.Second || n.APIWriteTimeout != 45*time.Second || n.ReportConns != 4 || n.PropertyConns != 2 {
		t.Fatalf("defaults: %+v", o)
	}

	// The AVILA_ variables win over the usual ones, flags over both.
	env := map[string]string{"DATABASE_URL": "postgres://plain", "REDIS_URL": "redis://plain", "AVILA_NODE_NAME": "n1",
		"AVILA_JOIN": "a:1, b:2,", "AVILA_GOSSIP_LISTEN": "127.0.0.1:0", "AVILA_GOSSIP_KEY": "MDEyMzQ1Njc4OWFiY2RlZg==",
		"AVILA_REDIS_PREFIX": "p:"}
	o, err = Parse(nil, mapEnv(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if n := o.Node; n.DatabaseURL != "postgres://plain" || n.RedisURL != "redis://plain" || n.NodeName != "n1" ||
		strings.Join(n.Join, ",") != "a:1,b:2" || string(n.GossipKey) != "0123456789abcdef" || n.RedisPrefix != "p:" {
		t.Fatalf("from env: %+v", o.Node)
	}
	env["AVILA_DATABASE_URL"], env["AVILA_REDIS_URL"] = "postgres://avila", "redis://avila"
	o, err = Parse([]string{"--redis-url", "redis://flag"}, mapEnv(env), io.Discard)
	if err != nil || o.Node.DatabaseURL != "postgres://avila" || o.Node.RedisURL != "redis://flag" {
		t.Fatalf("precedence: %+v, %v", o.Node, err)
	}

	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--join", "a:1"}, want: "--join and --gossip-key need --gossip-listen"},
		{args: []string{"--gossip-listen", ":0", "--gossip-key", "%%"}, want: "--gossip-key: not base64"},
		{args: []string{"extra"}, want: `unexpected arguments ["extra"]`},
		{args: []string{"--redis-url", "redis://a:1?bogus=1"}, want: "--redis-url: redis: parse URL"},
		{env: map[string]string{"REDIS_URL": "http://a:1"}, want: "--redis-url: redis: parse URL http://a:1: want redis://"},
		{args: []string{"--nope"}, want: "flag provided but not defined: -nope"},
		{args: []string{"--report-timeout", "1m"}, want: "--api-write-timeout (45s) must exceed --report-timeout (1m0s)"},
		{args: []string{"--api-read-timeout", "0s"}, want: "--api-read-timeout, --api-write-timeout, --api-idle-timeout and --report-timeout must be > 0"},
		{args: []string{"--report-conns", "2", "--report-conns-per-property", "3"}, want: "--report-conns-per-property (3) must be at most --report-conns (2)"},
	} {
		if _, err := Parse(tc.args, mapEnv(tc.env), io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestCountFlags: each count flag defaults to its package's default, is
// read from its environment variable, and refuses a count below 1 with an
// error naming it.
func TestCountFlags(t *testing.T) {
	for _, tc := range []struct {
		flag, env string
		def       int
		get       func(Options) int
	}{
		{"derive-max-events", "AVILA_DERIVE_MAX_EVENTS", write.DefaultMaxEvents, func(o Options) int { return o.Node.DeriveMaxEvents }},
		{"realtime-max-cells", "AVILA_REALTIME_MAX_CELLS", redis.DefaultMaxCells, func(o Options) int { return o.Node.RealtimeMaxCells }},
	} {
		o, err := Parse(nil, mapEnv(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := tc.get(o); got != tc.def {
			t.Errorf("default --%s = %d, want %d", tc.flag, got, tc.def)
		}
		if o, err = Parse(nil, mapEnv(map[string]string{tc.env: "5000"}), io.Discard); err != nil || tc.get(o) != 5000 {
			t.Errorf("%s=5000: %d, %v", tc.env, tc.get(o), err)
		}
		for _, bad := range []string{"0", "-1"} {
			if _, err := Parse([]string{"--" + tc.flag, bad}, mapEnv(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "--"+tc.flag+" "+bad) {
				t.Errorf("--%s %s: %v, want an error naming it", tc.flag, bad, err)
			}
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	o, err := Parse(nil, mapEnv(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.MemoryLimit != DefaultMemoryLimit {
		t.Errorf("default --memory-limit = %d, want %d", o.MemoryLimit, DefaultMemoryLimit)
	}
	if o, err = Parse(nil, mapEnv(map[string]string{"AVILA_MEMORY_LIMIT": "0"}), io.Discard); err != nil || o.MemoryLimit != 0 {
		t.Errorf("AVILA_MEMORY_LIMIT=0: %d, %v", o.MemoryLimit, err)
	}
	if _, err := Parse([]string{"--memory-limit", "-5"}, mapEnv(nil), io.Discard); err == nil || !strings.Contains(err.Error(), "--memory-limit -5") {
		t.Errorf("--memory-limit -5: %v, want an error naming it", err)
	}

	before := debug.SetMemoryLimit(-1) // reads it
	restore := applyMemoryLimit(Options{MemoryLimit: 100 << 20})
	if got := debug.SetMemoryLimit(-1); got != 100<<20 {
		t.Errorf("memory limit after applying 100 MiB: %d", got)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("memory limit after restore: %d, want %d", got, before)
	}
	applyMemoryLimit(Options{})()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("memory limit after applying 0 (the runtime's): %d, want %d", got, before)
	}
}
