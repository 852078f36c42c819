package deploy

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/avila-analytics/avila/internal/pgserver"
)

// repoRoot is where docker-compose.yml lives, relative to this package.
const repoRoot = ".."

// loadCompose loads docker-compose.yml the way `docker compose` does, with
// schema validation and normalization, but without the caller's environment:
// the file must not depend on variables of the machine that runs the test.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv(nil),
		cli.WithResolvedPaths(true),
	)
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return s
}

// env returns the service's value for key, failing when it is unset.
func env(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	if !ok || v == nil || *v == "" {
		t.Fatalf("service %s: environment %s is not set", s.Name, key)
	}
	return *v
}

// splitHostPort splits addr, failing on anything that is not host:port.
func splitHostPort(t *testing.T, what, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		t.Fatalf("%s = %q: want host:port (%v)", what, addr, err)
	}
	return host, port
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	got := p.ServiceNames()
	slices.Sort(got)
	want := []string{"agent", "aggregator", "postgres", "redis"}
	if !slices.Equal(got, want) {
		t.Fatalf("services = %v, want %v", got, want)
	}
	f := func(name, image string) {
		t.Helper()
		if s := service(t, p, name); s.Image != image {
			t.Errorf("service %s: image = %q, want %q", name, s.Image, image)
		}
	}
	f("postgres", "postgres:16")
	f("redis", "redis:7-alpine")
}

// TestComposePostgresSettings checks that the compose file's PostgreSQL
// runs with the settings the product recommends for ingestion, the same
// the demo's and the bench's managed servers run with.
func TestComposePostgresSettings(t *testing.T) {
	s := service(t, loadCompose(t), "postgres")
	want := []string{"postgres"}
	for _, set := range pgserver.IngestSettings {
		want = append(want, "-c", set)
	}
	if !slices.Equal([]string(s.Command), want) {
		t.Fatalf("service postgres: command = %q, want %q (pgserver.IngestSettings)", s.Command, want)
	}
}

// TestComposeBuild checks that both Avila services build the one image from
// deploy/Dockerfile with the repository as context, and run its binaries.
func TestComposeBuild(t *testing.T) {
	p := loadCompose(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	f := func(name, command string) {
		t.Helper()
		s := service(t, p, name)
		if s.Build == nil {
			t.Fatalf("service %s: no build section", name)
		}
		if s.Build.Context != root {
			t.Errorf("service %s: build context = %q, want the repository root %q", name, s.Build.Context, root)
		}
		df := s.Build.Dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(s.Build.Context, df)
		}
		if df != filepath.Join(root, "deploy", "Dockerfile") {
			t.Errorf("service %s: dockerfile = %q, want deploy/Dockerfile", name, s.Build.Dockerfile)
		}
		if _, err := os.Stat(df); err != nil {
			t.Errorf("service %s: dockerfile: %v", name, err)
		}
		if len(s.Command) == 0 || s.Command[0] != command {
			t.Errorf("service %s: command = %q, want %s", name, s.Command, command)
		}
	}
	f("aggregator", "avila-aggregator")
	f("agent", "avila-agent")
	if a, b := service(t, p, "aggregator").Image, service(t, p, "agent").Image; a == "" || a != b {
		t.Errorf("aggregator image %q and agent image %q: want one named image for both", a, b)
	}
}

// published returns the host port that publishes target/proto, or "".
func published(s types.ServiceConfig, target, proto string) string {
	for _, p := range s.Ports {
		if p.Protocol == proto && strconv.FormatUint(uint64(p.Target), 10) == target {
			return p.Published
		}
	}
	return ""
}

// TestComposeListeners checks each listen address the binaries are given and
// that exactly that port is published with the right protocol; QUIC is UDP.
func TestComposeListeners(t *testing.T) {
	p := loadCompose(t)
	f := func(name, key, wantAddr, proto string) {
		t.Helper()
		s := service(t, p, name)
		addr := env(t, s, key)
		if addr != wantAddr {
			t.Errorf("service %s: %s = %q, want %q", name, key, addr, wantAddr)
		}
		host, port := splitHostPort(t, key, addr)
		if host != "0.0.0.0" && host != "" {
			t.Errorf("service %s: %s = %q listens on %q only; other containers cannot reach it", name, key, addr, host)
		}
		if pub := published(s, port, proto); pub != port {
			t.Errorf("service %s: %s/%s published as %q, want %s:%s/%s", name, port, proto, pub, port, port, proto)
		}
	}
	f("aggregator", "AVILA_LISTEN_QUIC", "0.0.0.0:4433", "udp")
	f("aggregator", "AVILA_LISTEN_API", "0.0.0.0:8080", "tcp")
	f("aggregator", "AVILA_LISTEN_OPERATOR", "0.0.0.0:8081", "tcp")
	// The operator address is for this host only.
	for _, p := range service(t, p, "aggregator").Ports {
		if p.Target == 8081 && p.HostIP != "127.0.0.1" {
			t.Errorf("aggregator: operator port published on %q, want 127.0.0.1 only", p.HostIP)
		}
	}
	f("agent", "AVILA_LISTEN", "0.0.0.0:8090", "tcp")
}

