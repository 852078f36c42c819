package agent

import (
	"fmt"
	"runtime/debug"
)

// Go runtime defaults for a dedicated agent process (cmd/avila-agent). The
// hot path allocates a few KiB per hit that die at once, and the live heap
// is a few MiB, so the default GOGC=100 collects thousands of times a second
// under load. A higher GOGC collects less often; the memory limit still
// bounds the heap, and with it RSS, whatever GOGC says. RSS is this limit
// plus what is mapped from files, about 15 MiB under load (the binary's
// code and the queue file's pages that were read): 32 MiB keeps the agent
// under 50 MB; at 40 MiB it reached 48 MB in make bench's load phases.
const (
	DefaultGCPercent   = 400
	DefaultMemoryLimit = 32 << 20 // bytes
)

// applyRuntime sets the process's GC percent and soft memory limit from
// cfg; a zero field leaves that setting as it was (so a process that also
// runs other components, like `avila demo`, keeps its own). It returns the
// values to restore.
func applyRuntime(cfg Config) (restore func()) {
	oldGC, oldLimit := -2, int64(-1)
	if cfg.GCPercent != 0 {
		oldGC = debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimit != 0 {
		oldLimit = debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	return func() {
		if oldGC != -2 {
			debug.SetGCPercent(oldGC)
		}
		if oldLimit >= 0 {
			debug.SetMemoryLimit(oldLimit)
		}
	}
}

func checkRuntime(cfg Config) error {
	switch {
	case cfg.GCPercent < -1:
		return fmt.Errorf("agent: --gogc %d: want a percentage > 0, -1 (off) or 0 (leave the runtime's)", cfg.GCPercent)
	case cfg.MemoryLimit < 0:
		return fmt.Errorf("agent: --memory-limit %d: want bytes > 0, or 0 (leave the runtime's)", cfg.MemoryLimit)
	case cfg.GCPercent == -1 && cfg.MemoryLimit == 0:
		return fmt.Errorf("agent: --gogc -1 turns the collector off; it needs a --memory-limit")
	}
	return nil
}
