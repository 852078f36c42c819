package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	goredis "github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// Options configure Open.
type Options struct {
	// URL names the Redis deployment, in go-redis' URL syntax:
	//   - one server: redis://[user:password@]host:port/db, rediss:// for TLS
	//     (goredis.ParseURL);
	//   - Sentinel: the sentinels' addresses and master_name, e.g.
	//     redis://s1:26379/0?master_name=mymaster&addr=s2:26379&addr=s3:26379;
	//     the master's credentials go in the username and password parameters,
	//     the sentinels' in the URL's user info (goredis.ParseFailoverURL);
	//   - Redis Cluster: several nodes, or one with cluster=true, e.g.
	//     redis://n1:6379?addr=n2:6379&addr=n3:6379 (goredis.ParseClusterURL;
	//     a cluster has no database number). As goredis.NewUniversalClient
	//     decides: master_name means Sentinel, several addresses a cluster.
	URL string
	// TracerProvider receives one span per Redis command or pipeline;
	// nil: no tracing.
	TracerProvider trace.TracerProvider
}

// Topology is the kind of Redis deployment a URL names.
type Topology string

const (
	Single   Topology = "single"   // one server
	Sentinel Topology = "sentinel" // a master found through Sentinel, followed on failover
	Cluster  Topology = "cluster"  // Redis Cluster: keys spread over masters by hash slot
)

// New makes a client without contacting the server: it connects on first
// use and reconnects by itself, so a Redis that is down at start-up is used
// once it is back. Commands time out quickly, since every caller has a
// fallback that beats waiting on Redis.
func New(o Options) (goredis.UniversalClient, error) {
	var c goredis.UniversalClient
	topo, u, err := parse(o.URL)
	if err != nil {
		return nil, err
	}
	switch topo {
	case Sentinel:
		opts, err := goredis.ParseFailoverURL(u)
		if err != nil {
			return nil, fmt.Errorf("redis: parse Sentinel URL: %w", err)
		}
		opts.DialTimeout = dialTimeout(opts.DialTimeout)
		opts.ReadTimeout, opts.WriteTimeout, opts.MaxRetries = commandTimeout, commandTimeout, 1
		if opts.DialerRetries == 0 {
			opts.DialerRetries = 1
		}
		c = goredis.NewFailoverClient(opts)
	case Cluster:
		opts, err := goredis.ParseClusterURL(u)
		if err != nil {
			return nil, fmt.Errorf("redis: parse Cluster URL: %w", err)
		}
		opts.DialTimeout = dialTimeout(opts.DialTimeout)
		opts.ReadTimeout, opts.WriteTimeout = commandTimeout, commandTimeout
		if opts.DialerRetries == 0 {
			opts.DialerRetries = 1
		}
		c = goredis.NewClusterClient(opts)
	default:
		opts, err := goredis.ParseURL(u)
		if err != nil {
			return nil, fmt.Errorf("redis: parse URL: %w", err)
		}
		opts.DialTimeout = dialTimeout(opts.DialTimeout)
		opts.ReadTimeout, opts.WriteTimeout = commandTimeout, commandTimeout
		opts.MaxRetries = 1
		// One dial per attempt: go-redis' default retries a refused dial five
		// times 100ms apart, so each command would wait that out while Redis
		// is down.
		if opts.DialerRetries == 0 {
			opts.DialerRetries = 1
		}
		c = goredis.NewClient(opts)
	}
	if o.TracerProvider != nil {
		if err := redisotel.InstrumentTracing(c, redisotel.WithTracerProvider(o.TracerProvider), redisotel.WithDBStatement(false)); err != nil {
			c.Close()
			return nil, fmt.Errorf("redis: tracing: %w", err)
		}
	}
	return c, nil
}

// commandTimeout bounds a command's read and write.
const commandTimeout = 500 * time.Millisecond

func dialTimeout(d time.Duration) time.Duration {
	if d == 0 || d > 2*time.Second {
		return 2 * time.Second
	}
	return d
}

// parse tells the topology raw names and returns the URL go-redis' parser
// for it takes (without cluster=true, which is ours).
func parse(raw string) (Topology, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("redis: parse URL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix" {
		return "", "", fmt.Errorf("redis: parse URL %s: want redis://, rediss:// or unix://", Describe(raw))
	}
	q := u.Query()
	cluster := q.Get("cluster")
	switch {
	case cluster != "" && cluster != "true" && cluster != "false":
		return "", "", fmt.Errorf("redis: parse URL %s: cluster=%q: want true or false", Describe(raw), cluster)
	case cluster == "true" && q.Has("master_name"):
		return "", "", errors.New("redis: parse URL: give cluster=true (Redis Cluster) or master_name (Sentinel), not both")
	case q.Has("cluster"):
		q.Del("cluster")
		u.RawQuery = q.Encode()
		if cluster == "true" {
			return Cluster, u.String(), nil
		}
	}
	switch {
	case q.Has("master_name"):
		return Sentinel, u.String(), nil
	case q.Has("addr"):
		// Several nodes and no master name: a cluster, as
		// goredis.NewUniversalClient decides.
		return Cluster, u.String(), nil
	}
	return Single, u.String(), nil
}

// Check reports what is wrong with rawURL, as New would, without making a
// client: for checking configuration before anything starts.
func Check(rawURL string) error {
	c, err := New(Options{URL: rawURL})
	if err != nil {
		return err
	}
	return c.Close()
}

// Describe is rawURL for logs and errors: passwords masked.
func Describe(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// orNil turns a typed nil client (a nil *goredis.Client in the interface)
// into nil, which selects the in-memory implementations.
func orNil(c goredis.UniversalClient) goredis.UniversalClient {
	if cc, ok := c.(*goredis.Client); ok && cc == nil {
		return nil
	}
	if cc, ok := c.(*goredis.ClusterClient); ok && cc == nil {
		return nil
	}
	return c
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
