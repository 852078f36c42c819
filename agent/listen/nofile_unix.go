//go:build linux || darwin

package listen

import "syscall"

// RaiseFileLimit raises the process's soft open-file limit (RLIMIT_NOFILE)
// to its hard limit, so the caps can use what the system allows. It
// returns the soft limit found, the soft limit now and the hard limit. Go's
// runtime already does the same at start on Linux; this makes it explicit
// and visible in the log wherever the agent runs.
func RaiseFileLimit() (before, now, hard uint64, err error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0, 0, err
	}
	before, hard = r.Cur, r.Max
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return before, before, hard, err
		}
	}
	return before, r.Cur, hard, nil
}
