package demo

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockFile is the file in the data directory a running demo holds locked.
const lockFile = "demo.lock"

// lockDataDir locks dir for this demo, so that two demos never share a data
// directory: the second would take the first one's PostgreSQL for one left
// behind by a killed run and stop it. The lock goes with the process, so a
// killed demo leaves none behind; unlock releases it.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("demo: lock --data-dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "another process"
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = fmt.Sprintf("process %d", pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("demo: --data-dir %s is in use by another avila demo (%s): stop that one, or give this one "+
				"its own --data-dir and free ports (--agent-listen, --api-listen and --quic-listen 127.0.0.1:0 pick any)", dir, holder)
		}
		return nil, fmt.Errorf("demo: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0) // only names the holder in the message above
	}
	return func() { f.Close() }, nil
}

// checkPorts tries the addresses the demo is to listen on and names each
// one taken with the flag that moves it, before anything starts: a port
// found taken later would leave a PostgreSQL started and migrated for
// nothing. Port 0 is never taken.
func checkPorts(cfg Config) error {
	var taken []string
	try := func(flag, network, addr string) {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "0" {
			return // a bad address is reported by the part that listens on it
		}
		var err error
		if network == "udp" {
			var c net.PacketConn
			if c, err = net.ListenPacket(network, addr); err == nil {
				c.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen(network, addr); err == nil {
				l.Close()
			}
		}
		if errors.Is(err, syscall.EADDRINUSE) {
			host, _, _ := net.SplitHostPort(addr)
			taken = append(taken, fmt.Sprintf("--%s %s (%s) is taken: choose another port with --%s %s, or %s for any free one",
				flag, addr, strings.ToUpper(network), flag, net.JoinHostPort(host, "PORT"), net.JoinHostPort(host, "0")))
		}
	}
	try("agent-listen", "tcp", cfg.AgentListen)
	try("api-listen", "tcp", cfg.APIListen)
	try("quic-listen", "udp", cfg.QUICListen)
	if len(taken) == 0 {
		return nil
	}
	return fmt.Errorf("demo: another program (another avila demo?) uses the demo's ports; %s. The ready line prints the "+
		"addresses in use", strings.Join(taken, "; "))
}
