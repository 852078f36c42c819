// Package freeport picks loopback ports for processes that tests and the
// demo start, from below the kernel's ephemeral range.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// spanBelowEphemeral is how many ports below the kernel's ephemeral range
// Addr picks from.
const spanBelowEphemeral = 12000

// handedOut holds the ports Addr gave in this process, so two
// processes of one test never get the same one.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Addr returns ip:port with a port free right now on ip for network:
// "tcp", "udp", or "tcp+udp" for both (gossip listens on one port for each).
//
// The port lies below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): a port from that range, free
// when asked for, can be taken by any outgoing connection on the machine
// (a test's connection to PostgreSQL, say) before the process binds it.
// Ports below it are only taken by whoever asks for them by number. Where
// the range cannot be read or leaves no room below it, the kernel picks.
func Addr(ip, network string) (string, error) {
	if network != "tcp" && network != "udp" && network != "tcp+udp" {
		return "", fmt.Errorf("freeport: network %q: want tcp, udp or tcp+udp", network)
	}
	if lo, hi, ok := belowEphemeral(); ok {
		handedOut.Lock()
		defer handedOut.Unlock()
		for range 200 {
			port := lo + rand.IntN(hi-lo)
			addr := net.JoinHostPort(ip, strconv.Itoa(port))
			if handedOut.ports[port] || !portFree(network, addr) {
				continue
			}
			handedOut.ports[port] = true
			return addr, nil
		}
	}
	for range 50 {
		addr, err := kernelPort(ip, network)
		if err != nil || network != "tcp+udp" || portFree("udp", addr) {
			return addr, err
		}
	}
	return "", fmt.Errorf("freeport: no port free for both TCP and UDP on %s", ip)
}

// belowEphemeral returns the ports [lo, hi) just below the ephemeral range.
func belowEphemeral() (lo, hi int, ok bool) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	first, err := strconv.Atoi(f[0])
	if err != nil || first-spanBelowEphemeral < 1024 {
		return 0, 0, false
	}
	return first - spanBelowEphemeral, first, true
}

// portFree reports whether addr can be bound for network right now; it is
// closed again before returning.
func portFree(network, addr string) bool {
	if network == "tcp+udp" {
		return portFree("tcp", addr) && portFree("udp", addr)
	}
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// kernelPort returns ip:port with a port the kernel picked (for "tcp+udp",
// free for TCP).
func kernelPort(ip, network string) (string, error) {
	wild := net.JoinHostPort(ip, "0")
	if network == "udp" {
		c, err := net.ListenPacket("udp", wild)
		if err != nil {
			return "", fmt.Errorf("freeport: free udp port on %s: %w", ip, err)
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	l, err := net.Listen("tcp", wild)
	if err != nil {
		return "", fmt.Errorf("freeport: free tcp port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Port returns a TCP port free right now on 127.0.0.1, picked as Addr does.
func Port() (int, error) {
	addr, err := Addr("127.0.0.1", "tcp")
	if err != nil {
		return 0, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return strconv.Atoi(port)
}
