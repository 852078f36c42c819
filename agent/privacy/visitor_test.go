package privacy

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

var (
	day1  = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	day2  = day1.AddDate(0, 0, 1)
	saltA = bytes.Repeat([]byte{1}, SaltLen)
	saltB = bytes.Repeat([]byte{2}, SaltLen)
)

func testSalts(t *testing.T, list ...protocol.Salt) *Salts {
	t.Helper()
	s, err := NewSalts(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustKey(t *testing.T, s *Salts, site uint32, at time.Time) *Key {
	t.Helper()
	k, err := s.For(site, at)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVisitorSameInputsSameDay(t *testing.T) {
	s := testSalts(t, protocol.Salt{Site: 1, Day: "2026-03-01", Key: saltA})
	ip := netip.MustParseAddr("203.0.113.77")
	a := mustKey(t, s, 1, day1).Visitor(ip, "Mozilla/5.0", "123.456")
	// Another moment of the same UTC day, and another address in the same
	// /24: anonymization makes it the same visitor.
	b := mustKey(t, s, 1, day1.Add(11*time.Hour)).Visitor(netip.MustParseAddr("203.0.113.8"), "Mozilla/5.0", "123.456")
	if a != b {
		t.Fatalf("same visitor on the same day: %x vs %x", a, b)
	}
	if a == 0 {
		t.Fatal("visitor id is 0")
	}
}

func TestVisitorDiffers(t *testing.T) {
	s := testSalts(t,
		protocol.Salt{Site: 1, Day: "2026-03-01", Key: saltA},
		protocol.Salt{Site: 1, Day: "2026-03-02", Key: saltB},
		protocol.Salt{Site: 2, Day: "2026-03-01", Key: saltA},
	)
	ip := netip.MustParseAddr("203.0.113.77")
	base := mustKey(t, s, 1, day1).Visitor(ip, "UA", "c1")
	cases := map[string]uint64{
		"next day (other salt)": mustKey(t, s, 1, day2).Visitor(ip, "UA", "c1"),
		"other site, same salt": mustKey(t, s, 2, day1).Visitor(ip, "UA", "c1"),
		"other /24":             mustKey(t, s, 1, day1).Visitor(netip.MustParseAddr("203.0.114.77"), "UA", "c1"),
		"other user agent":      mustKey(t, s, 1, day1).Visitor(ip, "UA2", "c1"),
		"other client id":       mustKey(t, s, 1, day1).Visitor(ip, "UA", "c2"),
		"fields shifted":        mustKey(t, s, 1, day1).Visitor(ip, "UAc", "1"),
	}
	for name, v := range cases {
		if v == base {
			t.Errorf("%s: same visitor id %x", name, v)
		}
	}
	// Same inputs under another salt for the same day differ too.
	other := testSalts(t, protocol.Salt{Site: 1, Day: "2026-03-01", Key: saltB})
	if mustKey(t, other, 1, day1).Visitor(ip, "UA", "c1") == base {
		t.Error("another salt gave the same visitor id")
	}
}

func TestNoSalt(t *testing.T) {
	s := testSalts(t, protocol.Salt{Site: 1, Day: "2026-03-01", Key: saltA})
	_, err := s.For(1, day2)
	var ns *NoSaltError
	if !errors.As(err, &ns) || ns.Site != 1 || ns.Day != "2026-03-02" {
		t.Fatalf("For(day without salt) = %v, want NoSaltError for site 1 on 2026-03-02", err)
	}
	want := "no visitor salt for site 1 on 2026-03-02 yet; the aggregator has not sent one"
	if err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}
	// The UTC day counts, not the local one.
	local := time.Date(2026, 3, 2, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600))
	if _, err := s.For(1, local); err != nil {
		t.Fatalf("00:30 at UTC+1 is 2026-03-01 UTC: %v", err)
	}
	var nilSalts *Salts
	if _, err := nilSalts.For(1, day1); !errors.As(err, &ns) {
		t.Fatalf("nil Salts: %v", err)
	}
}

func TestNewSaltsSkipsBadSalts(t *testing.T) {
	s, err := NewSalts([]protocol.Salt{
		{Site: 1, Day: "2026-03-01", Key: saltA},
		{Site: 2, Day: "2026-03-01", Key: saltA[:16]},
		{Site: 3, Day: "March 1", Key: saltA},
	})
	if err == nil || !strings.Contains(err.Error(), "site 2 on 2026-03-01: 16 bytes") || !strings.Contains(err.Error(), `day "March 1"`) {
		t.Fatalf("error %v, want both bad salts described", err)
	}
	if _, err := s.For(1, day1); err != nil {
		t.Fatalf("good salt lost: %v", err)
	}
	if _, err := s.For(2, day1); err == nil {
		t.Fatal("short salt was kept")
	}
}

// A salt covers its whole UTC day and nothing of the days beside it.
func TestSaltCoversItsUTCDayOnly(t *testing.T) {
	s := testSalts(t, protocol.Salt{Site: 1, Day: "2026-12-31", Key: saltA})
	f := func(at time.Time, want bool) {
		t.Helper()
		_, err := s.For(1, at)
		if got := err == nil; got != want {
			t.Fatalf("For(1, %s) found = %v, want %v (err %v)", at.Format(time.RFC3339), got, want, err)
		}
	}
	f(time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC), true)
	f(time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC), true)
	f(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), false)
	f(time.Date(2026, 12, 30, 23, 59, 59, 0, time.UTC), false)
	f(time.Date(2027, 1, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600)), true) // 2026-12-31 23:30 UTC
}

// Hashers are reused from a pool: each hash must start from the keyed
// initial state whatever the previous one wrote, from any goroutine, and
// agree with a hash computed on a fresh clone of the keyed hasher.
func TestVisitorReusedHasherStartsClean(t *testing.T) {
	s := testSalts(t, protocol.Salt{Site: 1, Day: "2026-03-01", Key: saltA})
	k := mustKey(t, s, 1, day1)
	ip := netip.MustParseAddr("203.0.113.9")
	fresh := newKey(1, "2026-03-01", k.h.Clone()) // an empty pool
	want := fresh.Visitor(ip, "UA", "cid")
	long := strings.Repeat("x", 20_000) // several chunks of BLAKE3 input
	done := make(chan uint64)
	for range 8 {
		go func() {
			var got uint64
			for i := range 200 {
				k.Visitor(ip, long, "other")
				k.Visitor(ip, long[:i], "")
				got = k.Visitor(ip, "UA", "cid")
				if got != want {
					break
				}
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; got != want {
			t.Fatalf("visitor id after other hashes = %x, want %x", got, want)
		}
	}
}