// TestComposeWiring checks the addresses services use to reach each other:
// database and Redis URLs name their services, and the agent dials the
// aggregator's QUIC port under a name its development certificate carries.
func TestComposeWiring(t *testing.T) {
	p := loadCompose(t)
	agg := service(t, p, "aggregator")

	f := func(key, scheme, svc string) {
		t.Helper()
		raw := env(t, agg, key)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("aggregator: %s = %q: %v", key, raw, err)
		}
		if u.Scheme != scheme || u.Hostname() != svc {
			t.Errorf("aggregator: %s = %q: want a %s:// URL on host %q", key, raw, scheme, svc)
		}
		if _, err := p.GetService(svc); err != nil {
			t.Errorf("aggregator: %s names %q: %v", key, svc, err)
		}
	}
	f("DATABASE_URL", "postgres", "postgres")
	f("REDIS_URL", "redis", "redis")

	// The database URL's credentials and name are the ones postgres creates.
	pg := service(t, p, "postgres")
	u, _ := url.Parse(env(t, agg, "DATABASE_URL"))
	pass, _ := u.User.Password()
	if u.User.Username() != env(t, pg, "POSTGRES_USER") || pass != env(t, pg, "POSTGRES_PASSWORD") ||
		strings.TrimPrefix(u.Path, "/") != env(t, pg, "POSTGRES_DB") {
		t.Errorf("aggregator DATABASE_URL %q does not match postgres' POSTGRES_USER/PASSWORD/DB", u.Redacted())
	}

	agent := service(t, p, "agent")
	host, port := splitHostPort(t, "AVILA_AGGREGATOR", env(t, agent, "AVILA_AGGREGATOR"))
	if host != "aggregator" {
		t.Errorf("agent: AVILA_AGGREGATOR host = %q, want the aggregator service", host)
	}
	if _, quicPort := splitHostPort(t, "AVILA_LISTEN_QUIC", env(t, agg, "AVILA_LISTEN_QUIC")); port != quicPort {
		t.Errorf("agent dials port %s, aggregator listens for QUIC on %s", port, quicPort)
	}
	// The development certificate names the aggregator's own hostname.
	if agg.Hostname != host {
		t.Errorf("aggregator hostname = %q; the agent verifies its certificate for %q", agg.Hostname, host)
	}
}

// mountOf returns the volume mounted at or above path in s.
func mountOf(s types.ServiceConfig, path string) (types.ServiceVolumeConfig, bool) {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeVolume && (path == v.Target || strings.HasPrefix(path, v.Target+"/")) {
			return v, true
		}
	}
	return types.ServiceVolumeConfig{}, false
}

// TestComposeVolumes checks the state that must survive containers: the
// database, the agent's queue of acknowledged events, and the CA the
// aggregator makes in <data-dir>/tls, which the agent reads from a shared volume.
func TestComposeVolumes(t *testing.T) {
	p := loadCompose(t)
	agg, agent := service(t, p, "aggregator"), service(t, p, "agent")

	f := func(s types.ServiceConfig, path string) types.ServiceVolumeConfig {
		t.Helper()
		v, ok := mountOf(s, path)
		if !ok {
			t.Fatalf("service %s: %s is not on a named volume", s.Name, path)
		}
		if _, ok := p.Volumes[v.Source]; !ok {
			t.Fatalf("service %s: volume %q is not declared", s.Name, v.Source)
		}
		return v
	}
	f(service(t, p, "postgres"), "/var/lib/postgresql/data")
	f(agent, env(t, agent, "AVILA_DATA_DIR"))

	caDir := filepath.Join(env(t, agg, "AVILA_DATA_DIR"), "tls")
	aggTLS := f(agg, caDir)
	agentCA := env(t, agent, "AVILA_CA")
	shared := f(agent, agentCA)
	if shared.Source != aggTLS.Source {
		t.Fatalf("agent reads AVILA_CA from volume %q, aggregator writes its CA to volume %q", shared.Source, aggTLS.Source)
	}
	// Same file on both sides: ca.pem directly in the shared directory.
	inAgg := filepath.Join(aggTLS.Target, strings.TrimPrefix(agentCA, shared.Target))
	if inAgg != filepath.Join(caDir, "ca.pem") {
		t.Errorf("agent's AVILA_CA %s is %s in the aggregator, want %s", agentCA, inAgg, filepath.Join(caDir, "ca.pem"))
	}
	if !shared.ReadOnly {
		t.Errorf("agent mounts the CA volume writable; it only reads it")
	}
}

// TestComposeStartOrder checks that each service waits for what it needs
// to be healthy, and that those services say how their health is known.
func TestComposeStartOrder(t *testing.T) {
	p := loadCompose(t)
	f := func(name, dep, cond string) {
		t.Helper()
		d, ok := service(t, p, name).DependsOn[dep]
		if !ok {
			t.Fatalf("service %s: no depends_on %s", name, dep)
		}
		if d.Condition != cond {
			t.Errorf("service %s: depends_on %s condition = %q, want %q", name, dep, d.Condition, cond)
		}
		if cond == types.ServiceConditionHealthy {
			hc := service(t, p, dep).HealthCheck
			if hc == nil || len(hc.Test) == 0 || hc.Disable {
				t.Errorf("service %s waits for %s to be healthy, but %s has no health check", name, dep, dep)
			}
		}
	}
	f("aggregator", "postgres", types.ServiceConditionHealthy)
	f("aggregator", "redis", types.ServiceConditionStarted)
	f("agent", "aggregator", types.ServiceConditionHealthy)
}
