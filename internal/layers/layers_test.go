package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/avila-analytics/avila/"

// deps lists the packages matching pattern with the module's packages each
// imports, directly or not (test files left out: a test may load data
// through a higher layer).
func deps(t *testing.T, pattern string) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, module+pattern).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pattern, err, out)
	}
	m := make(map[string][]string)
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, d := range f[1:] {
			if strings.HasPrefix(d, module) {
				m[f[0]] = append(m[f[0]], d)
			}
		}
		if _, ok := m[f[0]]; !ok {
			m[f[0]] = nil
		}
	}
	return m
}

func TestImportDirection(t *testing.T) {
	f := func(pattern string, forbidden ...string) {
		t.Helper()
		pkgs := deps(t, pattern)
		if len(pkgs) == 0 {
			t.Fatalf("go list %s found no packages", pattern)
		}
		for pkg, imports := range pkgs {
			for _, d := range imports {
				for _, bad := range forbidden {
					// "x/" forbids x's packages, "x" the package x alone.
					if d == module+bad || (strings.HasSuffix(bad, "/") && strings.HasPrefix(d, module+bad)) {
						t.Errorf("%s imports %s: %s/ must not depend on %s", pkg, d, strings.TrimSuffix(pattern, "/..."), bad)
					}
				}
			}
		}
	}
	f("storage/...", "aggregator/", "query/")
	f("query/...", "aggregator/")
	// Within query/: the edge (query) imports planning (query/plan) and the
	// engines (query/engine/...); the engines import planning; planning
	// imports neither.
	f("query/plan/...", "query", "query/engine/")
	f("query/engine/...", "query")
}
