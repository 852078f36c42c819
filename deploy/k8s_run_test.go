package deploy

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/avila-analytics/avila/internal/testenv"
)

// podProcess is a container of a rendered pod run as a local process.
type podProcess struct {
	cmd    *exec.Cmd
	ready  map[string]string // the JSON line the server prints when ready
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan error
}

// startContainer runs a's command line and environment as rendered, with
// three changes that only this machine needs: paths move under root (where
// runPod laid out the pod's volumes), Secret values come from secrets,
// fields and ConfigMaps from m, and overrides replace flags (free loopback
// ports instead of the fixed ones other tests might hold; checkListeners
// checks those statically).
func startContainer(t *testing.T, m *manifests, a avilaContainer, root string, secrets map[string]map[string]string, overrides map[string]string) *podProcess {
	t.Helper()
	var mounts []string
	for _, vm := range a.c.VolumeMounts {
		mounts = append(mounts, vm.MountPath)
	}
	move := func(v string) string {
		for _, mp := range mounts {
			if v == mp || strings.HasPrefix(v, mp+"/") {
				return filepath.Join(root, v)
			}
		}
		return v
	}
	var args []string
	for _, w := range append(append([]string{}, a.c.Command[1:]...), a.c.Args...) {
		name, val, ok := strings.Cut(strings.TrimLeft(w, "-"), "=")
		if _, over := overrides[name]; ok && over {
			continue
		}
		if ok {
			w = w[:len(w)-len(val)] + move(val)
		}
		args = append(args, w)
	}
	for name, v := range overrides {
		args = append(args, "--"+name+"="+v)
	}
	envv := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range a.c.Env {
		if f, ok := a.fs.envFlag(e.Name); ok {
			if _, over := overrides[f.name]; over {
				continue
			}
		}
		v := move(e.Value)
		if src := e.ValueFrom; src != nil {
			switch {
			case src.SecretKeyRef != nil:
				v = secrets[src.SecretKeyRef.Name][src.SecretKeyRef.Key]
			case src.FieldRef != nil && src.FieldRef.FieldPath == "metadata.name":
				v = a.w.name + "-0"
			case src.ConfigMapKeyRef != nil:
				v = configMapValue(t, m, src.ConfigMapKeyRef)
			default:
				t.Fatalf("%s: env %s: no local value for %+v", a, e.Name, src)
			}
		}
		envv = append(envv, e.Name+"="+v)
	}
	p := &podProcess{done: make(chan error, 1)}
	p.cmd = exec.Command(filepath.Join(buildBinaries(t), a.c.Command[0]), args...)
	p.cmd.Env = envv
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, w: &p.stderr}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		for sc.Scan() {
		}
		p.done <- p.cmd.Wait()
	}()
	select {
	case line, ok := <-lines:
		if !ok || json.Unmarshal([]byte(line), &p.ready) != nil {
			t.Fatalf("%s printed no ready line (%q); stderr:\n%s", a, line, p.logs())
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s: not ready after 2 minutes; stderr:\n%s", a, p.logs())
	}
	return p
}

func (p *podProcess) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func configMapValue(t *testing.T, m *manifests, ref *corev1.ConfigMapKeySelector) string {
	t.Helper()
	for _, cm := range m.configMaps {
		if cm.Name == ref.Name {
			if v, ok := cm.Data[ref.Key]; ok {
				return v
			}
		}
	}
	t.Fatalf("ConfigMap %s has no key %s", ref.Name, ref.Key)
	return ""
}

// stop sends SIGTERM, as the kubelet does after preStop, and waits at most
// the time the pod's grace period leaves after the preStop sleep.
func (p *podProcess) stop(t *testing.T, a avilaContainer) {
	t.Helper()
	grace := time.Duration(*a.w.spec.TerminationGracePeriodSeconds) * time.Second
	if l := a.c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Exec != nil {
		var n int
		fmt.Sscanf(l.PreStop.Exec.Command[1], "%d", &n)
		grace -= time.Duration(n) * time.Second
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for Cleanup
		if err != nil {
			t.Errorf("%s exited after SIGTERM: %v; stderr:\n%s", a, err, p.logs())
		}
	case <-time.After(grace):
		t.Fatalf("%s still running %s after SIGTERM: the kubelet would kill it; stderr:\n%s", a, grace, p.logs())
	}
}

