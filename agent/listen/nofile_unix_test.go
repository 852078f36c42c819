//go:build linux || darwin

package listen

import (
	"syscall"
	"testing"
)

// TestRaiseFileLimit lowers this process's soft open-file limit and checks
// RaiseFileLimit reports it and raises it back to the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	var orig syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
	low := orig
	low.Cur = min(orig.Max, 512) / 2
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	before, now, hard, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if before != low.Cur || now != orig.Max || hard != orig.Max {
		t.Fatalf("RaiseFileLimit() = %d, %d, %d; want %d, %d, %d", before, now, hard, low.Cur, orig.Max, orig.Max)
	}
	var got syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got); err != nil || got.Cur != orig.Max {
		t.Fatalf("soft limit now %d (%v), want %d", got.Cur, err, orig.Max)
	}
}
