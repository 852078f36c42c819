package deploy

import (
	"fmt"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// listener is an address flag of a server binary and what it serves.
type listener struct {
	flag    string
	protos  []corev1.Protocol
	health  bool // /healthz and /readyz are here (probes)
	metrics bool // /metrics is here (ServiceMonitors)
	gossip  bool
	purpose string
}

var (
	tcp = []corev1.Protocol{corev1.ProtocolTCP}
	udp = []corev1.Protocol{corev1.ProtocolUDP}
)

// listeners are the servers' listen flags (see cmd/*/main.go and README's
// configuration tables).
var listeners = map[string][]listener{
	"avila-aggregator": {
		{flag: "listen-api", protos: tcp, health: true, purpose: "HTTP API"},
		{flag: "listen-quic", protos: udp, purpose: "QUIC"},
		{flag: "gossip-listen", protos: []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP}, gossip: true, purpose: "gossip"},
		{flag: "listen-operator", protos: tcp, metrics: true, purpose: "operator HTTP (metrics, cluster status)"},
	},
	"avila-agent": {
		{flag: "listen", protos: tcp, health: true, metrics: true, purpose: "HTTP"},
	},
}

// fileFlags name files or directories the binaries read or write.
var fileFlags = []string{"data-dir", "tls-cert", "tls-key", "tls-client-ca", "api-tls-cert", "api-tls-key", "ca", "cert", "key", "queue-key-file", "geoip-db"}

// keyFlags name private keys, which the binaries refuse when their group or
// others may read them (protocol.loadKeyPair).
var keyFlags = []string{"tls-key", "api-tls-key", "key"}

// checkEnv is what the checks compare the manifests with.
type checkEnv struct {
	flagsFor        func(cmd string) flagSet
	secrets         map[string][]string // documented Secrets: name → keys
	shutdownTimeout map[string]int      // seconds a binary may take to stop after SIGTERM
	rssLoadMiB      map[string]float64  // bench/results.json, RSS under load
	rssPeakMiB      map[string]float64  // bench/results.json, RSS high-water mark
}

type check struct {
	name string
	fn   func(m *manifests, as []avilaContainer, env checkEnv) []error
}

var checks = []check{
	{"listeners", checkListeners},
	{"probes", checkProbes},
	{"gossip", checkGossip},
	{"pdb", checkPDB},
	{"secrets", checkSecrets},
	{"files", checkFiles},
	{"images", checkImages},
	{"services", checkServices},
	{"agents", checkAgentsReachAggregators},
	{"servicemonitors", checkServiceMonitors},
	{"shutdown", checkShutdown},
	{"resources", checkResources},
}

// runChecks reads the Avila containers against their flag sets and runs
// every check.
func runChecks(m *manifests, env checkEnv) []error {
	as, errs := m.avilaContainers(env.flagsFor)
	for _, c := range checks {
		errs = append(errs, c.fn(m, as, env)...)
	}
	return errs
}

func servers(as []avilaContainer) []avilaContainer {
	var out []avilaContainer
	for _, a := range as {
		if _, ok := listeners[a.cmd]; ok {
			out = append(out, a)
		}
	}
	return out
}

