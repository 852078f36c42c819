package redis

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/sessions"
	"github.com/avila-analytics/avila/internal/testenv"
)

// TestSessionCache: entries live in Redis under the prefix with the session
// timeout as TTL, and memory answers once Redis is gone.
func TestSessionCache(t *testing.T) {
	ctx := context.Background()
	url, stop := testenv.OwnRedis(t)
	c, err := Open(ctx, Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := testenv.Prefix(t)
	cache := NewSessionCache(c, prefix)
	k := sessions.Key{Site: 3, Visitor: 1 << 63}
	want := sessions.Session{ID: 1748814000, Start: 1748814000123456, Last: 1748814100000000, FirstSource: 77}
	if err := cache.Put(ctx, map[sessions.Key]sessions.Session{k: want}); err != nil {
		t.Fatal(err)
	}
	name := prefix + "session:3:9223372036854775808"
	if ttl := c.TTL(ctx, name).Val(); ttl <= 0 || ttl > sessions.Timeout {
		t.Fatalf("TTL of %s: %v, want up to %v", name, ttl, sessions.Timeout)
	}
	// Read from Redis, not memory: a fresh cache on the same server.
	got, err := NewSessionCache(c, prefix).Get(ctx, []sessions.Key{k, {Site: 3, Visitor: 1}})
	if err != nil || len(got) != 1 || got[k] != want {
		t.Fatalf("from Redis: %+v, %v; want only %+v", got, err, want)
	}
	if err := c.Set(ctx, prefix+"session:3:1", "garbage", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(ctx, []sessions.Key{{Site: 3, Visitor: 1}}); err == nil {
		t.Error("a malformed entry is not reported")
	}
	stop()
	got, err = cache.Get(ctx, []sessions.Key{k})
	if err != nil || got[k] != want {
		t.Fatalf("Redis down: %+v, %v; want %+v from memory", got, err, want)
	}
	if err := cache.Put(ctx, map[sessions.Key]sessions.Session{k: want}); err == nil {
		t.Error("Put to a dead Redis reports no error")
	}
}
