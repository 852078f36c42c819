package privacy

import (
	"net/netip"
	"testing"
)

func TestAnonymizeIP(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		var ip netip.Addr
		if in != "" {
			ip = netip.MustParseAddr(in)
		}
		got := AnonymizeIP(ip)
		if want == "" {
			if got.IsValid() {
				t.Fatalf("AnonymizeIP(%q) = %s, want invalid", in, got)
			}
			return
		}
		if got.String() != want {
			t.Fatalf("AnonymizeIP(%q) = %s, want %s", in, got, want)
		}
	}
	f("203.0.113.77", "203.0.113.0")
	f("10.1.2.255", "10.1.2.0")
	f("::ffff:198.51.100.9", "198.51.100.0")
	f("2001:db8:abcd:12:3456:789a:bcde:f012", "2001:db8:abcd::")
	f("fe80::1%eth0", "fe80::")
	f("::1", "::")
	f("", "")
}
