package deploy

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// documentedSecrets reads the Secrets table of deploy/k8s/README.md: rows
// "| `name` | `key`, `key` | how |".
func documentedSecrets(t *testing.T) map[string][]string {
	t.Helper()
	doc := readFile(t, filepath.Join(k8sDir, "README.md"))
	_, section, ok := strings.Cut(doc, "\n## Secrets\n")
	if !ok {
		t.Fatal("deploy/k8s/README.md: no \"## Secrets\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9-]+)` \\| ([^|]+)\\|")
	tick := regexp.MustCompile("`([^`]+)`")
	secrets := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		for _, k := range tick.FindAllStringSubmatch(m[2], -1) {
			secrets[m[1]] = append(secrets[m[1]], k[1])
		}
	}
	if len(secrets) == 0 {
		t.Fatal("deploy/k8s/README.md: the Secrets section has no table rows")
	}
	return secrets
}

// shutdownTimeout reads `const shutdownTimeout = N * time.Second` from a
// command's package (cmd/NAME/command/command.go): how long it may take to
// stop after SIGTERM.
func shutdownTimeout(t *testing.T, cmd string) int {
	t.Helper()
	file := filepath.Join(repoRoot, "cmd", cmd, "command", "command.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if len(vs.Names) != 1 || vs.Names[0].Name != "shutdownTimeout" || len(vs.Values) != 1 {
				continue
			}
			if b, ok := vs.Values[0].(*ast.BinaryExpr); ok && b.Op == token.MUL {
				lit, ok1 := b.X.(*ast.BasicLit)
				sel, ok2 := b.Y.(*ast.SelectorExpr)
				if ok1 && ok2 && sel.Sel.Name == "Second" {
					if n, err := strconv.Atoi(lit.Value); err == nil {
						return n
					}
				}
			}
			t.Fatalf("%s: shutdownTimeout is not N * time.Second", file)
		}
	}
	t.Fatalf("%s: no const shutdownTimeout", file)
	return 0
}

// newCheckEnv gathers what the manifests are checked against.
func newCheckEnv(t *testing.T) checkEnv {
	t.Helper()
	var bench map[string]any
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(repoRoot, "bench", "results.json"))), &bench); err != nil {
		t.Fatalf("bench/results.json: %v", err)
	}
	figure := func(key string) float64 {
		v, ok := bench[key].(float64)
		if !ok || v <= 0 {
			t.Fatalf("bench/results.json: no %s", key)
		}
		return v
	}
	return checkEnv{
		flagsFor: func(cmd string) flagSet { return binaryFlags(t, cmd) },
		secrets:  documentedSecrets(t),
		shutdownTimeout: map[string]int{
			"avila-aggregator": shutdownTimeout(t, "avila-aggregator"),
			"avila-agent":      shutdownTimeout(t, "avila-agent"),
		},
		rssLoadMiB: map[string]float64{"avila-aggregator": figure("aggregator_rss_mb_load"), "avila-agent": figure("agent_rss_mb_load")},
		rssPeakMiB: map[string]float64{"avila-aggregator": figure("aggregator_rss_mb_hwm"), "avila-agent": figure("agent_rss_mb_hwm")},
	}
}

// TestK8sOverlays renders every kustomization as committed and runs every
// check on it.
func TestK8sOverlays(t *testing.T) {
	env := newCheckEnv(t)
	for _, o := range overlays {
		t.Run(strings.ReplaceAll(o, "/", "_"), func(t *testing.T) {
			m := renderDisk(t, o)
			for _, err := range runChecks(m, env) {
				t.Error(err)
			}
		})
	}
}

