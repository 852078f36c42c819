package command

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestImportCommandLine(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	if err := os.WriteFile(logFile, []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := func(wantCode int, wantErr string, args ...string) {
		t.Helper()
		code, _, stderr := runCLI(t, nil, append([]string{"import"}, args...)...)
		if code != wantCode || !strings.Contains(stderr, wantErr) {
			t.Fatalf("avila import %q: exit %d, stderr %q; want %d and %q", args, code, stderr, wantCode, wantErr)
		}
	}
	f(2, "--property is required", logFile)
	f(2, `--property "shop"`, "--property", "shop", logFile)
	f(2, "name the access log files to import", "--property", "1")
	f(2, "--ca is required", "--property", "1", logFile)
	f(2, `--format "apache": want combined, nginx or caddy`, "--property", "1", "--ca", "ca.pem", "--format", "apache", logFile)
	f(2, `--scheme "ftp"`, "--property", "1", "--ca", "ca.pem", "--scheme", "ftp", logFile)
	f(2, `--trusted-proxies: collect: trusted proxy "proxy" is not an IP address or CIDR prefix`, "--property", "1", "--ca", "ca.pem", "--trusted-proxies", "proxy", logFile)
	f(1, "ca.pem", "--property", "1", "--ca", filepath.Join(dir, "ca.pem"), logFile)
	// The usage line names the files it takes.
	code, stdout, _ := runCLI(t, nil, "help", "import")
	if code != 0 || !strings.Contains(stdout, "Usage: avila import [flags] FILE...") {
		t.Fatalf("avila help import: exit %d, %q", code, stdout)
	}
}
