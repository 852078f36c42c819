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

// ParseStatCPU returns utime+stime, in USER_HZ ticks, from the text of
// /proc/PID/stat. The command name (field 2) is in parentheses and may hold
// spaces and parentheses itself, so fields are counted from the last ")".
func ParseStatCPU(b []byte) (uint64, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, errors.New("bench: /proc stat: no command name")
	}
	// After ")": field 3 (state) onwards; utime and stime are fields 14 and 15.
	f := bytes.Fields(b[end+1:])
	const utime = 14 - 3
	if len(f) <= utime+1 {
		return 0, fmt.Errorf("bench: /proc stat: %d fields after the name, want at least %d", len(f), utime+2)
	}
	u, err := strconv.ParseUint(string(f[utime]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bench: /proc stat: utime %q: %w", f[utime], err)
	}
	s, err := strconv.ParseUint(string(f[utime+1]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bench: /proc stat: stime %q: %w", f[utime+1], err)
	}
	return u + s, nil
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
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("bench: cpu time of pid %d: %w", pid, err)
	}
	t, err := ParseStatCPU(b)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return t, nil
}

// cpuPercent is the CPU use that ticks over wall time represent, in percent
// of one core.
func cpuPercent(ticks uint64, wall float64) float64 {
	if wall <= 0 {
		return 0
	}
	return float64(ticks) / userHZ / wall * 100
}
