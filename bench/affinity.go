package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// hostSplit divides the CPUs the harness may use between two pretend
// machines for the single-hit phase: the edge host (load generator, the
// server under test, the harness) and the aggregator host (aggregator and
// PostgreSQL). In a deployment the agent runs beside the web server and the
// aggregator elsewhere; on one machine their work would otherwise compete
// for the same cores, against the agent but not against the bare handler.
type hostSplit struct {
	all, edge, agg unix.CPUSet
}

// splitHosts gives the first half of the harness's CPUs (at least one) to
// the edge host and the rest to the aggregator host; false when fewer than
// two CPUs are available.
func splitHosts() (hostSplit, bool, error) {
	var s hostSplit
	if err := unix.SchedGetaffinity(0, &s.all); err != nil {
		return s, false, fmt.Errorf("bench: read the harness's CPU affinity: %w", err)
	}
	n := s.all.Count()
	if n < 2 {
		return s, false, nil
	}
	var cpus []int
	for c := 0; len(cpus) < n; c++ {
		if s.all.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	for i, c := range cpus {
		if i < n/2 {
			s.edge.Set(c)
		} else {
			s.agg.Set(c)
		}
	}
	return s, true, nil
}

// cpuList writes a CPU set as taskset does: "0", "1-3".
func cpuList(set unix.CPUSet) string {
	var parts []string
	for c, n := 0, 0; n < set.Count(); c++ {
		if !set.IsSet(c) {
			continue
		}
		end := c
		for set.IsSet(end + 1) {
			end++
		}
		n += end - c + 1
		if end == c {
			parts = append(parts, strconv.Itoa(c))
		} else {
			parts = append(parts, strconv.Itoa(c)+"-"+strconv.Itoa(end))
		}
		c = end
	}
	return strings.Join(parts, ",")
}

// pinProcess sets the CPU affinity of every thread of pid. Threads the
// process starts later inherit it from the thread that starts them, so two
// passes catch threads started during the first.
func pinProcess(pid int, set unix.CPUSet) error {
	for range 2 {
		tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		if err != nil {
			return fmt.Errorf("bench: threads of pid %d: %w", pid, err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			// A thread that ended meanwhile is no error.
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("bench: set CPU affinity of pid %d thread %d: %w", pid, tid, err)
			}
		}
	}
	return nil
}

// pinTree pins pid and its child processes (PostgreSQL's postmaster and its
// backends and workers). Backends forked later inherit the postmaster's
// affinity.
func pinTree(pid int, set unix.CPUSet) error {
	if err := pinProcess(pid, set); err != nil {
		return err
	}
	for range 2 {
		err := eachChild(pid, func(child int, _ []byte) error {
			if err := pinProcess(child, set); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// eachChild calls each with every live child process of pid and the text
// of its /proc/PID/stat; a process that ends meanwhile is skipped.
func eachChild(pid int, each func(child int, stat []byte) error) error {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return fmt.Errorf("bench: list processes: %w", err)
	}
	for _, p := range procs {
		child, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "stat"))
		if err != nil {
			continue // gone
		}
		if ppid, err := parseStatPPID(b); err != nil || ppid != pid {
			continue
		}
		if err := each(child, b); err != nil {
			return err
		}
	}
	return nil
}

// parseStatPPID returns field 4 (ppid) of /proc/PID/stat; fields are
// counted from the last ")", as the command name may hold anything.
func parseStatPPID(b []byte) (int, error) {
	s := string(b)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, errors.New("bench: /proc stat: no command name")
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 2 {
		return 0, errors.New("bench: /proc stat: too few fields")
	}
	return strconv.Atoi(f[1])
}

// postmasterPID reads the postmaster's pid from postmaster.pid in a data
// directory.
func postmasterPID(dataDir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("bench: PostgreSQL pid: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("bench: PostgreSQL pid in %s: %q", dataDir, line)
	}
	return pid, nil
}
