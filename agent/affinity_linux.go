package agent

import "golang.org/x/sys/unix"

// affinityCPUs is the number of CPUs the process may run on now (its CPU
// affinity), or 0 when the system does not say.
func affinityCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	return set.Count()
}
