//go:build !linux && !darwin

package listen

// RaiseFileLimit has no open-file limit to raise here; all zero: unknown.
func RaiseFileLimit() (before, now, hard uint64, err error) { return 0, 0, 0, nil }
