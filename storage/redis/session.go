package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/avila-analytics/avila/aggregator/sessions"
)

// SessionCache keeps visitors' latest sessions (aggregator/sessions) under
// {prefix}session:{site}:{visitor}, with the session timeout as TTL, so
// every node of a cluster sessionizes from the same state. Each value is
// "id start last firstSource" in decimal. Every entry is also kept in
// process memory, which answers while Redis fails; the database answers
// what neither holds.
//
// The store calls it inside a batch's transaction, so a failing Redis must
// not hold batches: each call is bounded by sessionCallTimeout, and after a
// failure Redis is skipped for sessionBackoff. Sessions a visitor continues
// while Redis is skipped are not in Redis; should it come back within their
// TTL, an older entry there may start a new session for them early.
type SessionCache struct {
	c         goredis.UniversalClient
	prefix    string
	mem       *sessions.Memory
	downUntil atomic.Int64 // Unix nanoseconds until which Redis is skipped
}

// Bounds on a failing Redis (see SessionCache).
const (
	sessionCallTimeout = 250 * time.Millisecond
	sessionBackoff     = 5 * time.Second
)

// up reports whether to try Redis now.
func (s *SessionCache) up() bool { return time.Now().UnixNano() >= s.downUntil.Load() }

func (s *SessionCache) failed() { s.downUntil.Store(time.Now().Add(sessionBackoff).UnixNano()) }

// NewSessionCache returns the session cache on c; with a nil c, an
// in-memory cache for a single node.
func NewSessionCache(c goredis.UniversalClient, prefix string) sessions.Cache {
	mem := sessions.NewMemory(0, nil)
	if c = orNil(c); c == nil {
		return mem
	}
	return &SessionCache{c: c, prefix: prefix, mem: mem}
}

func (s *SessionCache) key(k sessions.Key) string {
	return s.prefix + "session:" + strconv.FormatUint(uint64(k.Site), 10) + ":" + strconv.FormatUint(k.Visitor, 10)
}

// Get implements sessions.Cache.
func (s *SessionCache) Get(ctx context.Context, keys []sessions.Key) (map[sessions.Key]sessions.Session, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = s.key(k)
	}
	var vals []any
	err := errRedisSkipped
	if s.up() {
		cctx, cancel := context.WithTimeout(ctx, sessionCallTimeout)
		vals, err = mget(cctx, s.c, names)
		cancel()
		if err != nil {
			s.failed()
		}
	}
	if err != nil {
		m, _ := s.mem.Get(ctx, keys)
		return m, nil // degraded to memory; the database answers misses
	}
	out := make(map[sessions.Key]sessions.Session, len(keys))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue
		}
		sess, err := parseSession(str)
		if err != nil {
			return nil, fmt.Errorf("redis: session %s: %w", names[i], err)
		}
		out[keys[i]] = sess
	}
	return out, nil
}

// Put implements sessions.Cache.
func (s *SessionCache) Put(ctx context.Context, latest map[sessions.Key]sessions.Session) error {
	_ = s.mem.Put(ctx, latest)
	if len(latest) == 0 {
		return nil
	}
	if !s.up() {
		return fmt.Errorf("redis: put sessions: %w", errRedisSkipped)
	}
	cctx, cancel := context.WithTimeout(ctx, sessionCallTimeout)
	defer cancel()
	_, err := s.c.Pipelined(cctx, func(p goredis.Pipeliner) error {
		for k, v := range latest {
			p.Set(cctx, s.key(k), formatSession(v), sessions.Timeout)
		}
		return nil
	})
	if err != nil {
		s.failed()
		return fmt.Errorf("redis: put sessions: %w", err)
	}
	return nil
}

// errRedisSkipped: Redis failed moments ago and is not tried again yet.
var errRedisSkipped = errors.New("skipped after a recent failure")

func formatSession(v sessions.Session) string {
	return strconv.FormatInt(v.ID, 10) + " " + strconv.FormatInt(v.Start, 10) + " " +
		strconv.FormatInt(v.Last, 10) + " " + strconv.FormatInt(int64(v.FirstSource), 10)
}

func parseSession(s string) (sessions.Session, error) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return sessions.Session{}, fmt.Errorf("want 4 fields, got %q", s)
	}
	var n [4]int64
	for i, x := range f {
		v, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return sessions.Session{}, fmt.Errorf("field %d: %w", i, err)
		}
		n[i] = v
	}
	return sessions.Session{ID: n[0], Start: n[1], Last: n[2], FirstSource: int32(n[3])}, nil
}

// mget reads names in one round trip: one MGET, or on Redis Cluster, where
// an MGET may only name keys of one hash slot, one GET each in a pipeline,
// which the cluster client splits by node. Missing keys are nil.
func mget(ctx context.Context, c goredis.UniversalClient, names []string) ([]any, error) {
	if _, cluster := c.(*goredis.ClusterClient); !cluster {
		return c.MGet(ctx, names...).Result()
	}
	cmds := make([]*goredis.StringCmd, len(names))
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.Get(ctx, n)
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, err
	}
	vals := make([]any, len(names))
	for i, cmd := range cmds {
		if v, err := cmd.Result(); err == nil {
			vals[i] = v
		}
	}
	return vals, nil
}
