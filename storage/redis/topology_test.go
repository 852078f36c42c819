package redis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
)

func TestTopologyOf(t *testing.T) {
	f := func(url string, want Topology, wantErr string) {
		t.Helper()
		got, err := topologyOf(url)
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("topologyOf(%q): %v, %v; want error %q", url, got, err, wantErr)
			}
			return
		}
		if err != nil || got != want {
			t.Errorf("topologyOf(%q) = %q, %v; want %q", url, got, err, want)
		}
	}
	f("redis://127.0.0.1:6379/0", Single, "")
	f("rediss://user:pw@cache.example:6380/2", Single, "")
	f("unix:///run/redis.sock?db=1", Single, "")
	f("redis://s1:26379/0?master_name=mymaster&addr=s2:26379", Sentinel, "")
	f("redis://n1:6379?addr=n2:6379&addr=n3:6379", Cluster, "")
	f("redis://n1:6379?cluster=true", Cluster, "")
	f("redis://n1:6379?cluster=false", Single, "")
	f("http://127.0.0.1:6379", "", "want redis://, rediss:// or unix://")
	f("redis://n1:6379?cluster=maybe", "", `cluster="maybe": want true or false`)
	f("redis://n1:6379?cluster=true&master_name=m", "", "not both")
	// go-redis' own parsers refuse what they do not know.
	if _, err := New(Options{URL: "redis://n1:6379?cluster=true&db=3"}); err == nil {
		t.Error("a cluster URL with a database number is accepted")
	}
	if _, err := New(Options{URL: "redis://s1:26379?master_name=m&bogus=1"}); err == nil {
		t.Error("a Sentinel URL with an unknown option is accepted")
	}
}

func TestOpenNamesTheServers(t *testing.T) {
	f := func(url, want string) {
		t.Helper()
		if _, err := Open(context.Background(), Options{URL: url}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q): %v, want %q", url, err, want)
		}
	}
	f("redis://127.0.0.1:1/0?master_name=mymaster&addr=127.0.0.1:2", "ping master mymaster via sentinels 127.0.0.1:1,127.0.0.1:2")
	f("redis://127.0.0.1:1?addr=127.0.0.1:2", "ping 127.0.0.1:1,127.0.0.1:2")
}

func TestDescribeHidesPasswords(t *testing.T) {
	got := Describe("redis://u:secret@s1:26379/0?master_name=m&password=secret2")
	if strings.Contains(got, "secret") || !strings.Contains(got, "s1:26379") {
		t.Fatalf("Describe: %q", got)
	}
}

// redisServer starts redis-server with args on a free loopback port in its
// own directory and returns its address; it is killed when t ends.
func redisServer(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed (Debian: apt-get install -y redis-server)")
	}
	port := freePort(t)
	dir := t.TempDir()
	args = append(args, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir)
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	log, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	c := goredis.NewClient(&goredis.Options{Addr: addr, DialerRetries: 1})
	defer c.Close()
	waitFor(t, "redis-server on "+addr+" to answer", func() error {
		if err := c.Ping(context.Background()).Err(); err != nil {
			out, _ := os.ReadFile(log.Name())
			return fmt.Errorf("%w; its output: %s", err, out)
		}
		return nil
	})
	return addr
}

// freePort returns a TCP port on loopback that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it returns nil, for at most 30 seconds.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSentinel runs a master, a replica and a sentinel, reaches the master
// through a master_name URL, and follows it to the replica on failover.
func TestSentinel(t *testing.T) {
	ctx := context.Background()
	master := redisServer(t)
	replica := redisServer(t, "--replicaof", strings.Replace(master, ":", " ", 1))
	confDir := t.TempDir()
	conf := filepath.Join(confDir, "sentinel.conf")
	mhost, mport, _ := net.SplitHostPort(master)
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("sentinel monitor mymaster %s %s 1\nsentinel down-after-milliseconds mymaster 1000\n"+
		"sentinel failover-timeout mymaster 5000\n", mhost, mport)), 0o600); err != nil {
		t.Fatal(err)
	}
	sentinel := redisServer(t, conf, "--sentinel")

	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinel})
	defer sc.Close()
	waitFor(t, "the sentinel to see the replica", func() error {
		rs, err := sc.Replicas(ctx, "mymaster").Result()
		if err != nil {
			return err
		}
		for _, r := range rs {
			if r["ip"]+":"+r["port"] == replica && r["master-link-status"] == "ok" {
				return nil
			}
		}
		return fmt.Errorf("replicas %v", rs)
	})

	c, err := Open(ctx, Options{URL: "redis://" + sentinel + "/0?master_name=mymaster"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*goredis.Client); !ok {
		t.Fatalf("client %T, want the failover *goredis.Client", c)
	}
	// The features work through it, and the writes are on the master.
	prefix := testenv.Prefix(t)
	cache := NewCache(c, CacheOptions{Prefix: prefix})
	cache.Bump(ctx, []uint32{3})
	want, ok := cache.Version(ctx, 3)
	if !ok {
		t.Fatal("no data version through the Sentinel URL")
	}
	direct := goredis.NewClient(&goredis.Options{Addr: master})
	defer direct.Close()
	if n := direct.Exists(ctx, prefix+"dv:3").Val(); n != 1 {
		t.Fatalf("the data version is not on the master %s", master)
	}

	// Failover: the replica becomes the master, and the same client writes there.
	if err := sc.Failover(ctx, "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sentinel to name the replica master", func() error {
		addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		if err != nil {
			return err
		}
		if net.JoinHostPort(addr[0], addr[1]) != replica {
			return fmt.Errorf("master is %v", addr)
		}
		return nil
	})
	onReplica := goredis.NewClient(&goredis.Options{Addr: replica})
	defer onReplica.Close()
	waitFor(t, "a write through the Sentinel URL to land on the new master", func() error {
		if err := c.Set(ctx, prefix+"after-failover", "1", time.Minute).Err(); err != nil {
			return err
		}
		if onReplica.Exists(ctx, prefix+"after-failover").Val() != 1 {
			return fmt.Errorf("not on %s", replica)
		}
		return nil
	})
	if got, ok := NewCache(c, CacheOptions{Prefix: prefix}).Version(ctx, 3); !ok || got != want {
		t.Fatalf("data version after failover: %q, %v; want %q (replicated)", got, ok, want)
	}
}

