package identity

import "testing"

// BenchmarkClient: one client id key, as the agent computes per hit.
func BenchmarkClient(b *testing.B) {
	h, _ := New(1, make([]byte, 32))
	b.ReportAllocs()
	for b.Loop() {
		_ = h.Client("1357924680.1764000000")
	}
}
