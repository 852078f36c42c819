package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// QuotaCounter keeps the query API's quota counters (tokens and server
// errors per property, hour and day) in Redis, so every node of a cluster
// reports the property's use, not its own: keys {prefix}{name}, each
// expiring ttl after its last add. It satisfies query.QuotaCounter; the
// query package falls back to the node's own counts when it fails.
type QuotaCounter struct {
	rdb    goredis.UniversalClient
	prefix string
}

// NewQuotaCounter counts in rdb under prefix (the node's --redis-prefix).
func NewQuotaCounter(rdb goredis.UniversalClient, prefix string) *QuotaCounter {
	rdb = orNil(rdb)
	return &QuotaCounter{rdb: rdb, prefix: prefix}
}

// Add adds n (0 reads) to counter name and returns its new value.
func (q *QuotaCounter) Add(ctx context.Context, name string, n int64, ttl time.Duration) (int64, error) {
	if q == nil || q.rdb == nil {
		return 0, errors.New("redis: quota counter without a client")
	}
	key := q.prefix + name
	pipe := q.rdb.TxPipeline()
	incr := pipe.IncrBy(ctx, key, n)
	pipe.Expire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("redis: quota %s: %w", key, err)
	}
	return incr.Val(), nil
}
