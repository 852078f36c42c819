package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuSample is the CPU time spent so far by each process of the
// end-to-end phase and by the whole machine, in USER_HZ ticks.
type cpuSample struct {
	agent, aggregator uint64
	postgres          uint64 // the postmaster, its live children and the children it reaped
	harness           uint64 // this process's own threads (and the Go load generator)
	generator         uint64 // this process's reaped children: wrk, once it exited
	machine           MachineTimes
}

// postmaster is the pid of the PostgreSQL server the run's pool reaches:
// the parent of a backend serving it. It is 0, with an error, when the
// server runs on another machine or its processes cannot be read.
func (r *run) postmaster(ctx context.Context) (int, error) {
	var backend int
	if err := r.st.db.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		return 0, fmt.Errorf("bench: backend pid: %w", err)
	}
	// A server in a container or on another host numbers its processes
	// apart from this machine's: the pid is the backend's only if it
	// names a postgres process here.
	dir := "/proc/" + strconv.Itoa(backend)
	comm, err := os.ReadFile(dir + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return 0, fmt.Errorf("bench: PostgreSQL's backend %d is not a postgres process of this machine (%q, %v)", backend, strings.TrimSpace(string(comm)), err)
	}
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return 0, fmt.Errorf("bench: PostgreSQL's backend %d: %w", backend, err)
	}
	return parseStatPPID(b)
}

// treeTicks is the CPU time of pid and its children: its own, what it
// reaped, and its live children's. A backend that exits between two
// samples moves from the last term to the second, so differences hold.
func treeTicks(pid int) (uint64, error) {
	t, err := ReadStatTimes(pid)
	if err != nil {
		return 0, err
	}
	sum := t.Self + t.Children
	err = eachChild(pid, func(_ int, stat []byte) error {
		if c, err := ParseStatTimes(stat); err == nil {
			sum += c.Self + c.Children
		}
		return nil
	})
	return sum, err
}

// sampleCPU reads every process's CPU time; pg is the postmaster's pid, 0
// when it cannot be read.
func (r *run) sampleCPU(pg int) (cpuSample, error) {
	var s cpuSample
	var err error
	if s.agent, err = ReadCPUTicks(r.st.agent.pid()); err != nil {
		return s, err
	}
	if s.aggregator, err = ReadCPUTicks(r.st.agg.pid()); err != nil {
		return s, err
	}
	if pg != 0 {
		if s.postgres, err = treeTicks(pg); err != nil {
			return s, err
		}
	}
	self, err := ReadStatTimes(os.Getpid())
	if err != nil {
		return s, err
	}
	s.harness, s.generator = self.Self, self.Children
	s.machine, err = ReadMachineTimes()
	return s, err
}

// setPipelineCPU records the CPU time per stored event of each process
// between two samples, their sum, and the share of the machine's CPU time
// that was busy (any process) over the same clock.
func (r *run) setPipelineCPU(a, b cpuSample, events int64, withPostgres bool) {
	type part struct {
		name  string
		ticks uint64
	}
	parts := []part{
		{"agent", b.agent - a.agent}, {"aggregator", b.aggregator - a.aggregator},
		{"generator", b.generator - a.generator}, {"harness", b.harness - a.harness},
	}
	if withPostgres {
		parts = append(parts, part{"postgres", b.postgres - a.postgres})
	}
	var sum uint64
	for _, p := range parts {
		sum += p.ticks
		r.set("pipeline_cpu_us_per_event_"+p.name, cpuMicrosPer(p.ticks, events))
	}
	if withPostgres {
		r.set("pipeline_cpu_us_per_event_total", cpuMicrosPer(sum, events))
	}
	if total := b.machine.Total - a.machine.Total; total > 0 {
		r.set("pipeline_machine_busy_share", float64(b.machine.Busy-a.machine.Busy)/float64(total))
	}
}