func getOK(url string) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// TestK8sPodsRunAsRendered runs the agent-daemonset overlay's containers as
// they are configured, on this machine: the migration Job, an aggregator
// with its certificate, client CA, gossip key, PostgreSQL and Redis from the
// documented Secrets, and an agent with its client certificate, which
// fetches its sites' config from the aggregator over mutual TLS and turns
// ready. Then SIGTERM, as the kubelet sends it, drains the aggregator, which
// exits within the grace period.
func TestK8sPodsRunAsRendered(t *testing.T) {
	env := newCheckEnv(t)
	dir := t.TempDir()
	makeSecrets(t, dir, env.secrets)
	secretsDir := filepath.Join(dir, "secrets")
	secrets := map[string]map[string]string{}
	for name := range env.secrets {
		secrets[name] = map[string]string{}
		ents, _ := os.ReadDir(filepath.Join(secretsDir, name))
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(secretsDir, name, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			secrets[name][e.Name()] = string(b)
		}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secrets["avila-postgres"]["url"] = testenv.PostgresURL(t)
	secrets["avila-redis"]["url"] = testenv.RedisURL(t)
	secrets["avila-gossip"]["key"] = base64.StdEncoding.EncodeToString(key)

	m := renderDisk(t, "overlays/agent-daemonset")
	as, errs := m.avilaContainers(env.flagsFor)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	byCmd := map[string]avilaContainer{}
	for _, a := range as {
		byCmd[a.cmd] = a
	}

	migrate := byCmd["avila migrate"]
	job := exec.Command(filepath.Join(buildBinaries(t), "avila"), append(migrate.c.Command[1:], migrate.c.Args...)...)
	job.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + secrets["avila-postgres"]["url"]}
	if out, err := job.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", migrate, err, out)
	}

	agg := byCmd["avila-aggregator"]
	aggRoot := filepath.Join(dir, "aggregator")
	runPod(t, aggRoot, secretsDir, agg.w)
	aggProc := startContainer(t, m, agg, aggRoot, secrets, map[string]string{
		"listen-api": "127.0.0.1:0", "listen-quic": "127.0.0.1:0", "gossip-listen": "127.0.0.1:0", "listen-operator": "127.0.0.1:0",
		"join": "", "redis-prefix": testenv.Prefix(t),
	})
	if err := getOK(aggProc.ready["api"] + "/readyz"); err != nil {
		t.Fatalf("aggregator: %v", err)
	}
	// What the ServiceMonitor scrapes: /metrics on the operator address.
	if err := getOK(aggProc.ready["operator"] + "/metrics"); err != nil {
		t.Fatalf("aggregator operator address: %v", err)
	}
	if aggProc.ready["node"] != agg.w.name+"-0" || aggProc.ready["gossip"] == "" {
		t.Errorf("aggregator ready line %v: want node %s-0, gossiping", aggProc.ready, agg.w.name)
	}
	// The manifest's --log-format=json, --tls-client-ca and gossip key took.
	for _, want := range []string{`"msg":"aggregator ready"`, `"mtls":true`, `"encrypted":true`} {
		if !strings.Contains(aggProc.logs(), want) {
			t.Errorf("aggregator log has no %s:\n%s", want, aggProc.logs())
		}
	}

	// README: create a site with the CLI in the aggregator's container.
	site := exec.Command(filepath.Join(buildBinaries(t), "avila"), "site", "create", "--name", "Shop", "--domain", "shop.example")
	site.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + secrets["avila-postgres"]["url"]}
	if out, err := site.CombinedOutput(); err != nil {
		t.Fatalf("avila site create: %v\n%s", err, out)
	}

	agent := byCmd["avila-agent"]
	agentRoot := filepath.Join(dir, "agent")
	runPod(t, agentRoot, secretsDir, agent.w)
	agentProc := startContainer(t, m, agent, agentRoot, secrets, map[string]string{
		"listen": "127.0.0.1:0", "aggregator": aggProc.ready["quic"],
	})
	deadline := time.Now().Add(time.Minute)
	for {
		err := getOK(agentProc.ready["agent"] + "/readyz")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready: %v; agent stderr:\n%s\naggregator stderr:\n%s", err, agentProc.logs(), aggProc.logs())
		}
		time.Sleep(200 * time.Millisecond) // polling interval, bounded by the deadline
	}

	aggProc.stop(t, agg)
	for _, want := range []string{"aggregator draining", "aggregator stopped"} {
		if !strings.Contains(aggProc.logs(), want) {
			t.Errorf("aggregator log has no %q after SIGTERM", want)
		}
	}
	agentProc.stop(t, agent)
}
