package deploy

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// k8sDir holds the kustomize base and overlays, relative to this package.
const k8sDir = "k8s"

// overlays are the kustomizations users apply; each renders a whole
// deployment.
var overlays = []string{"base", "overlays/production", "overlays/agent-daemonset", "overlays/agent-sidecar"}

// manifests is one rendered kustomization, every document decoded into the
// Kubernetes type of its kind.
type manifests struct {
	name            string
	statefulSets    []*appsv1.StatefulSet
	daemonSets      []*appsv1.DaemonSet
	jobs            []*batchv1.Job
	services        []*corev1.Service
	configMaps      []*corev1.ConfigMap
	namespaces      []*corev1.Namespace
	secrets         []*corev1.Secret
	pdbs            []*policyv1.PodDisruptionBudget
	serviceMonitors []*monitoringv1.ServiceMonitor
}

// k8sFS copies deploy/k8s into an in-memory file system, so that tests can
// break a copy of the manifests and render it as kustomize would.
func k8sFS(t testing.TB) filesys.FileSystem {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(k8sDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile("/"+filepath.ToSlash(path), b)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", k8sDir, err)
	}
	return mem
}

// render builds the kustomization at dir (relative to deploy/k8s) on fsys
// with kustomize's own library, as `kubectl kustomize` does, and decodes
// every document strictly: a field the Kubernetes type does not have, a
// field given twice or in the wrong case, or a kind this deployment does
// not use is an error.
func render(fsys filesys.FileSystem, dir string) (*manifests, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(fsys, "/"+k8sDir+"/"+dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	m := &manifests{name: dir}
	for _, r := range rm.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", dir, r.CurId(), err)
		}
		gvk := r.GetApiVersion() + " " + r.GetKind()
		var obj any
		switch gvk {
		case "apps/v1 StatefulSet":
			obj = into(&m.statefulSets)
		case "apps/v1 DaemonSet":
			obj = into(&m.daemonSets)
		case "batch/v1 Job":
			obj = into(&m.jobs)
		case "v1 Service":
			obj = into(&m.services)
		case "v1 ConfigMap":
			obj = into(&m.configMaps)
		case "v1 Namespace":
			obj = into(&m.namespaces)
		case "v1 Secret":
			obj = into(&m.secrets)
		case "policy/v1 PodDisruptionBudget":
			obj = into(&m.pdbs)
		case "monitoring.coreos.com/v1 ServiceMonitor":
			obj = into(&m.serviceMonitors)
		default:
			return nil, fmt.Errorf("%s: %s: kind %s is not one this deployment uses", dir, r.CurId(), gvk)
		}
		strict, err := kjson.UnmarshalStrict(b, obj, kjson.DisallowUnknownFields)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", dir, r.CurId(), err)
		}
		if len(strict) > 0 {
			var msgs []string
			for _, e := range strict {
				msgs = append(msgs, e.Error())
			}
			return nil, fmt.Errorf("%s: %s: %s", dir, r.CurId(), strings.Join(msgs, "; "))
		}
	}
	return m, nil
}

// into appends a new T to list and returns it to decode into.
func into[T any](list *[]*T) any {
	o := new(T)
	*list = append(*list, o)
	return o
}

// renderDisk renders an overlay from the files as committed.
func renderDisk(t testing.TB, dir string) *manifests {
	t.Helper()
	m, err := render(k8sFS(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
