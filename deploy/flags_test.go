package deploy

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/avila-analytics/avila/internal/flagdoc"
	"github.com/avila-analytics/avila/internal/testenv"
)

// flagInfo is one flag of a binary as its usage prints it.
type flagInfo struct {
	name string
	bool bool     // takes no value (-name alone means true)
	def  string   // default value; "" when usage shows none
	env  []string // environment variables it falls back to, AVILA_* first
}

// flagSet is a binary's (or an avila verb's) flags by name.
type flagSet map[string]flagInfo

// envFlag returns the flag that reads environment variable name.
func (fs flagSet) envFlag(name string) (flagInfo, bool) {
	for _, f := range fs {
		for _, e := range f.env {
			if e == name {
				return f, true
			}
		}
	}
	return flagInfo{}, false
}

// binaries holds the commands built once for the whole test binary, for
// the tests that run them: building the aggregator takes a while.
var binaries struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := testenv.Run(m) // stops the throwaway servers tests started
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// buildBinaries builds ./cmd/... once into binaries.dir.
func buildBinaries(t testing.TB) string {
	t.Helper()
	binaries.once.Do(func() {
		binaries.dir, binaries.err = os.MkdirTemp("", "avila-deploy-bin-")
		if binaries.err != nil {
			return
		}
		build := exec.Command("go", "build", "-o", binaries.dir+string(filepath.Separator),
			"./cmd/avila-aggregator", "./cmd/avila-agent", "./cmd/avila")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			binaries.err = fmt.Errorf("go build ./cmd/...: %v\n%s", err, out)
		}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	return binaries.dir
}

// binaryFlags returns the flags of cmd: "avila-aggregator", "avila-agent",
// or "avila VERB", from the commands' own flag sets (internal/flagdoc):
// each flag's default, whether it takes a value, and the environment
// variables it falls back to.
func binaryFlags(t testing.TB, cmd string) flagSet {
	t.Helper()
	for _, c := range flagdoc.Commands() {
		if c.Name() != cmd {
			continue
		}
		fs := flagSet{}
		c.Flags.VisitAll(func(f *flag.Flag) {
			b, ok := f.Value.(interface{ IsBoolFlag() bool })
			info := flagInfo{name: f.Name, bool: ok && b.IsBoolFlag(), def: f.DefValue, env: c.Flags.EnvVars(f.Name)}
			if info.bool && info.def == "false" {
				info.def = ""
			}
			fs[f.Name] = info
		})
		return fs
	}
	t.Fatalf("binaryFlags(%q): no such command; want avila-aggregator, avila-agent or \"avila VERB\"", cmd)
	return nil
}

// TestBinaryFlags checks the reading of the flag sets: a misread would
// make every manifest check below vacuous.
func TestBinaryFlags(t *testing.T) {
	f := func(cmd, flag string, want flagInfo) {
		t.Helper()
		got, ok := binaryFlags(t, cmd)[flag]
		if !ok {
			t.Fatalf("%s: no flag --%s", cmd, flag)
		}
		if got.bool != want.bool || got.def != want.def || strings.Join(got.env, ",") != strings.Join(want.env, ",") {
			t.Errorf("%s --%s = %+v, want %+v", cmd, flag, got, want)
		}
	}
	f("avila-aggregator", "listen-api", flagInfo{name: "listen-api", def: "127.0.0.1:8080", env: []string{"AVILA_LISTEN_API"}})
	f("avila-aggregator", "database-url", flagInfo{name: "database-url", env: []string{"AVILA_DATABASE_URL", "DATABASE_URL"}})
	f("avila-agent", "listen", flagInfo{name: "listen", def: "127.0.0.1:8090", env: []string{"AVILA_LISTEN"}})
	f("avila-agent", "mp-strict", flagInfo{name: "mp-strict", bool: true, env: []string{"AVILA_MP_STRICT"}})
	f("avila migrate", "database-url", flagInfo{name: "database-url", env: []string{"AVILA_DATABASE_URL", "DATABASE_URL"}})
	// Every flag of the servers names its environment variable.
	for _, cmd := range []string{"avila-aggregator", "avila-agent", "avila migrate"} {
		for name, fl := range binaryFlags(t, cmd) {
			want := "AVILA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			if len(fl.env) == 0 || fl.env[0] != want {
				t.Errorf("%s --%s: env %v, want %s first", cmd, name, fl.env, want)
			}
		}
	}
}
