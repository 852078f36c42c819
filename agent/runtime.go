package agent

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
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
// often enough to cost CPU per hit. That live heap includes the queue's
// plaintext copy of the records its log holds (agent/queue/wal_plain.go,
// up to 2 MiB): the limit was raised by twice that when the copy came, as
// without it the collector's headroom halved and its cycles doubled.
//
// DefaultMinProcs is 2: the queue's commit holds its thread, and with it a
// Go P, in fdatasync; with a single P the agent reads no request meanwhile.
// The runtime gives one P only when the process may run on one CPU (its
// CPU affinity; a cgroup CPU limit below 2 still gets 2), and there a
// second P serves requests while the disk works: on a disk whose fdatasync
// takes about a millisecond that pays more than the thread switches it
// costs (bench/README.md, "Single-hit ingest").
const (
	DefaultGCPercent   = 400
	DefaultMemoryLimit = 28 << 20 // bytes
	DefaultMinProcs    = 2
)

// procsFloorEvery is how often the floor looks at the process's CPU
// affinity: the runtime itself re-reads it about once a second.
const procsFloorEvery = time.Second

// applyRuntime sets the process's GC percent, soft memory limit and
// GOMAXPROCS floor from cfg; a zero field leaves that setting as it was (so
// a process that also runs other components, like `avila demo`, keeps its
// own). It returns the function that stops the floor and restores the
// values.
//
// The floor holds only while the process may run on fewer CPUs than
// MinProcs: GOMAXPROCS is raised to MinProcs then, and handed back to the
// runtime (which follows CPU affinity and cgroup limits) as soon as the
// process may use MinProcs CPUs or more again. With GOMAXPROCS set in the
// environment the runtime follows nothing, and the floor is applied once.
func applyRuntime(cfg Config) (restore func()) {
	oldGC, oldLimit := -2, int64(-1)
	if cfg.GCPercent != 0 {
		oldGC = debug.SetGCPercent(cfg.GCPercent)
	}
	if cfg.MemoryLimit != 0 {
		oldLimit = debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	stopFloor := func() {}
	if cfg.MinProcs != 0 {
		stopFloor = startProcsFloor(cfg.MinProcs, affinityCPUs, procsFloorEvery)
	}
	return func() {
		stopFloor()
		if oldGC != -2 {
			debug.SetGCPercent(oldGC)
		}
		if oldLimit >= 0 {
			debug.SetMemoryLimit(oldLimit)
		}
	}
}

// startProcsFloor keeps GOMAXPROCS at no less than floor while cpus()
// (the CPUs the process may run on) is below it, looking every period. It
// returns the function that stops it and gives GOMAXPROCS back.
func startProcsFloor(floor int, cpus func() int, every time.Duration) (stop func()) {
	if env := os.Getenv("GOMAXPROCS"); env != "" {
		old := runtime.GOMAXPROCS(0)
		if old < floor {
			runtime.GOMAXPROCS(floor)
		}
		return func() { runtime.GOMAXPROCS(old) }
	}
	f := &procsFloor{floor: floor, cpus: cpus}
	f.check()
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f.check()
			}
		}
	}()
	return sync.OnceFunc(func() {
		close(done)
		<-exited
		if f.raised {
			runtime.SetDefaultGOMAXPROCS()
		}
	})
}

// procsFloor is the state of startProcsFloor's loop.
type procsFloor struct {
	floor  int
	cpus   func() int
	raised bool // GOMAXPROCS was set to floor and no longer follows the runtime
}

func (f *procsFloor) check() {
	switch n := f.cpus(); {
	case n <= 0: // affinity unknown: leave things as they are
	case n < f.floor && !f.raised:
		// The runtime lowers GOMAXPROCS to n within a second of an
		// affinity change; the floor takes its place at once.
		runtime.GOMAXPROCS(f.floor)
		f.raised = true
	case n >= f.floor && f.raised:
		runtime.SetDefaultGOMAXPROCS()
		f.raised = false
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
