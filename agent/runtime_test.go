package agent

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
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