// listenPort returns the port a listener flag is set to, checking that it
// listens on every interface: other pods, the kubelet's probes and Services
// reach a pod on its IP, never on loopback.
func listenPort(a avilaContainer, l listener) (int32, bool, error) {
	v, ref, _ := a.value(l.flag)
	if ref != nil {
		return 0, false, fmt.Errorf("%s: --%s comes from a reference; give the address literally", a, l.flag)
	}
	if v == "" {
		return 0, false, nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return 0, false, fmt.Errorf("%s: --%s=%q: want host:port", a, l.flag, v)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return 0, false, fmt.Errorf("%s: --%s=%q listens on %s only; other pods and the kubelet reach the pod's IP (use 0.0.0.0)", a, l.flag, v, host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return 0, false, fmt.Errorf("%s: --%s=%q: want a fixed port", a, l.flag, v)
	}
	return int32(p), true, nil
}

// checkListeners: each address a server listens on is a declared container
// port with its protocol, and each container port is one it listens on.
func checkListeners(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, a := range servers(as) {
		type pp struct {
			port  int32
			proto corev1.Protocol
		}
		listening := map[pp]bool{}
		for _, l := range listeners[a.cmd] {
			if _, ok := a.fs[l.flag]; !ok {
				errs = append(errs, fmt.Errorf("%s: %s has no --%s any more; update the listeners table", a, a.cmd, l.flag))
				continue
			}
			port, ok, err := listenPort(a, l)
			if err != nil {
				errs = append(errs, err)
			}
			if !ok {
				continue
			}
			for _, proto := range l.protos {
				listening[pp{port, proto}] = true
				if !slices.ContainsFunc(a.c.Ports, func(cp corev1.ContainerPort) bool {
					return cp.ContainerPort == port && protoOf(cp.Protocol) == proto
				}) {
					errs = append(errs, fmt.Errorf("%s: listens for %s on %d/%s (--%s) but declares no such container port", a, l.purpose, port, proto, l.flag))
				}
			}
		}
		for _, cp := range a.c.Ports {
			if !listening[pp{cp.ContainerPort, protoOf(cp.Protocol)}] {
				errs = append(errs, fmt.Errorf("%s: container port %s %d/%s is not an address %s listens on", a, cp.Name, cp.ContainerPort, protoOf(cp.Protocol), a.cmd))
			}
		}
	}
	return errs
}

// protoOf is p with Kubernetes' default.
func protoOf(p corev1.Protocol) corev1.Protocol {
	if p == "" {
		return corev1.ProtocolTCP
	}
	return p
}

// checkProbes: readiness asks /readyz and liveness (and startup) /healthz,
// over HTTP on the port the server's health endpoints are on.
func checkProbes(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, a := range servers(as) {
		var healthPort int32
		for _, l := range listeners[a.cmd] {
			if l.health {
				healthPort, _, _ = listenPort(a, l)
			}
		}
		f := func(kind string, p *corev1.Probe, path string, required bool) {
			switch {
			case p == nil:
				if required {
					errs = append(errs, fmt.Errorf("%s: no %s probe", a, kind))
				}
				return
			case p.HTTPGet == nil:
				errs = append(errs, fmt.Errorf("%s: %s probe is not an HTTP GET of %s", a, kind, path))
				return
			}
			g := p.HTTPGet
			if g.Path != path {
				errs = append(errs, fmt.Errorf("%s: %s probe asks %q, want %s", a, kind, g.Path, path))
			}
			if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
				errs = append(errs, fmt.Errorf("%s: %s probe uses %s; the API serves plain HTTP", a, kind, g.Scheme))
			}
			cp, ok := containerPort(a.c, g.Port)
			if !ok || cp.ContainerPort != healthPort || protoOf(cp.Protocol) != corev1.ProtocolTCP {
				errs = append(errs, fmt.Errorf("%s: %s probe port %s is not the port %s serves %s on (%d)", a, kind, g.Port.String(), a.cmd, path, healthPort))
			}
		}
		f("readiness", a.c.ReadinessProbe, "/readyz", true)
		f("liveness", a.c.LivenessProbe, "/healthz", true)
		f("startup", a.c.StartupProbe, "/healthz", false)
	}
	return errs
}

