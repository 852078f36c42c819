package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLockDataDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir)
	want := fmt.Sprintf("--data-dir %s is in use by another avila demo (process %d)", dir, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "its own --data-dir") {
		t.Fatalf("second lock: %v, want %q", err, want)
	}
	unlock()
	unlock, err = lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock()
}

// A demo whose ports are taken says which, with the flag that moves each,
// before it starts anything; its data directory stays free for the next try.
func TestStartNamesTakenPorts(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	dir := t.TempDir()
	cfg := Config{DataDir: dir, AgentListen: tcp.Addr().String(), APIListen: "127.0.0.1:0", QUICListen: udp.LocalAddr().String(),
		// Never reached: the ports are checked first.
		DatabaseURL: "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"}
	_, err = Start(context.Background(), cfg, nil)
	if err == nil {
		t.Fatal("Start with taken ports succeeded")
	}
	for _, want := range []string{
		"--agent-listen " + tcp.Addr().String() + " (TCP) is taken: choose another port with --agent-listen 127.0.0.1:PORT, or 127.0.0.1:0 for any free one",
		"--quic-listen " + udp.LocalAddr().String() + " (UDP) is taken",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "--api-listen") || strings.Contains(err.Error(), "postgres") {
		t.Errorf("error %q names a free port or got as far as the database", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "aggregator")); !os.IsNotExist(err) {
		t.Errorf("the aggregator was started: %v", err)
	}
	unlock, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("the failed start kept the data directory locked: %v", err)
	}
	unlock()
}
