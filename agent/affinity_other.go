//go:build !linux

package agent

import "runtime"

// affinityCPUs is the number of CPUs the process could use at start: other
// systems do not tell the runtime of later changes.
func affinityCPUs() int { return runtime.NumCPU() }
