package privacy

import (
	"net/netip"
	"testing"
	"time"
)

func TestProcessKeys(t *testing.T) {
	ip := netip.MustParseAddr("203.0.113.7")
	day := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	a, b := NewProcessKeys(), NewProcessKeys()
	v := a.For(1, day).Visitor(ip, "UA", "")
	if got := a.For(1, day.Add(13*time.Hour)).Visitor(ip, "UA", ""); got != v {
		t.Fatalf("same process, site and day: %x then %x, want one id", v, got)
	}
	if k := a.For(1, day); k.Day() != "2026-03-01" {
		t.Fatalf("key day %q", k.Day())
	}
	f := func(name string, other uint64) {
		t.Helper()
		if other == v {
			t.Fatalf("%s: same visitor id %x; want unlinkable", name, v)
		}
	}
	f("another process (a restart)", b.For(1, day).Visitor(ip, "UA", ""))
	f("next day", a.For(1, day.AddDate(0, 0, 1)).Visitor(ip, "UA", ""))
	f("another site", a.For(2, day).Visitor(ip, "UA", ""))
	// Back to the first day after the next one: the key is derived again,
	// not remembered, and still the same.
	if got := a.For(1, day).Visitor(ip, "UA", ""); got != v {
		t.Fatalf("first day again: %x, want %x", got, v)
	}
}
