package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// userHZ is the unit of utime and stime in /proc/PID/stat. Linux exposes
// CPU times to user space in USER_HZ, which is 100 on every architecture Go
// supports, whatever the kernel's internal tick rate.
const userHZ = 100

// Memory is a process's resident set size, from /proc/PID/status.
type Memory struct {
	RSSKB int64 // VmRSS: resident now, KiB
	HWMKB int64 // VmHWM: peak resident since start, KiB
}

// ParseStatus reads VmRSS and VmHWM out of the text of /proc/PID/status.
func ParseStatus(b []byte) (Memory, error) {
	var m Memory
	var haveRSS, haveHWM bool
	for line := range bytes.Lines(b) {
		key, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "VmRSS":
			dst, haveRSS = &m.RSSKB, true
		case "VmHWM":
			dst, haveHWM = &m.HWMKB, true
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return Memory{}, fmt.Errorf("bench: /proc status: %s: want \"<n> kB\", got %q", key, bytes.TrimSpace(rest))
		}
		v, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || v < 0 {
			return Memory{}, fmt.Errorf("bench: /proc status: %s: bad number %q", key, f[0])
		}
		*dst = v
	}
	if !haveRSS || !haveHWM {
		return Memory{}, errors.New("bench: /proc status: no VmRSS/VmHWM (has the process exited?)")
	}
	return m, nil
}

// StatTimes are a process's CPU times from /proc/PID/stat, in USER_HZ ticks.
type StatTimes struct {
	Self     uint64 // utime + stime: the process's own threads
	Children uint64 // cutime + cstime: children it has waited for, once they exited
}

// ParseStatTimes reads utime, stime, cutime and cstime (fields 14-17) from
// the text of /proc/PID/stat. The command name (field 2) is in parentheses
// and may hold spaces and parentheses itself, so fields are counted from
// the last ")".
func ParseStatTimes(b []byte) (StatTimes, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return StatTimes{}, errors.New("bench: /proc stat: no command name")
	}
	// After ")": field 3 (state) onwards.
	f := bytes.Fields(b[end+1:])
	const utime = 14 - 3
	if len(f) <= utime+3 {
		return StatTimes{}, fmt.Errorf("bench: /proc stat: %d fields after the name, want at least %d", len(f), utime+4)
	}
	var v [4]uint64
	for i, name := range []string{"utime", "stime", "cutime", "cstime"} {
		n, err := strconv.ParseUint(string(f[utime+i]), 10, 64)
		if err != nil {
			return StatTimes{}, fmt.Errorf("bench: /proc stat: %s %q: %w", name, f[utime+i], err)
		}
		v[i] = n
	}
	return StatTimes{Self: v[0] + v[1], Children: v[2] + v[3]}, nil
}

// MachineTimes are the whole machine's CPU times from the first line of
// /proc/stat, in USER_HZ ticks summed over every CPU.
type MachineTimes struct {
	Busy  uint64 // every state but idle and iowait
	Total uint64 // every state (guest time is already inside user and nice)
}

// ParseMachineTimes reads the "cpu" line of /proc/stat.
func ParseMachineTimes(b []byte) (MachineTimes, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	// cpu user nice system idle iowait irq softirq steal [guest guest_nice]
	if len(f) < 9 || string(f[0]) != "cpu" {
		return MachineTimes{}, fmt.Errorf("bench: /proc/stat: first line %q is not the cpu total", line)
	}
	var m MachineTimes
	for i, s := range f[1:9] {
		n, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return MachineTimes{}, fmt.Errorf("bench: /proc/stat: field %d %q: %w", i+1, s, err)
		}
		m.Total += n
		if i != 3 && i != 4 { // idle, iowait
			m.Busy += n
		}
	}
	return m, nil
}

// ReadMemory reads a live process's memory figures.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return Memory{}, fmt.Errorf("bench: memory of pid %d: %w", pid, err)
	}
	m, err := ParseStatus(b)
	if err != nil {
		return Memory{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return m, nil
}

// ReadCPUTicks reads a live process's CPU time so far (user + system) in
// USER_HZ ticks.
func ReadCPUTicks(pid int) (uint64, error) {
	t, err := ReadStatTimes(pid)
	return t.Self, err
}

// ReadStatTimes reads a live process's CPU times so far.
func ReadStatTimes(pid int) (StatTimes, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return StatTimes{}, fmt.Errorf("bench: cpu time of pid %d: %w", pid, err)
	}
	t, err := ParseStatTimes(b)
	if err != nil {
		return StatTimes{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return t, nil
}

// ReadMachineTimes reads the machine's CPU times so far.
func ReadMachineTimes() (MachineTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineTimes{}, fmt.Errorf("bench: machine cpu time: %w", err)
	}
	return ParseMachineTimes(b)
}

// cpuPercent is the CPU use that ticks over wall time represent, in percent
// of one core.
func cpuPercent(ticks uint64, wall float64) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(ticks) / userHZ / wall * 100
}
