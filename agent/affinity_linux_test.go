package agent

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The default floor, on a process pinned to one CPU as the bench's split
// run pins the agent: the runtime alone would give it one P.
func TestDefaultMinProcsOnOneCPU(t *testing.T) {
	if os.Getenv("AVILA_TEST_ONE_CPU") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDefaultMinProcsOnOneCPU$", "-test.count=1")
		cmd.Env = append(os.Environ(), "AVILA_TEST_ONE_CPU=1")
		cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child pinned to one CPU: %v\n%s", err, out)
		}
		return
	}
	// The testing package fixed GOMAXPROCS (-test.cpu); a process of its
	// own follows its CPUs.
	runtime.SetDefaultGOMAXPROCS()
	// Every thread, as the bench pins a process: a thread's affinity is
	// its own, and the runtime reads its count on one of them.
	var one unix.CPUSet
	one.Set(0)
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			t.Fatalf("/proc/self/task/%s: %v", task.Name(), err)
		}
		if err := unix.SchedSetaffinity(tid, &one); err != nil {
			t.Fatalf("pin thread %d to CPU 0: %v", tid, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.GOMAXPROCS(0) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := runtime.GOMAXPROCS(0); got != 1 {
		t.Fatalf("GOMAXPROCS 5 s after pinning to one CPU = %d, want the runtime's 1", got)
	}
	restore := applyRuntime(Config{MinProcs: DefaultMinProcs})
	defer restore()
	// Past the runtime's next look at the CPUs.
	time.Sleep(1500 * time.Millisecond)
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("GOMAXPROCS on one CPU with the default floor (%d) = %d, want 2: "+
			"a commit's fdatasync holds a P, and with one the agent reads nothing meanwhile", DefaultMinProcs, got)
	}
	if affinityCPUs() != 1 {
		t.Fatalf("affinityCPUs() = %d after pinning to one CPU, want 1", affinityCPUs())
	}
}
