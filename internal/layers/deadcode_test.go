package layers

import (
	"go/token"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/callgraph/rta"
	"golang.org/x/tools/go/packages"
	"golang.org/x/tools/go/ssa"
	"golang.org/x/tools/go/ssa/ssautil"
)

// mains are the module's programs: what they can call is its live code.
var mains = []string{"./cmd/...", "./bench/cmd/...", "./internal/flagdoc/gen"}

// unreachableKept are functions no program calls that stay outside test
// files, each for a reason; package paths ending in "/" keep all of their
// package's functions.
var unreachableKept = map[string]string{
	// Test harnesses: packages that start servers and processes for tests
	// (and the bench), whose programs use part of them.
	module + "internal/apptest/":      "the end-to-end and bench harness",
	module + "internal/testenv/":      "test servers",
	module + "internal/pgserver/":     "managed PostgreSQL for the demo, the bench and tests",
	module + "internal/benchtraffic/": "traffic of the bench and of tests",
	module + "bench/":                 "the bench's library, which the e2e tests drive as well",
	// The protocol package is the wire's library: its decoder of a whole
	// batch and its plain listener are its API, which agents' and
	// aggregators' tests use; the programs use the lower-level forms.
	module + "protocol.DecodeBatch": "the wire library's API",
	module + "protocol.Listen":      "the wire library's API",
	// The plain form of session assignment, which the programs' AssignInto
	// is held to.
	module + "aggregator/sessions.Assign": "the reference form of AssignInto",
	// The gtag parser's plain form, as the bench's traffic test parses its
	// requests; the agent parses into its pooled buffers (appendGtag).
	module + "agent/collect.ParseGtag": "the gtag parser's API",
	// Helpers other packages' tests use: a Redis client checked with a
	// ping (the programs connect lazily, New), and a command's name as a
	// user types it (flagdoc's and deploy's tests).
	module + "storage/redis.Open":            "a checked Redis client for tests of several packages",
	module + "storage/redis.servers":         "Open's error names the servers",
	module + "internal/flagdoc.Command.Name": "how tests of several packages name a command",
	// Printing a format names it (fmt), though no program prints one yet.
	module + "agent/accesslog.Format.String": "a Stringer for logs and errors",
}

// TestNoDeadCode: every function of the module outside test files is
// reachable from one of its programs (rapid type analysis, as
// golang.org/x/tools/cmd/deadcode does), or kept in unreachableKept with
// its reason. A helper only tests use belongs in a test file.
func TestNoDeadCode(t *testing.T) {
	cfg := &packages.Config{Mode: packages.LoadAllSyntax, Dir: "../..", Fset: token.NewFileSet()}
	pkgs, err := packages.Load(cfg, mains...)
	if err != nil {
		t.Fatal(err)
	}
	if n := packages.PrintErrors(pkgs); n > 0 {
		t.Fatalf("%d errors loading the programs", n)
	}
	prog, _ := ssautil.AllPackages(pkgs, ssa.InstantiateGenerics)
	prog.Build()
	var roots []*ssa.Function
	for _, p := range ssautil.MainPackages(prog.AllPackages()) {
		roots = append(roots, p.Func("init"), p.Func("main"))
	}
	res := rta.Analyze(roots, false)
	// A generic function is live when one of its instances is.
	origins := make(map[*ssa.Function]bool)
	for fn := range res.Reachable {
		if o := fn.Origin(); o != nil {
			origins[o] = true
		}
	}
	var dead []string
	for fn := range ssautil.AllFunctions(prog) {
		if fn.Pkg == nil || fn.Synthetic != "" || fn.Parent() != nil || !strings.HasPrefix(fn.Pkg.Pkg.Path(), module) {
			continue
		}
		pos := prog.Fset.Position(fn.Pos())
		if !pos.IsValid() || strings.HasSuffix(pos.Filename, "_test.go") {
			continue
		}
		if _, ok := res.Reachable[fn]; ok || origins[fn] {
			continue
		}
		name := funcName(fn)
		if _, ok := unreachableKept[name]; ok {
			continue
		}
		if _, ok := unreachableKept[fn.Pkg.Pkg.Path()+"/"]; ok {
			continue
		}
		dead = append(dead, name+" ("+pos.String()+")")
	}
	slices.Sort(dead)
	if len(dead) > 0 {
		t.Fatalf("%d functions no program reaches: remove them, move them to a test file, or keep them in unreachableKept with why:\n%s",
			len(dead), strings.Join(dead, "\n"))
	}
}

// funcName is fn's package path, receiver type and name: path.Type.Method
// or path.Func.
func funcName(fn *ssa.Function) string {
	name := fn.Name()
	if recv := fn.Signature.Recv(); recv != nil {
		t := recv.Type().String()
		t = t[strings.LastIndex(t, ".")+1:]
		name = strings.TrimPrefix(t, "*") + "." + name
		if i := strings.Index(name, "["); i >= 0 { // generic receiver
			name = name[:i] + name[strings.Index(name, "]")+1:]
		}
	}
	return fn.Pkg.Pkg.Path() + "." + name
}
