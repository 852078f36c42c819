package cluster

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

func TestLogWriterLevelsAndStopping(t *testing.T) {
	var stopping atomic.Bool
	f := func(line, want string) {
		t.Helper()
		var out strings.Builder
		w := logWriter{log: slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}})), stopping: &stopping}
		if n, err := w.Write([]byte(line + "\n")); err != nil || n != len(line)+1 {
			t.Fatalf("Write: %d, %v", n, err)
		}
		if got := strings.TrimSpace(out.String()); got != want {
			t.Errorf("%q logged as %q, want %q", line, got, want)
		}
	}
	const closed = "[ERR] memberlist: Failed to send gossip to 127.0.0.1:7946: write udp 127.0.0.1:7947->127.0.0.1:7946: use of closed network connection"
	f("[WARN] memberlist: Was able to connect to n2 over TCP but UDP probes failed",
		`level=WARN msg="gossip: Was able to connect to n2 over TCP but UDP probes failed"`)
	f("[DEBUG] memberlist: Stream connection from=127.0.0.1:1", `level=DEBUG msg="gossip: Stream connection from=127.0.0.1:1"`)
	// While running, a closed socket is news; while stopping it is not.
	f(closed, `level=WARN msg="gossip: Failed to send gossip to 127.0.0.1:7946: write udp 127.0.0.1:7947->127.0.0.1:7946: use of closed network connection"`)
	stopping.Store(true)
	f(closed, "")
	f("[INFO] memberlist: Marking n3 as failed", `level=INFO msg="gossip: Marking n3 as failed"`)
}