// serviceNamed returns the Service called name.
func (m *manifests) serviceNamed(name string) *corev1.Service {
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// checkGossip: clustered aggregators run in a StatefulSet whose headless
// Service publishes the gossip port (TCP and UDP) of pods ready or not,
// --join names every replica by its stable name, and the gossip key comes
// from a Secret.
func checkGossip(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, a := range as {
		if a.cmd != "avila-aggregator" {
			continue
		}
		var gl listener
		for _, l := range listeners[a.cmd] {
			if l.gossip {
				gl = l
			}
		}
		port, ok, _ := listenPort(a, gl)
		if !ok {
			if a.w.replicas > 1 {
				errs = append(errs, fmt.Errorf("%s: %d replicas without --gossip-listen run as separate clusters", a, a.w.replicas))
			}
			continue
		}
		if a.w.kind != "StatefulSet" {
			errs = append(errs, fmt.Errorf("%s: gossiping aggregators need stable names: run them in a StatefulSet", a))
			continue
		}
		svc := m.serviceNamed(a.w.serviceName)
		switch {
		case svc == nil:
			errs = append(errs, fmt.Errorf("%s: serviceName %q names no Service", a.w, a.w.serviceName))
			continue
		case svc.Spec.ClusterIP != corev1.ClusterIPNone:
			errs = append(errs, fmt.Errorf("Service %s: gossip Service is not headless (clusterIP: None)", svc.Name))
		case !svc.Spec.PublishNotReadyAddresses:
			errs = append(errs, fmt.Errorf("Service %s: without publishNotReadyAddresses starting nodes cannot resolve each other", svc.Name))
		}
		if !selects(svc.Spec.Selector, a.w.labels) {
			errs = append(errs, fmt.Errorf("Service %s: selector %v does not select %s's pods", svc.Name, svc.Spec.Selector, a.w))
		}
		for _, proto := range gl.protos {
			found := false
			for _, sp := range svc.Spec.Ports {
				cp, ok := containerPort(a.c, targetPort(sp))
				if sp.Port == port && protoOf(sp.Protocol) == proto && ok && cp.ContainerPort == port && protoOf(cp.Protocol) == proto {
					found = true
				}
			}
			if !found {
				errs = append(errs, fmt.Errorf("Service %s: no port %d/%s to the gossip port", svc.Name, port, proto))
			}
		}
		var want []string
		for i := range a.w.replicas {
			want = append(want, fmt.Sprintf("%s-%d.%s:%d", a.w.name, i, svc.Name, port))
		}
		join, ref, _ := a.value("join")
		var got []string
		for _, j := range strings.Split(join, ",") {
			if j = strings.TrimSpace(j); j != "" {
				got = append(got, j)
			}
		}
		if ref != nil || !slices.Equal(got, want) {
			errs = append(errs, fmt.Errorf("%s: --join = %q, want every replica's gossip name %q", a, join, strings.Join(want, ",")))
		}
		if v, ref, set := a.value("gossip-key"); !set || ref == nil || ref.SecretKeyRef == nil {
			if v != "" {
				errs = append(errs, fmt.Errorf("%s: the gossip key is written in the manifest; take it from a Secret", a))
			} else {
				errs = append(errs, fmt.Errorf("%s: no gossip key: gossip would travel in clear text", a))
			}
		}
	}
	return errs
}

func targetPort(sp corev1.ServicePort) intstr.IntOrString {
	if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal == 0 {
		return intstr.FromInt32(sp.Port)
	}
	return sp.TargetPort
}

// checkPDB: each aggregator StatefulSet has one budget that selects its
// pods and no others and lets one pod go at a time.
func checkPDB(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, w := range m.workloads() {
		if !slices.ContainsFunc(as, func(a avilaContainer) bool { return a.w.name == w.name && a.cmd == "avila-aggregator" }) {
			continue
		}
		n := 0
		for _, p := range m.pdbs {
			if p.Spec.Selector == nil || !selects(p.Spec.Selector.MatchLabels, w.labels) {
				continue
			}
			n++
			for _, o := range m.workloads() {
				if o.name != w.name && selects(p.Spec.Selector.MatchLabels, o.labels) {
					errs = append(errs, fmt.Errorf("PodDisruptionBudget %s also selects %s's pods", p.Name, o))
				}
			}
			allowed := 0
			switch {
			case p.Spec.MaxUnavailable != nil:
				allowed, _ = intstr.GetScaledValueFromIntOrPercent(p.Spec.MaxUnavailable, w.replicas, false)
			case p.Spec.MinAvailable != nil:
				minAvail, _ := intstr.GetScaledValueFromIntOrPercent(p.Spec.MinAvailable, w.replicas, true)
				allowed = w.replicas - minAvail
			}
			if allowed < 1 {
				errs = append(errs, fmt.Errorf("PodDisruptionBudget %s allows no disruption of %s's %d pods: node drains would block", p.Name, w, w.replicas))
			}
		}
		if n != 1 {
			errs = append(errs, fmt.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", w, n))
		}
	}
	return errs
}

// secretRef is one use of a Secret.
type secretRef struct {
	where, name string
	keys        []string // nil: the whole Secret
}

func secretRefs(m *manifests) []secretRef {
	var refs []secretRef
	for _, w := range m.workloads() {
		for _, c := range containers(w.spec) {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					r := e.ValueFrom.SecretKeyRef
					refs = append(refs, secretRef{fmt.Sprintf("%s container %s env %s", w, c.Name, e.Name), r.Name, []string{r.Key}})
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.SecretRef != nil {
					refs = append(refs, secretRef{fmt.Sprintf("%s container %s envFrom", w, c.Name), ef.SecretRef.Name, nil})
				}
			}
		}
		for _, v := range w.spec.Volumes {
			var ss []*corev1.SecretProjection
			if v.Secret != nil {
				ss = append(ss, &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: v.Secret.SecretName}, Items: v.Secret.Items})
			}
			if v.Projected != nil {
				for _, src := range v.Projected.Sources {
					if src.Secret != nil {
						ss = append(ss, src.Secret)
					}
				}
			}
			for _, s := range ss {
				r := secretRef{where: fmt.Sprintf("%s volume %s", w, v.Name), name: s.Name}
				for _, it := range s.Items {
					r.keys = append(r.keys, it.Key)
				}
				refs = append(refs, r)
			}
		}
	}
	return refs
}

