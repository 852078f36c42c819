package queue

import (
	"os"

	"golang.org/x/sys/unix"
)

// datasync flushes f's data to stable storage: fdatasync, which skips
// metadata such as mtime that reading the data back does not need.
func datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
