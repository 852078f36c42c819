package collect

import (
	"fmt"
	"net/netip"
	"strings"
)

// clientIP is the address of the browser or server that sent x. It is the
// TCP peer, unless the peer is a trusted proxy: then the forwarding headers
// are read from the right (the entry the nearest proxy appended) and the
// first address that is not itself a trusted proxy is the client. Headers
// from an untrusted peer are ignored, as anyone can forge them.
// Forwarded (RFC 7239) is preferred to X-Forwarded-For when both are sent.
func clientIP(x exchange, trusted []netip.Prefix) netip.Addr {
	peer := x.Peer()
	if !isTrusted(peer, trusted) {
		return peer
	}
	var hops []string
	if fwd := x.HeaderValues("Forwarded"); len(fwd) > 0 {
		hops = forwardedFor(fwd)
	} else {
		for _, line := range x.HeaderValues("X-Forwarded-For") {
			hops = append(hops, strings.Split(line, ",")...)
		}
	}
	return clientOf(peer, hops, trusted)
}

// ForwardedClient is the client of a request already seen, as logged by a
// web server: its TCP peer and X-Forwarded-For value ("" when none), read
// by the same rule as a live request's. The log importer uses it.
func ForwardedClient(peer netip.Addr, xForwardedFor string, trusted []netip.Prefix) netip.Addr {
	if !isTrusted(peer, trusted) || xForwardedFor == "" {
		return peer
	}
	return clientOf(peer, strings.Split(xForwardedFor, ","), trusted)
}

// clientOf walks hops (forwarded addresses, nearest proxy last) from the
// right: the first that is not a trusted proxy is the client.
func clientOf(peer netip.Addr, hops []string, trusted []netip.Prefix) netip.Addr {
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		ip, ok := parseHop(hops[i])
		if !ok {
			// A garbled entry: what lies left of it cannot be trusted.
			break
		}
		client = ip
		if !isTrusted(ip, trusted) {
			break
		}
	}
	return client
}

func peerIP(remoteAddr string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		return ap.Addr().Unmap()
	}
	ip, _ := netip.ParseAddr(remoteAddr)
	return ip.Unmap()
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// forwardedFor returns the for= values of Forwarded header lines, in order.
func forwardedFor(lines []string) []string {
	var out []string
	for _, line := range lines {
		for elem := range strings.SplitSeq(line, ",") {
			for pair := range strings.SplitSeq(elem, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					out = append(out, v)
				}
			}
		}
	}
	return out
}

// parseHop reads one forwarded address: 1.2.3.4, 1.2.3.4:80, "[2001:db8::1]:80",
// 2001:db8::1. Obfuscated names ("unknown", "_hidden") are not addresses.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap().WithZone(""), true
}

// ParseTrustedProxies parses a comma-separated list of CIDR prefixes or
// single addresses (10.0.0.0/8, 127.0.0.1, ::1).
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("collect: trusted proxy %q is not a CIDR prefix (e.g. 10.0.0.0/8)", item)
			}
			out = append(out, p.Masked())
			continue
		}
		ip, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("collect: trusted proxy %q is not an IP address or CIDR prefix", item)
		}
		out = append(out, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
	}
	return out, nil
}