// checkSecrets: no Secret ships with the manifests, and every Secret and
// key they use is one deploy/k8s/README.md tells how to create.
func checkSecrets(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, s := range m.secrets {
		errs = append(errs, fmt.Errorf("Secret %s is in the manifests; Secrets are created by hand (README), never shipped", s.Name))
	}
	for _, r := range secretRefs(m) {
		keys, ok := env.secrets[r.name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: Secret %s is not among the documented Secrets", r.where, r.name))
			continue
		}
		for _, k := range r.keys {
			if !slices.Contains(keys, k) {
				errs = append(errs, fmt.Errorf("%s: Secret %s has no documented key %q", r.where, r.name, k))
			}
		}
	}
	return errs
}

// checkFiles: every file or directory a binary is pointed at is on a
// volume (root file systems are read-only), files on Secret volumes are
// documented keys, the data directory is writable, and private keys are on
// a volume an init container wrote, since Secret files are group-readable
// and the binaries refuse such keys.
func checkFiles(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, a := range as {
		for _, flag := range fileFlags {
			if _, ok := a.fs[flag]; !ok {
				continue
			}
			p, _, _ := a.value(flag)
			if p == "" {
				continue
			}
			if !path.IsAbs(p) {
				errs = append(errs, fmt.Errorf("%s: --%s=%q is relative to the image's working directory; put it on a volume", a, flag, p))
				continue
			}
			vm, vol, ok := mountFor(a.w.spec, a.c, p)
			if !ok {
				errs = append(errs, fmt.Errorf("%s: --%s=%s is on no volume mount", a, flag, p))
				continue
			}
			isSecret := vol != nil && vol.Secret != nil
			if isSecret {
				key := strings.TrimPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/")
				if keys, ok := env.secrets[vol.Secret.SecretName]; ok && !slices.Contains(keys, key) {
					errs = append(errs, fmt.Errorf("%s: --%s=%s: Secret %s has no documented key %q", a, flag, p, vol.Secret.SecretName, key))
				}
			}
			if flag == "data-dir" && (vm.ReadOnly || vol != nil && (vol.Secret != nil || vol.ConfigMap != nil || vol.Projected != nil)) {
				errs = append(errs, fmt.Errorf("%s: --data-dir=%s is on read-only volume %s", a, p, vm.Name))
			}
			if !slices.Contains(keyFlags, flag) {
				continue
			}
			if isSecret || vol != nil && vol.Projected != nil {
				errs = append(errs, fmt.Errorf("%s: --%s=%s is read from a Secret volume, whose files are group-readable: %s refuses such a key; copy it with mode 0600 in an init container", a, flag, p, a.cmd))
				continue
			}
			writer := false
			for i := range a.w.spec.InitContainers {
				ic := &a.w.spec.InitContainers[i]
				if ic.RestartPolicy != nil {
					continue // a sidecar, not run before the others
				}
				for _, icm := range ic.VolumeMounts {
					if icm.Name == vm.Name && !icm.ReadOnly {
						writer = true
					}
				}
			}
			if !writer {
				errs = append(errs, fmt.Errorf("%s: --%s=%s is on volume %s, which no init container writes: the key will not be there", a, flag, p, vm.Name))
			}
		}
	}
	return errs
}

