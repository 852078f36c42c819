package deploy

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/avila-analytics/avila/protocol"
)

// secretCommands returns the shell commands of the README's Secrets
// section, continuation lines joined.
func secretCommands(t *testing.T) []string {
	t.Helper()
	doc := readFile(t, filepath.Join(k8sDir, "README.md"))
	_, section, _ := strings.Cut(doc, "\n## Secrets\n")
	section, _, _ = strings.Cut(section, "\n## ")
	var cmds []string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		joined := strings.ReplaceAll(block[1], "\\\n", " ")
		for _, l := range strings.Split(joined, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				cmds = append(cmds, l)
			}
		}
	}
	return cmds
}

// makeSecrets runs the README's `avila certs` commands with the built CLI
// in dir and lays out each Secret its kubectl commands create as the
// kubelet mounts it: one file per key, group-readable (fsGroup), in
// dir/secrets/NAME.
func makeSecrets(t *testing.T, dir string, documented map[string][]string) {
	t.Helper()
	buildBinaries(t)
	fromFile := regexp.MustCompile(`--from-file=([^=\s]+)=(\S+)`)
	fromLiteral := regexp.MustCompile(`--from-literal=([^=\s]+)=`)
	made := map[string][]string{}
	for _, c := range secretCommands(t) {
		words := strings.Fields(c)
		switch {
		case words[0] == "bin/avila":
			cmd := exec.Command(filepath.Join(buildBinaries(t), "avila"), words[1:]...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("README: %s: %v\n%s", c, err, out)
			}
		case len(words) > 6 && words[0] == "kubectl" && strings.Join(words[3:6], " ") == "create secret generic":
			name := words[6]
			sdir := filepath.Join(dir, "secrets", name)
			if err := os.MkdirAll(sdir, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, m := range fromFile.FindAllStringSubmatch(c, -1) {
				b, err := os.ReadFile(filepath.Join(dir, m[2]))
				if err != nil {
					t.Fatalf("README: %s: %v", c, err)
				}
				if err := os.WriteFile(filepath.Join(sdir, m[1]), b, 0o440); err != nil {
					t.Fatal(err)
				}
				made[name] = append(made[name], m[1])
			}
			for _, m := range fromLiteral.FindAllStringSubmatch(c, -1) {
				made[name] = append(made[name], m[1])
			}
		default:
			t.Fatalf("README Secrets section: command %q is neither `bin/avila` nor `kubectl create secret generic`", c)
		}
	}
	for name, keys := range documented {
		for _, k := range keys {
			if !slices.Contains(made[name], k) {
				t.Errorf("README: the commands do not create key %s of Secret %s", k, name)
			}
		}
	}
}

// runPod lays out pod's volumes under root (Secrets from secretsDir, the
// rest empty) and runs its init containers' commands with their paths moved
// under root, as the kubelet would before the containers start.
func runPod(t *testing.T, root, secretsDir string, w workload) {
	t.Helper()
	mountDir := map[string]string{} // volume → mount path
	for _, c := range containers(w.spec) {
		for _, vm := range c.VolumeMounts {
			mountDir[vm.Name] = vm.MountPath
		}
	}
	for _, v := range w.spec.Volumes {
		p, ok := mountDir[v.Name]
		if !ok {
			continue
		}
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		if v.Secret == nil {
			continue
		}
		src := filepath.Join(secretsDir, v.Secret.SecretName)
		ents, err := os.ReadDir(src)
		if err != nil {
			t.Fatalf("%s volume %s: %v", w, v.Name, err)
		}
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o440); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, ic := range w.spec.InitContainers {
		if ic.RestartPolicy != nil {
			continue // a sidecar: it is the agent itself
		}
		// One pass, longest mount path first: /var/run/avila/tls must not
		// also rewrite /var/run/avila/tls-secret.
		mounts := slices.Clone(ic.VolumeMounts)
		slices.SortFunc(mounts, func(a, b corev1.VolumeMount) int { return len(b.MountPath) - len(a.MountPath) })
		var pairs []string
		for _, vm := range mounts {
			pairs = append(pairs, vm.MountPath, filepath.Join(root, vm.MountPath))
		}
		move := strings.NewReplacer(pairs...)
		args := slices.Clone(ic.Command)
		for i := range args {
			args[i] = move.Replace(args[i])
		}
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s init container %s: %v\n%s", w, ic.Name, err, out)
		}
	}
}

// TestK8sTLSFromDocumentedSecrets follows the README: makes the CA and
// certificates with `avila certs`, lays the Secrets out as the kubelet does,
// runs each pod's init containers, and loads the TLS files the aggregators
// and agents are pointed at with the binaries' own loaders. Then an agent
// and an aggregator complete a mutual TLS handshake with those configs.
func TestK8sTLSFromDocumentedSecrets(t *testing.T) {
	env := newCheckEnv(t)
	dir := t.TempDir()
	makeSecrets(t, dir, env.secrets)
	secretsDir := filepath.Join(dir, "secrets")

	var server, client *tls.Config
	for _, o := range []string{"overlays/production", "overlays/agent-daemonset", "overlays/agent-sidecar"} {
		m := renderDisk(t, o)
		as, _ := m.avilaContainers(env.flagsFor)
		for _, a := range servers(as) {
			root := filepath.Join(dir, "pods", strings.ReplaceAll(o, "/", "_"), a.w.name)
			runPod(t, root, secretsDir, a.w)
			file := func(flag string) string {
				v, _, _ := a.value(flag)
				return filepath.Join(root, v)
			}
			switch a.cmd {
			case "avila-aggregator":
				conf, err := protocol.ServerTLS(file("tls-cert"), file("tls-key"), file("tls-client-ca"))
				if err != nil {
					t.Fatalf("%s: %s: %v", o, a, err)
				}
				server = conf
				// Without the init container's copy, the Secret's own file
				// is refused: that is why the copy is there.
				secretKey := filepath.Join(filepath.Dir(file("tls-cert")), "tls.key")
				if _, err := protocol.ServerTLS(file("tls-cert"), secretKey, ""); err == nil || !strings.Contains(err.Error(), "accessible to group") {
					t.Errorf("%s: the Secret's key file (mode 0440) was not refused: %v", a, err)
				}
			case "avila-agent":
				conf, err := protocol.ClientTLS(file("ca"), file("cert"), file("key"))
				if err != nil {
					t.Fatalf("%s: %s: %v", o, a, err)
				}
				client = conf
			}
		}
	}
	if server == nil || client == nil {
		t.Fatal("no aggregator or no agent TLS configuration")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	srv, cli := tls.Server(sc, server), tls.Client(cc, client)
	done := make(chan error, 1)
	go func() { done <- srv.HandshakeContext(ctx) }()
	if err := cli.HandshakeContext(ctx); err != nil {
		t.Fatalf("agent's handshake with the aggregator: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("aggregator's handshake with the agent: %v", err)
	}
	peer := srv.ConnectionState().PeerCertificates
	if len(peer) == 0 || peer[0].Subject.CommonName != "k8s-agents" {
		t.Fatalf("aggregator sees agent certificate %v, want CommonName k8s-agents", peer)
	}
}