// TestK8sContents checks what each overlay is for: the checks above pass
// vacuously on a deployment that lacks a part.
func TestK8sContents(t *testing.T) {
	env := newCheckEnv(t)
	f := func(overlay string, aggregators int, agentKind string) {
		t.Helper()
		m := renderDisk(t, overlay)
		as, _ := m.avilaContainers(env.flagsFor)
		count := map[string]int{}
		for _, a := range as {
			count[a.cmd]++
			if a.cmd == "avila-aggregator" && a.w.replicas != aggregators {
				t.Errorf("%s: %s has %d replicas, want %d", overlay, a.w, a.w.replicas, aggregators)
			}
			if a.cmd == "avila-agent" && a.w.kind != agentKind {
				t.Errorf("%s: agent runs in a %s, want %s", overlay, a.w.kind, agentKind)
			}
		}
		want := map[string]int{"avila-aggregator": 1, "avila migrate": 1}
		if agentKind != "" {
			want["avila-agent"] = 1
		}
		for cmd, n := range want {
			if count[cmd] != n {
				t.Errorf("%s: %d containers run %s, want %d", overlay, count[cmd], cmd, n)
			}
		}
		if len(m.pdbs) != 1 || len(m.serviceMonitors) == 0 {
			t.Errorf("%s: %d PodDisruptionBudgets and %d ServiceMonitors, want 1 and at least 1", overlay, len(m.pdbs), len(m.serviceMonitors))
		}
		for _, w := range m.workloads() {
			for _, c := range containers(w.spec) {
				if w.kind == "StatefulSet" && w.name == "web" && c.Name == "agent" && (c.RestartPolicy == nil || *c.RestartPolicy != "Always") {
					t.Errorf("%s: the agent in %s is not a native sidecar", overlay, w)
				}
			}
		}
	}
	f("base", 1, "")
	f("overlays/production", 3, "")
	f("overlays/agent-daemonset", 3, "DaemonSet")
	f("overlays/agent-sidecar", 3, "StatefulSet")
}

// TestK8sDocumentedSecretsUsed keeps the README's list from naming Secrets
// or keys nothing reads.
func TestK8sDocumentedSecretsUsed(t *testing.T) {
	env := newCheckEnv(t)
	used := map[string][]string{}
	for _, o := range overlays {
		m := renderDisk(t, o)
		for _, r := range secretRefs(m) {
			used[r.name] = append(used[r.name], r.keys...)
		}
		as, _ := m.avilaContainers(env.flagsFor)
		for _, a := range as {
			for _, flag := range fileFlags {
				p, _, _ := a.value(flag)
				if vm, vol, ok := mountFor(a.w.spec, a.c, p); ok && vol != nil && vol.Secret != nil {
					used[vol.Secret.SecretName] = append(used[vol.Secret.SecretName], strings.TrimPrefix(p, vm.MountPath+"/"))
				}
			}
			for _, ic := range a.w.spec.InitContainers {
				for _, vm := range ic.VolumeMounts {
					for _, v := range a.w.spec.Volumes {
						if v.Name != vm.Name || v.Secret == nil {
							continue
						}
						for _, w := range ic.Command {
							for _, arg := range strings.Fields(w) {
								if strings.HasPrefix(arg, vm.MountPath+"/") {
									used[v.Secret.SecretName] = append(used[v.Secret.SecretName], strings.TrimPrefix(arg, vm.MountPath+"/"))
								}
							}
						}
					}
				}
			}
		}
	}
	for name, keys := range env.secrets {
		for _, k := range keys {
			if !slices.Contains(used[name], k) {
				t.Errorf("README documents Secret %s key %s, which no overlay reads", name, k)
			}
		}
	}
}

// TestK8sSidecarNginx checks the example app's proxy: the tracker paths go
// to the agent's port on localhost, with the browser's address.
func TestK8sSidecarNginx(t *testing.T) {
	env := newCheckEnv(t)
	m := renderDisk(t, "overlays/agent-sidecar")
	var conf string
	for _, cm := range m.configMaps {
		if strings.HasPrefix(cm.Name, "web-nginx") {
			conf = stripComments(cm.Data["default.conf"])
		}
	}
	if conf == "" {
		t.Fatal("agent-sidecar: no web-nginx ConfigMap with default.conf")
	}
	as, _ := m.avilaContainers(env.flagsFor)
	var port string
	for _, a := range as {
		if a.cmd == "avila-agent" {
			v, _, _ := a.value("listen")
			_, port, _ = strings.Cut(v, ":")
			if tp, _, _ := a.value("trusted-proxies"); tp != "127.0.0.1" {
				t.Errorf("agent --trusted-proxies = %q, want 127.0.0.1: nginx in the pod sends X-Forwarded-For", tp)
			}
		}
	}
	locs := regexp.MustCompile(`location\s+~\s+(\S+)\s*\{([^}]*)\}`).FindAllStringSubmatch(conf, -1)
	for _, p := range trackerPaths {
		ok := false
		for _, l := range locs {
			if regexp.MustCompile(l[1]).MatchString(p) && strings.Contains(l[2], "proxy_pass http://127.0.0.1:"+port+";") &&
				strings.Contains(l[2], "X-Forwarded-For") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("nginx.conf: %s is not proxied to the agent on 127.0.0.1:%s with X-Forwarded-For", p, port)
		}
	}
}

