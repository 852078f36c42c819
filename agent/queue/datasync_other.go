//go:build !linux

package queue

import "os"

// datasync flushes f's data to stable storage (os.File.Sync: fsync, or
// F_FULLFSYNC on macOS).
func datasync(f *os.File) error { return f.Sync() }
