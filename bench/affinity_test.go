package bench

import (
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCPUList(t *testing.T) {
	f := func(cpus []int, want string) {
		t.Helper()
		var set unix.CPUSet
		for _, c := range cpus {
			set.Set(c)
		}
		if got := cpuList(set); got != want {
			t.Fatalf("cpuList(%v) = %q, want %q", cpus, got, want)
		}
	}
	f(nil, "")
	f([]int{0}, "0")
	f([]int{1}, "1")
	f([]int{0, 1, 2, 3}, "0-3")
	f([]int{0, 2, 3, 7}, "0,2-3,7")
}

func TestParseStatPPID(t *testing.T) {
	f := func(stat string, want int, wantErr bool) {
		t.Helper()
		got, err := parseStatPPID([]byte(stat))
		if (err != nil) != wantErr || got != want {
			t.Fatalf("parseStatPPID(%q) = %d, %v; want %d, error %v", stat, got, err, want, wantErr)
		}
	}
	f("1234 (postgres) S 1200 1234 1234 0 -1", 1200, false)
	f("77 (a) b) (c) R 5 77", 5, false) // the name holds parentheses and spaces
	f("no name here", 0, true)
	f("1 (x)", 0, true)
}

// The split gives each host at least one CPU and every CPU to one host.
func TestSplitHosts(t *testing.T) {
	s, ok, err := splitHosts()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		if s.all.Count() >= 2 {
			t.Fatalf("%d CPUs but no split", s.all.Count())
		}
		return
	}
	if s.edge.Count() == 0 || s.agg.Count() == 0 || s.edge.Count()+s.agg.Count() != s.all.Count() {
		t.Fatalf("split %s + %s of %s", cpuList(s.edge), cpuList(s.agg), cpuList(s.all))
	}
	for c := 0; c < 1024; c++ {
		if s.edge.IsSet(c) && s.agg.IsSet(c) || (s.edge.IsSet(c) || s.agg.IsSet(c)) != s.all.IsSet(c) {
			t.Fatalf("CPU %d: edge %v aggregator %v all %v", c, s.edge.IsSet(c), s.agg.IsSet(c), s.all.IsSet(c))
		}
	}
}

// TestEachChild: a process this one started is among its children, with
// its /proc stat, and the tree's CPU time counts this process's own.
func TestEachChild(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	found := false
	err := eachChild(os.Getpid(), func(child int, stat []byte) error {
		if child == cmd.Process.Pid {
			found = true
			if _, err := ParseStatTimes(stat); err != nil {
				t.Errorf("child %d's stat: %v", child, err)
			}
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("eachChild: found %v, %v; want the started process %d", found, err, cmd.Process.Pid)
	}
	self, err := ReadStatTimes(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if tree, err := treeTicks(os.Getpid()); err != nil || tree < self.Self {
		t.Fatalf("treeTicks = %d, %v; want at least this process's own %d", tree, err, self.Self)
	}
}
