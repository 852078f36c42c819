package deploy

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// avilaBinaries are the commands deploy/Dockerfile puts in the image.
var avilaBinaries = []string{"avila-aggregator", "avila-agent", "avila"}

// workload is a pod template with what owns it.
type workload struct {
	kind, name  string
	replicas    int // -1: one per node (DaemonSet) or run to completion (Job)
	labels      map[string]string
	spec        *corev1.PodSpec
	serviceName string // a StatefulSet's governing Service
}

func (w workload) String() string { return w.kind + " " + w.name }

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, s := range m.statefulSets {
		r := 1
		if s.Spec.Replicas != nil {
			r = int(*s.Spec.Replicas)
		}
		ws = append(ws, workload{"StatefulSet", s.Name, r, s.Spec.Template.Labels, &s.Spec.Template.Spec, s.Spec.ServiceName})
	}
	for _, d := range m.daemonSets {
		ws = append(ws, workload{"DaemonSet", d.Name, -1, d.Spec.Template.Labels, &d.Spec.Template.Spec, ""})
	}
	for _, j := range m.jobs {
		ws = append(ws, workload{"Job", j.Name, -1, j.Spec.Template.Labels, &j.Spec.Template.Spec, ""})
	}
	return ws
}

// avilaContainer is a container that runs one of Avila's binaries, with
// the configuration its command line and environment give it.
type avilaContainer struct {
	w    workload
	c    *corev1.Container
	cmd  string // "avila-aggregator", "avila-agent" or "avila VERB"
	fs   flagSet
	args map[string]string        // flags given in args, by name
	env  map[string]corev1.EnvVar // variables given in env, by name
}

func (a avilaContainer) String() string { return fmt.Sprintf("%s container %s", a.w, a.c.Name) }

// isAvila reports whether c runs one of the image's binaries.
func isAvila(c *corev1.Container) bool {
	if len(c.Command) == 0 {
		return false
	}
	for _, b := range avilaBinaries {
		if c.Command[0] == b {
			return true
		}
	}
	return false
}

// containers lists a pod's containers: init containers (native sidecars
// among them) first, as the kubelet starts them.
func containers(spec *corev1.PodSpec) []*corev1.Container {
	var cs []*corev1.Container
	for i := range spec.InitContainers {
		cs = append(cs, &spec.InitContainers[i])
	}
	for i := range spec.Containers {
		cs = append(cs, &spec.Containers[i])
	}
	return cs
}

// avilaContainers finds every container running an Avila binary and reads
// its flags and environment against the binary's own flag set. What does
// not fit that flag set is returned as errors.
func (m *manifests) avilaContainers(flagsFor func(cmd string) flagSet) ([]avilaContainer, []error) {
	var out []avilaContainer
	var errs []error
	for _, w := range m.workloads() {
		for _, c := range containers(w.spec) {
			if !isAvila(c) {
				continue
			}
			a, err := readContainer(w, c, flagsFor)
			errs = append(errs, err...)
			out = append(out, a)
		}
	}
	return out, errs
}

func readContainer(w workload, c *corev1.Container, flagsFor func(string) flagSet) (avilaContainer, []error) {
	a := avilaContainer{w: w, c: c, args: map[string]string{}, env: map[string]corev1.EnvVar{}}
	words := append(append([]string{}, c.Command...), c.Args...)
	// The avila CLI's verb is the words before the first flag.
	a.cmd, words = words[0], words[1:]
	if a.cmd == "avila" {
		for len(words) > 0 && !strings.HasPrefix(words[0], "-") {
			a.cmd, words = a.cmd+" "+words[0], words[1:]
		}
	}
	a.fs = flagsFor(a.cmd)
	var errs []error
	for len(words) > 0 {
		w := words[0]
		words = words[1:]
		if !strings.HasPrefix(w, "-") {
			errs = append(errs, fmt.Errorf("%s: argument %q is not a flag; %s takes no arguments", a, w, a.cmd))
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(w, "-"), "=")
		f, ok := a.fs[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: --%s is not a flag of %s", a, name, a.cmd))
			continue
		}
		if !hasVal {
			if f.bool {
				val = "true"
			} else if len(words) == 0 {
				errs = append(errs, fmt.Errorf("%s: --%s needs a value", a, name))
			} else {
				val, words = words[0], words[1:]
			}
		}
		if _, dup := a.args[name]; dup {
			errs = append(errs, fmt.Errorf("%s: --%s given twice", a, name))
		}
		a.args[name] = val
	}
	if len(c.EnvFrom) > 0 {
		errs = append(errs, fmt.Errorf("%s: envFrom hides which variables it sets; list them in env", a))
	}
	for _, e := range c.Env {
		a.env[e.Name] = e
		f, ok := a.fs.envFlag(e.Name)
		switch {
		case !ok && (strings.HasPrefix(e.Name, "AVILA_") || e.Name == "DATABASE_URL" || e.Name == "REDIS_URL"):
			errs = append(errs, fmt.Errorf("%s: environment variable %s is read by no flag of %s", a, e.Name, a.cmd))
		case !ok && !strings.HasPrefix(e.Name, "OTEL_") && !strings.HasPrefix(e.Name, "GO"):
			errs = append(errs, fmt.Errorf("%s: environment variable %s means nothing to %s", a, e.Name, a.cmd))
		case ok:
			if _, both := a.args[f.name]; both {
				errs = append(errs, fmt.Errorf("%s: --%s is in args and %s in env; the flag wins and the variable is ignored", a, f.name, e.Name))
			}
		}
	}
	return a, errs
}

// value is the flag's effective setting: args, then its environment
// variables in order, then the binary's default. fromRef is set when the
// value comes from a Secret, ConfigMap or field, unknown until the pod runs.
func (a avilaContainer) value(flag string) (v string, fromRef *corev1.EnvVarSource, set bool) {
	if v, ok := a.args[flag]; ok {
		return v, nil, true
	}
	f := a.fs[flag]
	for _, name := range f.env {
		if e, ok := a.env[name]; ok {
			return e.Value, e.ValueFrom, true
		}
	}
	return f.def, nil, false
}

// containerPort resolves a probe's or Service's target port in c.
func containerPort(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// selects reports whether selector (matchLabels only, which is all these
// manifests use) picks pods with labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// mountFor returns the volume mount under which path lies in c, and the
// volume it mounts.
func mountFor(spec *corev1.PodSpec, c *corev1.Container, path string) (corev1.VolumeMount, *corev1.Volume, bool) {
	var best corev1.VolumeMount
	found := false
	for _, vm := range c.VolumeMounts {
		dir := strings.TrimSuffix(vm.MountPath, "/")
		if (path == dir || strings.HasPrefix(path, dir+"/")) && len(dir) >= len(best.MountPath) {
			best, found = vm, true
		}
	}
	if !found {
		return best, nil, false
	}
	for i := range spec.Volumes {
		if spec.Volumes[i].Name == best.Name {
			return best, &spec.Volumes[i], true
		}
	}
	return best, nil, true
}
