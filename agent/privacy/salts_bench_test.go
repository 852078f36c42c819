package privacy

import (
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
