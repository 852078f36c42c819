package deploy

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runDeps runs system-deps.sh for target with only the commands in path
// on PATH; as root it drops to nobody (runuser), so the script takes its
// "not root: say what to install" branch instead of installing anything.
func runDeps(t *testing.T, path string, env []string, target string) (stderr string, code int) {
	t.Helper()
	script, err := filepath.Abs("system-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			t.Fatalf("runuser (util-linux) not found: %v", err)
		}
		cmd = exec.Command(runuser, "-u", "nobody", "--", bash, script, target)
	} else {
		cmd = exec.Command(bash, script, target)
	}
	cmd.Env = append([]string{"PATH=" + path}, env...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("run %s %s: %v", script, target, err)
	}
	return errb.String(), code
}

// onlyID is a directory holding just the `id` command: with it as PATH,
// every package the script looks for on PATH is missing.
func onlyID(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	id, err := exec.LookPath("id")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(id, filepath.Join(dir, "id")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSystemDepsNamesOneInstallLine(t *testing.T) {
	stderr, code := runDeps(t, onlyID(t), nil, "test")
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", code, stderr)
	}
	var line string
	for l := range strings.SplitSeq(stderr, "\n") {
		if _, after, ok := strings.Cut(l, "apt-get install -y "); ok {
			line = after
		}
	}
	if line == "" {
		t.Fatalf("no install line in:\n%s", stderr)
	}
	want := []string{"redis-server", "nginx", "chromium", "util-linux"}
	// PostgreSQL's binaries are found outside PATH when the package is installed.
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) == 0 {
		want = append(want, "postgresql")
	}
	for _, p := range want {
		if !strings.Contains(" "+line+" ", " "+p+" ") {
			t.Errorf("install line %q does not name %s", line, p)
		}
	}
}

func TestSystemDepsQuietWhenNothingIsMissing(t *testing.T) {
	// make test runs this target first, so here everything is installed.
	stderr, code := runDeps(t, os.Getenv("PATH"), nil, "test")
	if code != 0 || stderr != "" {
		t.Fatalf("exit code %d, stderr %q; want 0 and nothing", code, stderr)
	}
}

func TestSystemDepsDemoUsesDatabaseURL(t *testing.T) {
	stderr, code := runDeps(t, onlyID(t), []string{"DATABASE_URL=postgres://db.invalid/avila"}, "demo")
	if code != 0 || !strings.Contains(stderr, "DATABASE_URL is set") {
		t.Fatalf("exit code %d, stderr %q; want 0 and a note that DATABASE_URL is used", code, stderr)
	}
}

func TestSystemDepsRefusesUnknownTarget(t *testing.T) {
	stderr, code := runDeps(t, onlyID(t), nil, "deploy")
	if code != 2 || !strings.Contains(stderr, `unknown target "deploy"`) {
		t.Fatalf("exit code %d, stderr %q; want 2 naming the target", code, stderr)
	}
}
