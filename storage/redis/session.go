package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/avila-analytics/avila/aggregator/sessions"
)

// SessionCache keeps visitors' latest sessions (aggregator/sessions) under
// {prefix}session:{site}:{visitor}, with the session timeout as TTL, so
// every node of a cluster sessionizes from the same state. Each value is
// "id start last firstSource" in decimal. Every entry is also kept in
// process memory, which answers while Redis fails; the database answers
// what neither holds.
type SessionCache struct {
	c      *goredis.Client
	prefix string
	mem    *sessions.Memory
}

// NewSessionCache returns the session cache on c; with a nil c, an
// in-memory cache for a single node.
func NewSessionCache(c *goredis.Client, prefix string) sessions.Cache {
	mem := sessions.NewMemory(0, nil)
	if c == nil {
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
	vals, err := s.c.MGet(ctx, names...).Result()
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
	_, err := s.c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for k, v := range latest {
			p.Set(ctx, s.key(k), formatSession(v), sessions.Timeout)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis: put sessions: %w", err)
	}
	return nil
}

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
