package agent

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// currentGCPercent reads GOGC without changing it.
func currentGCPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestRuntimeSettingsAppliedAndRestored(t *testing.T) {
	gc0, limit0 := currentGCPercent(), debug.SetMemoryLimit(-1)
	restore := applyRuntime(Config{GCPercent: 321, MemoryLimit: 77 << 20})
	if got := currentGCPercent(); got != 321 {
		t.Errorf("GC percent after apply = %d, want 321", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 77<<20 {
		t.Errorf("memory limit after apply = %d, want %d", got, 77<<20)
	}
	restore()
	if got := currentGCPercent(); got != gc0 {
		t.Errorf("GC percent after restore = %d, want %d", got, gc0)
	}
	if got := debug.SetMemoryLimit(-1); got != limit0 {
		t.Errorf("memory limit after restore = %d, want %d", got, limit0)
	}

	// Zero fields leave the runtime alone (avila demo runs the aggregator
	// in the same process).
	debug.SetGCPercent(155)
	defer debug.SetGCPercent(gc0)
	applyRuntime(Config{})()
	if got := currentGCPercent(); got != 155 {
		t.Errorf("GC percent with zero config = %d, want 155 untouched", got)
	}
	if got := debug.SetMemoryLimit(-1); got != limit0 {
		t.Errorf("memory limit with zero config = %d, want %d untouched", got, limit0)
	}
}

func TestRuntimeSettingsChecked(t *testing.T) {
	f := func(cfg Config, want string) {
		t.Helper()
		err := checkRuntime(cfg)
		if want == "" {
			if err != nil {
				t.Errorf("checkRuntime(%d, %d) = %v, want nil", cfg.GCPercent, cfg.MemoryLimit, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkRuntime(%d, %d) = %v, want an error naming %s", cfg.GCPercent, cfg.MemoryLimit, err, want)
		}
	}
	f(Config{}, "")
	f(Config{GCPercent: DefaultGCPercent, MemoryLimit: DefaultMemoryLimit}, "")
	f(Config{GCPercent: -1, MemoryLimit: 1 << 30}, "")
	f(Config{GCPercent: -1}, "--memory-limit")
	f(Config{GCPercent: -5}, "--gogc")
	f(Config{MemoryLimit: -1}, "--memory-limit")
	f(Config{MinProcs: DefaultMinProcs}, "")
	f(Config{MinProcs: -1}, "--min-procs")
}

// The floor raises GOMAXPROCS while the process may use fewer CPUs than
// MinProcs, and gives it back to the runtime when it may use more.
func TestProcsFloorFollowsCPUs(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Fatal("run without GOMAXPROCS in the environment: the floor then applies once and follows nothing")
	}
	procs0 := runtime.GOMAXPROCS(0)
	floor := procs0 + 3
	var cpus atomic.Int32
	cpus.Store(1)
	stop := startProcsFloor(floor, func() int { return int(cpus.Load()) }, 5*time.Millisecond)
	defer stop()
	if got := runtime.GOMAXPROCS(0); got != floor {
		t.Fatalf("GOMAXPROCS on 1 CPU with floor %d = %d, want the floor at once", floor, got)
	}
	waitProcs := func(want int, why string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.GOMAXPROCS(0) != want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := runtime.GOMAXPROCS(0); got != want {
			t.Fatalf("GOMAXPROCS %s = %d, want %d", why, got, want)
		}
	}
	cpus.Store(int32(floor))
	waitProcs(procs0, "once the process may use as many CPUs as the floor (the runtime's own choice)")
	cpus.Store(1)
	waitProcs(floor, "back on 1 CPU")
	stop()
	if got := runtime.GOMAXPROCS(0); got != procs0 {
		t.Errorf("GOMAXPROCS after stop = %d, want the runtime's %d", got, procs0)
	}
	cpus.Store(1)
	time.Sleep(50 * time.Millisecond)
	if got := runtime.GOMAXPROCS(0); got != procs0 {
		t.Errorf("GOMAXPROCS 50 ms after stop = %d, want %d: the floor's loop did not stop", got, procs0)
	}
}

// MinProcs raises GOMAXPROCS and fixes it; Shutdown gives it back.
func TestRuntimeMinProcs(t *testing.T) {
	procs0 := runtime.GOMAXPROCS(0)
	restore := applyRuntime(Config{MinProcs: procs0 + 3})
	if got := runtime.GOMAXPROCS(0); got != procs0+3 {
		t.Errorf("GOMAXPROCS after apply = %d, want %d", got, procs0+3)
	}
	restore()
	if got := runtime.GOMAXPROCS(0); got != procs0 {
		t.Errorf("GOMAXPROCS after restore = %d, want %d", got, procs0)
	}
	// A floor below the runtime's choice keeps that choice.
	restore = applyRuntime(Config{MinProcs: 1})
	if got := runtime.GOMAXPROCS(0); got != procs0 {
		t.Errorf("GOMAXPROCS with floor 1 = %d, want %d", got, procs0)
	}
	restore()
}
