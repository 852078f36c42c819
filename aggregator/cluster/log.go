package cluster

import (
	"bytes"
	"context"
	"log/slog"
	"sync/atomic"
)

// logWriter turns memberlist's log lines ("[WARN] memberlist: …") into
// slog records at the matching level.
//
// memberlist stops by closing its sockets first and its probe and gossip
// timers after, so a timer firing in between fails to send on the closed
// socket and logs "use of closed network connection". Once stopping is set
// (Leave, Shutdown) such lines say nothing but that the node is stopping,
// and are dropped.
type logWriter struct {
	log      *slog.Logger
	stopping *atomic.Bool
}

// closedConn is the text of net.ErrClosed.
var closedConn = []byte("use of closed network connection")

func (w logWriter) Write(p []byte) (int, error) {
	line := bytes.TrimSpace(p)
	if w.stopping != nil && w.stopping.Load() && bytes.Contains(line, closedConn) {
		return len(p), nil
	}
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo},
		{"[WARN]", slog.LevelWarn},
		// Errors memberlist reports are about peers (a failed probe, a
		// push/pull to a dead node), expected while a node is down.
		{"[ERR]", slog.LevelWarn},
	} {
		if rest, ok := bytes.CutPrefix(line, []byte(l.prefix)); ok {
			level, line = l.level, bytes.TrimSpace(rest)
			break
		}
	}
	line = bytes.TrimPrefix(line, []byte("memberlist: "))
	w.log.Log(context.Background(), level, "gossip: "+string(line))
	return len(p), nil
}
