package privacy

import (
	"net/netip"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// BenchmarkSaltsFor is the salt lookup every hit makes.
func BenchmarkSaltsFor(b *testing.B) {
	s, err := NewSalts([]protocol.Salt{{Site: 1, Day: "2026-03-01", Key: saltA}, {Site: 1, Day: "2026-03-02", Key: saltB}})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.For(1, day1); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVisitor is the visitor id every browser hit computes.
func BenchmarkVisitor(b *testing.B) {
	s, err := NewSalts([]protocol.Salt{{Site: 1, Day: "2026-03-01", Key: saltA}})
	if err != nil {
		b.Fatal(err)
	}
	k, err := s.For(1, day1)
	if err != nil {
		b.Fatal(err)
	}
	ip := netip.MustParseAddr("203.0.113.9")
	const ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
	b.ReportAllocs()
	for b.Loop() {
		k.Visitor(ip, ua, "1987654321.1718000000")
	}
}
