package deploy

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, USER …
	args string
}

// stage is one FROM … section.
type stage struct {
	image, name string
	body        []instruction
}

// parseDockerfile reads the instructions of path, grouped by stage. It knows
// only what the tests below need: comments, line continuations, FROM … AS.
func parseDockerfile(t *testing.T, path string) []stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)}
		if in.cmd == "FROM" {
			fields := strings.Fields(in.args)
			st := stage{image: fields[0]}
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				st.name = fields[2]
			}
			stages = append(stages, st)
			return
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s: %s before the first FROM", path, in.cmd)
			}
			return
		}
		stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if body, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return stages
}

func (s stage) find(cmd string) []instruction {
	var out []instruction
	for _, in := range s.body {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// goDirective returns go.mod's "go 1.N" as "1.N".
func goDirective(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	return string(m[1])
}

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t, "Dockerfile")
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The builder's Go is the release go.mod asks for, or the build would
	// need to download another toolchain.
	if want := "golang:" + goDirective(t); !strings.HasPrefix(build.image, want) {
		t.Errorf("build stage FROM %s, want %s…", build.image, want)
	}
	if build.name == "" {
		t.Errorf("build stage FROM %s has no AS name for the runtime stage to copy from", build.image)
	}
	if strings.HasPrefix(final.image, "golang:") {
		t.Errorf("runtime stage FROM %s ships the whole toolchain", final.image)
	}

	// All three binaries are built and copied into the runtime image.
	var built string
	for _, in := range build.find("RUN") {
		if strings.Contains(in.args, "go build") {
			built = in.args
		}
	}
	for _, cmd := range []string{"avila-agent", "avila-aggregator", "avila"} {
		if !slices.Contains(strings.Fields(built), "./cmd/"+cmd) {
			t.Errorf("build stage does not build ./cmd/%s (go build line: %q)", cmd, built)
		}
	}
	copied := false
	for _, in := range final.find("COPY") {
		if strings.Contains(in.args, "--from="+build.name+" ") {
			copied = true
		}
	}
	if !copied {
		t.Errorf("runtime stage copies nothing --from=%s", build.name)
	}

	// The runtime stage ends as an unprivileged user.
	users := final.find("USER")
	if len(users) == 0 {
		t.Fatal("runtime stage has no USER: containers would run as root")
	}
	user, _, _ := strings.Cut(users[len(users)-1].args, ":")
	if user == "root" || user == "0" || user == "" {
		t.Errorf("runtime stage USER %q: want an unprivileged user", users[len(users)-1].args)
	}

	// The default command is a binary the image has.
	cmds := final.find("CMD")
	if len(cmds) == 0 || !strings.Contains(cmds[len(cmds)-1].args, `"avila-aggregator"`) {
		t.Errorf("runtime stage CMD = %v, want avila-aggregator", cmds)
	}
}

// TestDockerfileCommandsExist checks that what the image builds are the
// repository's commands, so a renamed command breaks this test, not a release.
func TestDockerfileCommandsExist(t *testing.T) {
	for _, cmd := range []string{"avila-agent", "avila-aggregator", "avila"} {
		if _, err := os.Stat(filepath.Join(repoRoot, "cmd", cmd, "main.go")); err != nil {
			t.Errorf("deploy/Dockerfile builds ./cmd/%s: %v", cmd, err)
		}
	}
}

// TestDockerignore checks that the build context keeps what the build needs
// and leaves out local state.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			rules = append(rules, strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/"))
		}
	}
	for _, need := range []string{"go.mod", "go.sum", "cmd", "agent", "aggregator", "protocol", "storage", "query"} {
		if slices.Contains(rules, need) || slices.Contains(rules, "*") {
			t.Errorf(".dockerignore excludes %s, which the build needs", need)
		}
	}
	for _, drop := range []string{".git", "bin", "data"} {
		if !slices.Contains(rules, drop) {
			t.Errorf(".dockerignore does not exclude %s", drop)
		}
	}
}