// TestCluster builds a three-master Redis Cluster and runs every feature
// of this package on it through a several-address URL: keys of one request
// fall in different hash slots, hence on different nodes.
func TestCluster(t *testing.T) {
	ctx := context.Background()
	var nodes []string
	var busPorts []int // given, not port+10000, which may be taken or out of range
	for range 3 {
		bus := freePort(t)
		busPorts = append(busPorts, bus)
		nodes = append(nodes, redisServer(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000", "--cluster-port", strconv.Itoa(bus)))
	}
	ranges := [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}
	for i, n := range nodes {
		c := goredis.NewClient(&goredis.Options{Addr: n})
		defer c.Close()
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", ranges[i][0], ranges[i][1]).Err(); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			host, port, _ := net.SplitHostPort(n)
			first := goredis.NewClient(&goredis.Options{Addr: nodes[0]})
			if err := first.Do(ctx, "CLUSTER", "MEET", host, port, busPorts[i]).Err(); err != nil {
				t.Fatal(err)
			}
			first.Close()
		}
	}
	for _, n := range nodes {
		c := goredis.NewClient(&goredis.Options{Addr: n})
		waitFor(t, "cluster_state:ok on "+n, func() error {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:3") {
				return fmt.Errorf("%s", info)
			}
			return nil
		})
		c.Close()
	}

	url := "redis://" + nodes[0] + "?addr=" + nodes[1] + "&addr=" + nodes[2]
	c, err := Open(ctx, Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*goredis.ClusterClient); !ok {
		t.Fatalf("client %T, want *goredis.ClusterClient", c)
	}
	prefix := testenv.Prefix(t)

	// Query cache and data versions.
	cache := NewCache(c, CacheOptions{Prefix: prefix})
	cache.Bump(ctx, []uint32{3, 4})
	v3, ok := cache.Version(ctx, 3)
	if !ok {
		t.Fatal("no data version for site 3")
	}
	cache.Set(ctx, "q1", []byte("report"), time.Minute)
	if b, ok := cache.Get(ctx, "q1"); !ok || string(b) != "report" {
		t.Fatalf("cache entry: %q, %v", b, ok)
	}
	cache.Bump(ctx, []uint32{3})
	if v, _ := cache.Version(ctx, 3); v == v3 {
		t.Fatalf("site 3's version %q did not change", v)
	}

	// Quotas.
	q := NewQuotaCounter(c, prefix)
	if n, err := q.Add(ctx, "key:1", 5, time.Minute); err != nil || n != 5 {
		t.Fatalf("quota: %d, %v", n, err)
	}

	// Realtime counters, and the change feed over pub/sub.
	rt := NewRedisRealtime(c, RealtimeOptions{Prefix: prefix})
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changed := make(chan uint32, 16)
	rt.Watch(func(site uint32) { changed <- site })
	go rt.Run(rctx)
	now := time.Now()
	var evs []protocol.Event
	for v := range 20 {
		evs = append(evs, protocol.Event{Site: 3, Visitor: uint64(v + 1), Name: "page_view", Path: "/p", TimeMicros: now.UnixMicro(), Flags: protocol.FlagFirstVisit})
	}
	waitFor(t, "the change feed to report site 3", func() error {
		rt.Record(ctx, evs) // again until the subscription is up
		select {
		case s := <-changed:
			if s == 3 {
				return nil
			}
		case <-time.After(200 * time.Millisecond):
		}
		return fmt.Errorf("no notification")
	})
	w, err := NewRedisRealtime(c, RealtimeOptions{Prefix: prefix}).Window(ctx, 3)
	if err != nil || len(w.Minutes) == 0 || w.Memory || w.ActiveUsers(time.UTC) != 20 {
		t.Fatalf("realtime window from the cluster: %+v, %v", w, err)
	}
	if rt.RedisErrors() != 0 {
		t.Fatalf("%d Redis errors in realtime", rt.RedisErrors())
	}
}

// topologyOf returns the kind of deployment rawURL names, or an error
// saying what is wrong with it.
func topologyOf(rawURL string) (Topology, error) {
	t, _, err := parse(rawURL)
	return t, err
}
