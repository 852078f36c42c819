package redis

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
	goredis "github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

func TestOpenPings(t *testing.T) {
	c, err := Open(context.Background(), Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(context.Background(), "test:open", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenNamesTheProblem(t *testing.T) {
	if _, err := Open(context.Background(), Options{URL: "http://nope"}); err == nil || !strings.Contains(err.Error(), "parse URL") {
		t.Fatalf("bad scheme: %v", err)
	}
	if _, err := Open(context.Background(), Options{URL: "redis://127.0.0.1:1/0"}); err == nil || !strings.Contains(err.Error(), "ping 127.0.0.1:1") {
		t.Fatalf("nothing listening: %v", err)
	}
}

// Open connects to Redis and checks that it answers; see New.
func Open(ctx context.Context, o Options) (goredis.UniversalClient, error) {
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis: ping %s: %w", servers(o.URL), err)
	}
	return c, nil
}

// servers names where a URL leads, for errors: "host:port", the sentinels
// and master name, or the cluster nodes given.
func servers(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	addrs := append([]string{u.Host}, q["addr"]...)
	if u.Scheme == "unix" {
		addrs[0] = u.Path
	}
	if m := q.Get("master_name"); m != "" {
		return fmt.Sprintf("master %s via sentinels %s", m, strings.Join(addrs, ","))
	}
	return strings.Join(addrs, ",")
}
