package deploy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

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

// binaries caches the built commands and their parsed flag sets for the
// whole test binary: building the aggregator takes a while.
var binaries struct {
	once sync.Once
	dir  string
	err  error
	mu   sync.Mutex
	sets map[string]flagSet
}

func TestMain(m *testing.M) {
	code := testenv.Run(m) // stops the throwaway servers tests started
	if binaries.dir != "" {
		os.RemoveAll(binaries.dir)
	}
	os.Exit(code)
}

// binaryFlags returns the flags of cmd: "avila-aggregator", "avila-agent",
// or "avila VERB". It is the one place that knows how: it builds the
// commands from ./cmd and reads the usage they print for -h (avila help
// VERB), which lists every flag with its default and, in the help text,
// its environment variables ("env AVILA_X", ", then DATABASE_URL"). When
// the commands' flag sets become importable, point this at them instead.
func binaryFlags(t testing.TB, cmd string) flagSet {
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
		binaries.sets = map[string]flagSet{}
	})
	if binaries.err != nil {
		t.Fatal(binaries.err)
	}
	binaries.mu.Lock()
	defer binaries.mu.Unlock()
	if fs, ok := binaries.sets[cmd]; ok {
		return fs
	}
	words := strings.Fields(cmd)
	var args []string
	switch {
	case len(words) == 1 && words[0] != "avila":
		args = []string{"-h"}
	case len(words) >= 2 && words[0] == "avila":
		args = append([]string{"help"}, words[1:]...)
	default:
		t.Fatalf("binaryFlags(%q): want avila-aggregator, avila-agent or \"avila VERB\"", cmd)
	}
	c := exec.Command(filepath.Join(binaries.dir, words[0]), args...)
	c.Env = []string{"PATH=" + os.Getenv("PATH")} // no AVILA_* of this machine in the defaults
	out, _ := c.CombinedOutput()                  // -h exits 0 or 2 depending on the command
	fs := parseUsage(string(out))
	if len(fs) == 0 {
		t.Fatalf("%s %s printed no flags:\n%s", words[0], strings.Join(args, " "), out)
	}
	binaries.sets[cmd] = fs
	return fs
}

var (
	usageFlagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9_.-]*)(?: (.+))?$`)
	usageEnv      = regexp.MustCompile(`env (AVILA_[A-Z0-9_]+)(?:, then ([A-Z][A-Z0-9_]*))?`)
	usageDefault  = regexp.MustCompile(`\(default ("(?:[^"\\]|\\.)*"|[^)]*)\)\s*$`)
)

// parseUsage reads flag.PrintDefaults output: "  -name type" lines, each
// followed by its help text indented with "    \t".
func parseUsage(out string) flagSet {
	fs := flagSet{}
	var cur *flagInfo
	var help strings.Builder
	flush := func() {
		if cur == nil {
			return
		}
		text := help.String()
		for _, m := range usageEnv.FindAllStringSubmatch(text, -1) {
			cur.env = append(cur.env, m[1])
			if m[2] != "" {
				cur.env = append(cur.env, m[2])
			}
		}
		if m := usageDefault.FindStringSubmatch(strings.TrimSpace(text)); m != nil {
			cur.def = strings.Trim(m[1], `"`)
		}
		fs[cur.name] = *cur
		cur = nil
		help.Reset()
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := usageFlagLine.FindStringSubmatch(line); m != nil {
			flush()
			cur = &flagInfo{name: m[1], bool: m[2] == ""}
			continue
		}
		if cur != nil && strings.HasPrefix(line, "    \t") {
			help.WriteString(strings.TrimPrefix(line, "    \t") + " ")
			continue
		}
		flush()
	}
	flush()
	return fs
}

// TestBinaryFlags checks the reading of usage on the real binaries: a
// misread would make every manifest check below vacuous.
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
				t.Errorf("%s --%s: usage names env %v, want %s first", cmd, name, fl.env, want)
			}
		}
	}
}
