package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// Options configure Open.
type Options struct {
	// URL is a redis:// or rediss:// URL; see goredis.ParseURL.
	URL string
	// TracerProvider receives one span per Redis command or pipeline;
	// nil: no tracing.
	TracerProvider trace.TracerProvider
}

// Open connects to Redis and checks that it answers; see New.
func Open(ctx context.Context, o Options) (*goredis.Client, error) {
	c, err := New(o)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis: ping %s: %w", c.Options().Addr, err)
	}
	return c, nil
}

// New makes a client without contacting the server: it connects on first
// use and reconnects by itself, so a Redis that is down at start-up is used
// once it is back. Commands time out quickly, since every caller has a
// fallback that beats waiting on Redis.
func New(o Options) (*goredis.Client, error) {
	opts, err := goredis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("redis: parse URL: %w", err)
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > 2*time.Second {
		opts.DialTimeout = 2 * time.Second
	}
	opts.ReadTimeout, opts.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond
	opts.MaxRetries = 1
	// One dial per attempt: go-redis' default retries a refused dial five
	// times 100ms apart, so each command would wait that out while Redis
	// is down.
	if opts.DialerRetries == 0 {
		opts.DialerRetries = 1
	}
	c := goredis.NewClient(opts)
	if o.TracerProvider != nil {
		if err := redisotel.InstrumentTracing(c, redisotel.WithTracerProvider(o.TracerProvider), redisotel.WithDBStatement(false)); err != nil {
			c.Close()
			return nil, fmt.Errorf("redis: tracing: %w", err)
		}
	}
	return c, nil
}
