package redis

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/internal/testenv"
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
