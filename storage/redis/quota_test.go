package redis

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
)

func TestQuotaCounter(t *testing.T) {
	ctx := context.Background()
	rdb := newTestClient(t, testenv.RedisURL(t))
	prefix := testenv.Prefix(t)
	q := NewQuotaCounter(rdb, prefix)
	for i, tc := range []struct{ add, want int64 }{{3, 3}, {4, 7}, {0, 7}} {
		got, err := q.Add(ctx, "quota:core:1:h:0", tc.add, time.Hour)
		if err != nil || got != tc.want {
			t.Fatalf("add %d: %d, %v; want %d", i, got, err, tc.want)
		}
	}
	ttl, err := rdb.TTL(ctx, prefix+"quota:core:1:h:0").Result()
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL %v, %v: every key must expire within its window", ttl, err)
	}
	if got, err := NewQuotaCounter(rdb, prefix+"other:").Add(ctx, "quota:core:1:h:0", 0, time.Hour); err != nil || got != 0 {
		t.Fatalf("another prefix sees %d, %v", got, err)
	}
	if _, err := (*QuotaCounter)(nil).Add(ctx, "x", 1, time.Hour); err == nil {
		t.Fatal("nil counter: want an error")
	}
}
