package command

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// The agent's mTLS certificate is checked at start: --cert needs --key, and
// a key others can read is refused with what to do about it.
func TestRunRefusesBadCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	ca, err := protocol.InitCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	crt, err := protocol.IssueCert(dir, protocol.IssueRequest{Kind: protocol.KindAgent, Name: "edge-1"})
	if err != nil {
		t.Fatal(err)
	}
	f := func(want string, args ...string) {
		t.Helper()
		var stdout bytes.Buffer
		args = append([]string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--ca", ca}, args...)
		err := Run(context.Background(), args, mapEnv(nil), &stdout, io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("run %q: %v, want %q", args, err, want)
		}
		if stdout.Len() != 0 {
			t.Errorf("printed %q although it never became ready", stdout.String())
		}
	}
	f("--cert and --key go together", "--cert", crt.Cert)
	if err := os.Chmod(crt.Key, 0o644); err != nil {
		t.Fatal(err)
	}
	f("is accessible to group or others (mode 0644); run: chmod 600", "--cert", crt.Cert, "--key", crt.Key)
}
