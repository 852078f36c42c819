package agent

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
)

// Go runtime defaults for a dedicated agent process (cmd/avila-agent). The
// hot path allocates a few KiB per hit that die at once, and the live heap
// is a few MiB, so the default GOGC=100 collects thousands of times a second
// under load. A higher GOGC collects less often; the memory limit still
// bounds the heap, and with it RSS, whatever GOGC says. RSS is this limit
// plus what is mapped from files, 15 to 25 MiB under load (the binary's
// code, and the queue file's pages read since the last release, see
// queue.releaseMapped). The limit is set just above the live heap under a
// sustained backlog, so RSS stays bounded without the collector running
// often enough to cost CPU per hit.
//
// DefaultMinProcs is 0: GOMAXPROCS is the runtime's, which follows the CPUs
// the process may use (affinity, cgroup limit). The queue's commit holds its
// thread, and with it a Go P, in fdatasync; with a single P the agent reads
// no request meanwhile. The write-ahead log's commit is short, so on one
// CPU a second P costs more in thread switches than the requests it would
// read during a commit: the runtime's default is kept. --min-procs fixes a
// floor for hosts whose fsync is slow, where a second P pays again.
const (
	DefaultGCPercent   = 400
	DefaultMemoryLimit = 24 << 20 // bytes
	DefaultMinProcs    = 0
)

// applyRuntime sets the process's GC percent, soft memory limit and
// GOMAXPROCS floor from cfg; a zero field leaves that setting as it was (so
// a process that also runs other components, like `avila demo`, keeps its
// own). It returns the values to restore.
//
// With MinProcs set, GOMAXPROCS is fixed at the larger of MinProcs and the
// runtime's choice at start, even when that is already enough: the runtime
// would otherwise lower it when the process's CPU affinity or cgroup limit
// shrinks later (Go 1.25+).
func applyRuntime(cfg Config) (restore func()) {
	oldGC, oldLimit, oldProcs := -2, int64(-1), 0
	if cfg.GCPercent != 0 {
		oldGC = debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimit != 0 {
		oldLimit = debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	if cfg.MinProcs != 0 {
		oldProcs = runtime.GOMAXPROCS(max(cfg.MinProcs, runtime.GOMAXPROCS(0)))
	}
	return func() {
		if oldGC != -2 {
			debug.SetGCPercent(oldGC)
		}
		if oldLimit >= 0 {
			debug.SetMemoryLimit(oldLimit)
		}
		switch {
		case oldProcs == 0:
		case os.Getenv("GOMAXPROCS") == "":
			runtime.SetDefaultGOMAXPROCS() // the runtime's choice, following CPU changes again
		default:
			runtime.GOMAXPROCS(oldProcs)
		}
	}
}

func checkRuntime(cfg Config) error {
	switch {
	case cfg.GCPercent < -1:
		return fmt.Errorf("agent: --gogc %d: want a percentage > 0, -1 (off) or 0 (leave the runtime's)", cfg.GCPercent)
	case cfg.MemoryLimit < 0:
		return fmt.Errorf("agent: --memory-limit %d: want bytes > 0, or 0 (leave the runtime's)", cfg.MemoryLimit)
	case cfg.MinProcs < 0:
		return fmt.Errorf("agent: --min-procs %d: want a number of Go processors > 0, or 0 (leave the runtime's)", cfg.MinProcs)
	case cfg.GCPercent == -1 && cfg.MemoryLimit == 0:
		return fmt.Errorf("agent: --gogc -1 turns the collector off; it needs a --memory-limit")
	}
	return nil
}