// checkImages: every container that runs an Avila binary uses one image
// reference, pinned to a tag other than latest, and that image runs
// nothing but its binaries and shell tools.
func checkImages(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	images := map[string][]string{}
	for _, a := range as {
		images[a.c.Image] = append(images[a.c.Image], a.String())
	}
	if len(images) > 1 {
		errs = append(errs, fmt.Errorf("Avila containers use %d images, want one: %v", len(images), images))
	}
	for img := range images {
		name, tag, _ := strings.Cut(path.Base(img), ":")
		if name != "avila" || tag == "" || tag == "latest" {
			errs = append(errs, fmt.Errorf("image %q: want the avila image pinned to a tag", img))
		}
	}
	for _, w := range m.workloads() {
		for _, c := range containers(w.spec) {
			name, _, _ := strings.Cut(path.Base(c.Image), ":")
			if name == "avila" && !isAvila(c) && (len(c.Command) == 0 || !slices.Contains([]string{"install", "sh", "chown"}, c.Command[0])) {
				errs = append(errs, fmt.Errorf("%s container %s: runs %q from the avila image, which holds %v", w, c.Name, c.Command, avilaBinaries))
			}
			if _, inAvila := images[c.Image]; !inAvila && name == "avila" {
				errs = append(errs, fmt.Errorf("%s container %s: image %q differs from the Avila containers' %v", w, c.Name, c.Image, keys(images)))
			}
		}
	}
	return errs
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkServices: every Service selects pods of the deployment, and each of
// its ports reaches a declared container port with the same protocol.
func checkServices(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, s := range m.services {
		var ws []workload
		for _, w := range m.workloads() {
			if selects(s.Spec.Selector, w.labels) {
				ws = append(ws, w)
			}
		}
		if len(ws) == 0 {
			errs = append(errs, fmt.Errorf("Service %s: selector %v selects no pods here", s.Name, s.Spec.Selector))
		}
		for _, w := range ws {
			for _, sp := range s.Spec.Ports {
				found := false
				for _, c := range containers(w.spec) {
					if cp, ok := containerPort(c, targetPort(sp)); ok && protoOf(cp.Protocol) == protoOf(sp.Protocol) {
						found = true
					}
				}
				if !found {
					tp := targetPort(sp)
					errs = append(errs, fmt.Errorf("Service %s port %s (%d/%s): target %s is no %s port of %s", s.Name, sp.Name, sp.Port, protoOf(sp.Protocol), tp.String(), protoOf(sp.Protocol), w))
				}
			}
		}
	}
	return errs
}

// checkAgentsReachAggregators: each agent starts from a Service of the
// deployment (by its name in the namespace) on a UDP port that leads to the
// aggregators' QUIC port.
func checkAgentsReachAggregators(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, a := range as {
		if a.cmd != "avila-agent" {
			continue
		}
		v, _, _ := a.value("aggregator")
		for _, addr := range strings.Split(v, ",") {
			addr = strings.TrimSpace(addr)
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: --aggregator %q: want host:port", a, addr))
				continue
			}
			name, ns, _ := strings.Cut(host, ".")
			svc := m.serviceNamed(name)
			if svc == nil || (ns != "" && ns != svc.Namespace+".svc" && ns != svc.Namespace+".svc.cluster.local") {
				errs = append(errs, fmt.Errorf("%s: --aggregator %s names no Service of this deployment (<service>.<namespace>.svc)", a, addr))
				continue
			}
			ok := false
			for _, sp := range svc.Spec.Ports {
				if strconv.Itoa(int(sp.Port)) != port || protoOf(sp.Protocol) != corev1.ProtocolUDP {
					continue
				}
				for _, agg := range as {
					if agg.cmd != "avila-aggregator" || !selects(svc.Spec.Selector, agg.w.labels) {
						continue
					}
					quic, _, _ := listenPort(agg, listeners["avila-aggregator"][1])
					if cp, found := containerPort(agg.c, targetPort(sp)); found && cp.ContainerPort == quic {
						ok = true
					}
				}
			}
			if !ok {
				errs = append(errs, fmt.Errorf("%s: --aggregator %s: Service %s has no UDP port %s leading to the aggregators' QUIC port", a, addr, svc.Name, port))
			}
		}
	}
	return errs
}

