package privacy

import "net/netip"

// Prefix lengths kept by AnonymizeIP.
const (
	keepBitsV4 = 24
	keepBitsV6 = 48
)

// AnonymizeIP zeroes the host part of ip: an IPv4 address keeps its /24, an
// IPv6 address its /48. An IPv4-mapped IPv6 address is treated as IPv4. The
// zone is dropped. An invalid address stays invalid.
func AnonymizeIP(ip netip.Addr) netip.Addr {
	if !ip.IsValid() {
		return ip
	}
	ip = ip.Unmap().WithZone("")
	bits := keepBitsV6
	if ip.Is4() {
		bits = keepBitsV4
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		// Unreachable (the address is valid and bits in range); an invalid
		// address hashes as "no address", which reveals nothing.
		return netip.Addr{}
	}
	return p.Addr()
}
