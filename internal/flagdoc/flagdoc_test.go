package flagdoc

import (
	"bytes"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/internal/cli"
)

// README.md's flag tables are what the flags say; a flag added, renamed or
// reworded without regenerating them fails here.
func TestREADMEFlagTablesAreCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := UpdateREADME(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, want) {
		t.Fatalf("README.md's flag tables differ from the commands' flags: run\n\n\tgo run ./internal/flagdoc/gen\n\n" +
			"from the repository root and commit README.md")
	}
}

func TestUpdateREADMEReplacesOnlyBetweenMarkers(t *testing.T) {
	var in bytes.Buffer
	in.WriteString("# title\n\nbefore\n")
	for _, b := range binaries {
		begin, end := Markers(b)
		in.WriteString(begin + "| stale | table |\n" + end + "\nbetween\n")
	}
	out, err := UpdateREADME(in.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "stale") || !strings.HasPrefix(s, "# title\n\nbefore\n") || strings.Count(s, "\nbetween\n") != len(binaries) {
		t.Fatalf("updated README:\n%s", s)
	}
	for _, want := range []string{"| `--listen` | `AVILA_LISTEN` | `127.0.0.1:8090` |", "| `--redis-url` | `AVILA_REDIS_URL`, then `REDIS_URL` |",
		"| `certs issue` | `--agent` | `AVILA_AGENT` |"} {
		if !strings.Contains(s, want) {
			t.Errorf("updated README lacks %q", want)
		}
	}
	again, err := UpdateREADME(out)
	if err != nil || !bytes.Equal(again, out) {
		t.Fatalf("a second update changed the README (%v)", err)
	}
	if _, err := UpdateREADME([]byte("# no markers\n")); err == nil || !strings.Contains(err.Error(), "lacks the markers") {
		t.Fatalf("README without markers: %v", err)
	}
}

// Every flag of every command falls back to its AVILA_<FLAG> variable: set
// only that variable, and the flag counts as given with its value.
func TestEveryFlagHasItsEnvironmentVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range Commands() {
		c.Flags.VisitAll(func(f *flag.Flag) {
			n++
			name := cli.EnvVar(f.Name)
			if vars := c.Flags.EnvVars(f.Name); !contains(vars, name) {
				t.Errorf("%s --%s: variables %q lack %s", c.Name(), f.Name, vars, name)
			}
			// A fresh set, since parsing fills values.
			fs := lookup(t, c)
			value := f.DefValue
			if value == "" || value == "false" {
				value = map[bool]string{true: "true", false: "/some/value"}[isBool(f)]
			}
			if err := fs.Parse(nil, func(k string) (string, bool) { return value, k == name }); err != nil {
				t.Errorf("%s: %s=%q: %v", c.Name(), name, value, err)
				return
			}
			given := false
			fs.Visit(func(g *flag.Flag) { given = given || g.Name == f.Name })
			if got := fs.Lookup(f.Name).Value.String(); !given || got != value && got != "["+value+"]" {
				t.Errorf("%s: %s=%q: --%s given %v, value %q", c.Name(), name, value, f.Name, given, got)
			}
			if !bytes.Contains(readme, []byte("`"+name+"`")) {
				t.Errorf("README.md does not mention %s (%s --%s)", name, c.Name(), f.Name)
			}
		})
	}
	if n < 60 {
		t.Fatalf("only %d flags in all commands; is the list of commands complete?", n)
	}
}

// lookup builds c's flag set again.
func lookup(t *testing.T, c Command) *cli.FlagSet {
	t.Helper()
	for _, d := range Commands() {
		if d.Name() == c.Name() {
			d.Flags.SetOutput(new(bytes.Buffer))
			return d.Flags
		}
	}
	t.Fatalf("no command %s", c.Name())
	return nil
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// placeholder is a value name help may show: "-cert string", "-cert FILE".
var placeholder = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)

// A back-quoted word in a usage becomes the value's name in help
// (flag.UnquoteUsage): "-cert avila certs issue --agent NAME" is what a
// quoted command in a usage turns into. Every flag shows a one-word name.
func TestHelpValueNames(t *testing.T) {
	for _, c := range Commands() {
		c.Flags.VisitAll(func(f *flag.Flag) {
			name, _ := flag.UnquoteUsage(f)
			if name != "" && !placeholder.MatchString(name) {
				t.Errorf("%s -h shows \"-%s %s\": quote commands in its usage with ' not `", c.Name(), f.Name, name)
			}
		})
	}
	help := func(c Command) string {
		var out bytes.Buffer
		fs := lookup(t, c)
		fs.SetOutput(&out)
		fs.PrintDefaults()
		return out.String()
	}
	f := func(cmd string, want ...string) {
		t.Helper()
		for _, c := range Commands() {
			if c.Name() != cmd {
				continue
			}
			h := help(c)
			for _, w := range want {
				if !strings.Contains(h, w) {
					t.Errorf("%s -h lacks %q:\n%s", cmd, w, h)
				}
			}
			return
		}
		t.Fatalf("no command %s", cmd)
	}
	f("avila-agent", "  -cert string\n", "'avila certs issue --agent NAME'", "(env AVILA_CERT)", "  -gogc int\n")
	f("avila-aggregator", "  -gossip-key string\n", "  -tls-client-ca string\n", "'openssl rand -base64 32'", "'avila certs init'")
	f("avila certs issue", "  -agent string\n", "  -days string\n")
}

// Every avila verb, and both servers, appear in the command list.
func TestCommandsListsEveryBinary(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range Commands() {
		seen[c.Name()] = true
	}
	for _, want := range []string{"avila-agent", "avila-aggregator", "avila demo", "avila site create", "avila key revoke",
		"avila certs issue", "avila cluster status", "avila report"} {
		if !seen[want] {
			t.Errorf("Commands lacks %s", want)
		}
	}
}