// brokenCase is one way of breaking the manifests and the error it must
// cause.
type brokenCase struct {
	overlay, file, old, new string
	want                    string // substring of one error
}

// edit replaces old, which must occur exactly once, with new in a copy.
func edit(t *testing.T, fsys filesys.FileSystem, file, old, new string) {
	t.Helper()
	p := "/" + k8sDir + "/" + file
	b, err := fsys.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), old); n != 1 {
		t.Fatalf("%s: %q occurs %d times, want once", file, old, n)
	}
	if err := fsys.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1))); err != nil {
		t.Fatal(err)
	}
}

// TestK8sChecksCatchBreakage breaks the manifests one way at a time and
// expects the checks to say so: each check must fail when the property it
// guards is lost.
func TestK8sChecksCatchBreakage(t *testing.T) {
	env := newCheckEnv(t)
	const (
		sts  = "base/aggregator-statefulset.yaml"
		svcs = "base/aggregator-services.yaml"
		ds   = "overlays/agent-daemonset/agent-daemonset.yaml"
		web  = "overlays/agent-sidecar/web.yaml"
		prod = "overlays/production/aggregator.yaml"
	)
	cases := []brokenCase{
		// Strict decoding.
		{"base", sts, "  podManagementPolicy: Parallel", "  podManagementPolicy: Parallel\n  replica: 3", `unknown field "spec.replica"`},
		{"base", sts, "              containerPort: 8080", "              containerPort: 8080\n              hostname: api", `unknown field "spec.template.spec.containers[0].ports[0].hostname"`},
		{"base", "base/aggregator-pdb.yaml", "  maxUnavailable: 1", "  maxUnavailable: 1\n  maxunavailable: 1", `unknown field "spec.maxunavailable"`},
		{"base", "base/servicemonitor.yaml", "      interval: 30s", "      interval: 30s\n      scrapeEvery: 30s", `unknown field "spec.endpoints[0].scrapeEvery"`},
		{"base", "base/migrate-job.yaml", "kind: Job", "kind: CronJob", "not one this deployment uses"},
		// Flags and environment against the binaries.
		{"base", sts, "            - --log-format=json", "            - --log-fromat=json", "--log-fromat is not a flag of avila-aggregator"},
		{"base", sts, "            - name: AVILA_NODE_NAME", "            - name: AVILA_NODENAME", "AVILA_NODENAME is read by no flag"},
		{"base", sts, "            - name: REDIS_URL", "            - name: REDIS_ADDR", "REDIS_ADDR means nothing"},
		{"base", "base/migrate-job.yaml", "            - --log-format=json", "            - --log-format=json\n            - --listen-api=0.0.0.0:8080", "--listen-api is not a flag of avila migrate"},
		{"overlays/agent-daemonset", ds, "            - --log-format=json", "            - --log-format=json\n            - --listen-quic=0.0.0.0:4433", "--listen-quic is not a flag of avila-agent"},
		{"base", sts, "            - --log-format=json", "            - --log-format=json\n            - --join=x:7946", "--join is in args and AVILA_JOIN in env"},
		// Ports against listen addresses.
		{"base", sts, "              containerPort: 4433\n              protocol: UDP", "              containerPort: 4433\n              protocol: TCP", "listens for QUIC on 4433/UDP (--listen-quic) but declares no such container port"},
		{"base", sts, "            - --listen-api=0.0.0.0:8080", "            - --listen-api=0.0.0.0:8082", "listens for HTTP API on 8082/TCP"},
		{"base", sts, "            - --listen-api=0.0.0.0:8080\n", "", "--listen-api=\"127.0.0.1:8080\" listens on 127.0.0.1 only"},
		{"overlays/agent-sidecar", web, "            - --listen=0.0.0.0:8090", "            - --listen=127.0.0.1:8090", "listens on 127.0.0.1 only"},
		{"base", sts, "            - name: gossip-udp\n              containerPort: 7946", "            - name: gossip-udp\n              containerPort: 7947", "container port gossip-udp 7947/UDP is not an address"},
		// Probes.
		{"base", sts, "              path: /readyz", "              path: /ready", `readiness probe asks "/ready", want /readyz`},
		{"overlays/agent-daemonset", ds, "              path: /healthz", "              path: /metrics", `liveness probe asks "/metrics"`},
		{"overlays/agent-sidecar", web, "              path: /readyz\n              port: agent", "              path: /readyz\n              port: 8080", "readiness probe port 8080 is not the port"},
		// Gossip.
		{"base", svcs, "  publishNotReadyAddresses: true\n", "", "without publishNotReadyAddresses"},
		{"base", svcs, "  clusterIP: None\n", "", "gossip Service is not headless"},
		{"base", svcs, "      targetPort: gossip-udp\n      protocol: UDP", "      targetPort: gossip-udp\n      protocol: TCP", "no port 7946/UDP to the gossip port"},
		{"base", sts, "  serviceName: avila-aggregator-gossip", "  serviceName: avila-gossip", `serviceName "avila-gossip" names no Service`},
		{"overlays/production", "overlays/production/kustomization.yaml", "    count: 3", "    count: 4", "want every replica's gossip name"},
		{"overlays/production", prod, ",avila-aggregator-2.avila-aggregator-gossip:7946", "", "want every replica's gossip name"},
		{"base", sts, "            - name: AVILA_GOSSIP_KEY\n              valueFrom:\n                secretKeyRef:\n                  name: avila-gossip\n                  key: key\n",
			"            - name: AVILA_GOSSIP_KEY\n              value: c2VjcmV0c2VjcmV0c2VjcmV0\n", "gossip key is written in the manifest"},
		// PodDisruptionBudget.
		{"base", "base/aggregator-pdb.yaml", "  maxUnavailable: 1", "  maxUnavailable: 0", "allows no disruption"},
		{"overlays/production", "base/aggregator-pdb.yaml", "  maxUnavailable: 1", "  minAvailable: 3", "allows no disruption"},
		{"base", "base/aggregator-pdb.yaml", "      app.kubernetes.io/component: aggregator", "      app.kubernetes.io/component: aggregators", "0 PodDisruptionBudgets select its pods"},
		{"overlays/agent-daemonset", "base/aggregator-pdb.yaml", "      app.kubernetes.io/component: aggregator\n", "", "also selects DaemonSet avila-agent's pods"},
		// Secrets.
		{"base", sts, "                  name: avila-redis", "                  name: redis", "Secret redis is not among the documented Secrets"},
		{"base", "base/migrate-job.yaml", "                  key: url", "                  key: uri", `Secret avila-postgres has no documented key "uri"`},
		{"base", sts, "            - --tls-cert=/var/run/avila/tls-secret/tls.crt", "            - --tls-cert=/var/run/avila/tls-secret/cert.pem", `Secret avila-aggregator-tls has no documented key "cert.pem"`},
		{"base", "base/kustomization.yaml", "  - servicemonitor.yaml", "  - servicemonitor.yaml\n  - secret.yaml", "Secrets are created by hand"},
		// Files, keys.
		{"base", sts, "            - --tls-key=/var/run/avila/tls/tls.key", "            - --tls-key=/var/run/avila/tls-secret/tls.key", "read from a Secret volume"},
		{"overlays/agent-daemonset", ds, "            - --key=/var/run/avila/tls/tls.key", "            - --key=/etc/avila/tls.key", "is on no volume mount"},
		{"base", sts, "            - --data-dir=/var/lib/avila/aggregator\n", "", `--data-dir="./data/aggregator" is relative`},
		{"overlays/agent-daemonset", ds, "            - name: queue\n              mountPath: /var/lib/avila/agent\n            - name: tls-secret\n              mountPath: /var/run/avila/tls-secret\n              readOnly: true\n            - name: tls\n              mountPath: /var/run/avila/tls\n              readOnly: true\n      volumes",
			"            - name: queue\n              mountPath: /var/lib/avila/agent\n              readOnly: true\n            - name: tls-secret\n              mountPath: /var/run/avila/tls-secret\n              readOnly: true\n            - name: tls\n              mountPath: /var/run/avila/tls\n              readOnly: true\n      volumes", "--data-dir=/var/lib/avila/agent is on read-only volume"},
		{"base", sts, "            - name: tls\n              mountPath: /var/run/avila/tls\n      containers:", "            - name: tls\n              mountPath: /var/run/avila/tls\n              readOnly: true\n      containers:", "which no init container writes"},
		// Images.
		{"base", "base/migrate-job.yaml", "          image: avila", "          image: registry.example.com/avila:0.9", "Avila containers use 2 images"},
		{"base", "base/kustomization.yaml", "    newTag: local", "    newTag: latest", "want the avila image pinned to a tag"},
		{"overlays/agent-daemonset", "overlays/production/kustomization.yaml", "    newTag: local", "    newName: registry.example.com/avila\n    newTag: v1", "Avila containers use 2 images"},
		{"base", sts, `          command: ["avila-aggregator"]`, `          command: ["avila-aggregatr"]`, "runs [\"avila-aggregatr\"] from the avila image"},
		// Services.
		{"base", svcs, "      targetPort: api", "      targetPort: http", "target http is no TCP port of StatefulSet avila-aggregator"},
		{"overlays/agent-daemonset", "overlays/agent-daemonset/agent-service.yaml", "    app.kubernetes.io/component: agent\n  ports", "    app.kubernetes.io/component: agents\n  ports", "Service avila-agent: selector"},
		{"overlays/agent-daemonset", ds, "            - --aggregator=avila-aggregator.avila.svc:4433", "            - --aggregator=avila-aggregator.avila.svc:8080", "has no UDP port 8080"},
		{"overlays/agent-sidecar", web, "            - --aggregator=avila-aggregator.avila.svc:4433", "            - --aggregator=aggregator:4433", "names no Service of this deployment"},
		// ServiceMonitor.
		{"base", "base/servicemonitor.yaml", "    - port: operator", "    - port: quic", `port "quic" of Service avila-aggregator-operator does not lead to a /metrics listener`},
		// The API address serves no /metrics: a ServiceMonitor on it is refused.
		{"base", svcs, "    - name: operator\n      port: 8081\n      targetPort: operator", "    - name: operator\n      port: 8081\n      targetPort: api", `port "operator" of Service avila-aggregator-operator does not lead to a /metrics listener`},
		{"base", sts, "            - --listen-operator=0.0.0.0:8081\n", "", `--listen-operator="127.0.0.1:8081" listens on 127.0.0.1 only`},
		{"base", "base/servicemonitor.yaml", "      path: /metrics", "      path: /metric", `path "/metric", want /metrics`},
		{"base", "base/servicemonitor.yaml", "      app.kubernetes.io/component: operator", "      app.kubernetes.io/component: api", "selects no Service"},
		// Shutdown.
		{"base", sts, "      terminationGracePeriodSeconds: 45", "      terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds 30 < preStop 5 s + shutdown 30 s"},
		{"base", sts, `                command: ["sleep", "5"]`, `                command: ["curl", "-X", "POST", "http://127.0.0.1:8080/drain"]`, "only a sleep belongs there"},
		{"overlays/agent-daemonset", ds, "      terminationGracePeriodSeconds: 40", "      terminationGracePeriodSeconds: 20", "terminationGracePeriodSeconds 20"},
		// Resources.
		{"base", sts, "              memory: 320Mi", "              memory: 64Mi", "MiB RSS bench measured under load"},
		{"overlays/production", prod, "              memory: 1Gi", "              memory: 200Mi", "MiB peak RSS bench measured"},
		{"overlays/agent-sidecar", web, "              cpu: 50m\n              memory: 80Mi\n            limits:\n              memory: 160Mi", "              cpu: 50m\n              memory: 80Mi\n            limits:\n              memory: 64Mi", "memory limit 64Mi is below twice"},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%02d_%s", i, c.want), func(t *testing.T) {
			fsys := k8sFS(t)
			if c.file == "base/kustomization.yaml" && strings.Contains(c.new, "secret.yaml") {
				secret := "apiVersion: v1\nkind: Secret\nmetadata:\n  name: avila-gossip\nstringData:\n  key: c2VjcmV0\n"
				if err := fsys.WriteFile("/"+k8sDir+"/base/secret.yaml", []byte(secret)); err != nil {
					t.Fatal(err)
				}
			}
			edit(t, fsys, c.file, c.old, c.new)
			m, err := render(fsys, c.overlay)
			var errs []error
			if err != nil {
				errs = []error{err}
			} else {
				errs = runChecks(m, env)
			}
			if c.want == "" {
				for _, err := range errs {
					t.Errorf("unexpected: %v", err)
				}
				return
			}
			for _, err := range errs {
				if strings.Contains(err.Error(), c.want) {
					return
				}
			}
			t.Errorf("no error mentions %q; got %d:", c.want, len(errs))
			for _, err := range errs {
				t.Log(err)
			}
		})
	}
}
