package freeport

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestAddr checks that Addr's ports are free, distinct and below
// the kernel's ephemeral range, where no outgoing connection takes them
// between Addr and the process that binds them.
func TestAddr(t *testing.T) {
	lo, hi, ok := belowEphemeral()
	if !ok {
		t.Fatalf("the ephemeral port range could not be read or leaves no room below it")
	}
	seen := map[string]bool{}
	for _, network := range []string{"tcp", "udp", "tcp", "udp"} {
		addr, err := Addr("127.0.0.1", network)
		if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("Addr(%s) = %q, %v", network, addr, err)
		}
		if seen[addr] {
			t.Fatalf("Addr(%s) = %s twice", network, addr)
		}
		seen[addr] = true
		port, _ := strconv.Atoi(strings.TrimPrefix(addr, "127.0.0.1:"))
		if port < lo || port >= hi {
			t.Fatalf("Addr(%s) = %s, outside [%d, %d) below the ephemeral range", network, addr, lo, hi)
		}
		if network == "tcp" {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("Addr(tcp) = %s, not free: %v", addr, err)
			}
			l.Close()
		}
	}
	both, err := Addr("127.0.0.2", "tcp+udp")
	if err != nil || !strings.HasPrefix(both, "127.0.0.2:") {
		t.Fatalf("Addr(127.0.0.2, tcp+udp) = %q, %v", both, err)
	}
	if port, err := Port(); err != nil || port < lo || port >= hi {
		t.Fatalf("Port() = %d, %v; want a port in [%d, %d)", port, err, lo, hi)
	}
	if _, err := Addr("127.0.0.1", "sctp"); err == nil {
		t.Fatal("Addr(sctp) gave an address")
	}
}
