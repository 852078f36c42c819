package listen

import (
	"errors"
	"syscall"
)

// passingErrno reports the accept errnos that pass: EMFILE and ENFILE (out
// of file descriptors: they come back as connections close), ENOBUFS and
// ENOMEM (kernel memory), ECONNABORTED and ECONNRESET (the client gave up
// before the accept; Go retries these itself on Linux).
func passingErrno(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