// checkServiceMonitors: each ServiceMonitor selects a Service of the
// deployment and scrapes /metrics on a port leading to a server's metrics
// listener (the aggregator's --listen-operator, the agent's --listen).
func checkServiceMonitors(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, sm := range m.serviceMonitors {
		var svcs []*corev1.Service
		for _, s := range m.services {
			if s.Namespace == sm.Namespace && selects(sm.Spec.Selector.MatchLabels, s.Labels) {
				svcs = append(svcs, s)
			}
		}
		if len(svcs) == 0 {
			errs = append(errs, fmt.Errorf("ServiceMonitor %s selects no Service", sm.Name))
		}
		if len(sm.Spec.Endpoints) == 0 {
			errs = append(errs, fmt.Errorf("ServiceMonitor %s has no endpoints", sm.Name))
		}
		for _, ep := range sm.Spec.Endpoints {
			if ep.Path != "/metrics" {
				errs = append(errs, fmt.Errorf("ServiceMonitor %s: path %q, want /metrics", sm.Name, ep.Path))
			}
			if ep.Port == "" {
				errs = append(errs, fmt.Errorf("ServiceMonitor %s: endpoint names no Service port", sm.Name))
				continue
			}
			for _, s := range svcs {
				ok := false
				for _, sp := range s.Spec.Ports {
					if sp.Name != ep.Port {
						continue
					}
					for _, a := range servers(as) {
						if !selects(s.Spec.Selector, a.w.labels) {
							continue
						}
						for _, l := range listeners[a.cmd] {
							p, _, _ := listenPort(a, l)
							if cp, found := containerPort(a.c, targetPort(sp)); l.metrics && found && cp.ContainerPort == p {
								ok = true
							}
						}
					}
				}
				if !ok {
					errs = append(errs, fmt.Errorf("ServiceMonitor %s: port %q of Service %s does not lead to a /metrics listener", sm.Name, ep.Port, s.Name))
				}
			}
		}
	}
	return errs
}

// checkShutdown: the only preStop is a sleep (SIGTERM is what drains), and
// the grace period covers it plus the time the binary may take to stop.
func checkShutdown(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	for _, a := range servers(as) {
		sleep := 0
		if a.c.Lifecycle != nil && a.c.Lifecycle.PreStop != nil {
			h := a.c.Lifecycle.PreStop
			switch {
			case h.Sleep != nil:
				sleep = int(h.Sleep.Seconds)
			case h.Exec != nil && len(h.Exec.Command) == 2 && h.Exec.Command[0] == "sleep":
				n, err := strconv.Atoi(h.Exec.Command[1])
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: preStop sleeps %q seconds", a, h.Exec.Command[1]))
				}
				sleep = n
			default:
				errs = append(errs, fmt.Errorf("%s: preStop %+v: %s drains on SIGTERM, which follows preStop; only a sleep belongs there", a, h, a.cmd))
			}
		}
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if a.w.spec.TerminationGracePeriodSeconds != nil {
			grace = *a.w.spec.TerminationGracePeriodSeconds
		}
		stop, ok := env.shutdownTimeout[a.cmd]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: shutdown time of %s unknown", a, a.cmd))
			continue
		}
		// 5 s for what follows the deadline: leaving the cluster, closing
		// connections and the database.
		if need := int64(sleep + stop + 5); grace < need {
			errs = append(errs, fmt.Errorf("%s: terminationGracePeriodSeconds %d < preStop %d s + shutdown %d s + 5 s: the kubelet would kill it mid-drain", a, grace, sleep, stop))
		}
	}
	return errs
}

// checkResources: servers request at least the memory bench/results.json
// measured under load, may use twice the peak, and request some CPU.
func checkResources(m *manifests, as []avilaContainer, env checkEnv) []error {
	var errs []error
	mib := func(q resource.Quantity) float64 { return float64(q.Value()) / (1 << 20) }
	for _, a := range servers(as) {
		r := a.c.Resources
		load, peak := env.rssLoadMiB[a.cmd], env.rssPeakMiB[a.cmd]
		if load == 0 || peak == 0 {
			errs = append(errs, fmt.Errorf("%s: no bench figures for %s", a, a.cmd))
			continue
		}
		if q, ok := r.Requests[corev1.ResourceMemory]; !ok || mib(q) < load {
			errs = append(errs, fmt.Errorf("%s: memory request %s is below the %.0f MiB RSS bench measured under load", a, q.String(), load))
		}
		if q, ok := r.Limits[corev1.ResourceMemory]; !ok || mib(q) < 2*peak {
			errs = append(errs, fmt.Errorf("%s: memory limit %s is below twice the %.0f MiB peak RSS bench measured", a, q.String(), peak))
		}
		if q, ok := r.Requests[corev1.ResourceCPU]; !ok || q.IsZero() {
			errs = append(errs, fmt.Errorf("%s: no CPU request", a))
		}
	}
	return errs
}
