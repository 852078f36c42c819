package bench

import (
	"os"
	"testing"
)

const statusSample = `Name:	avila-agent
Umask:	0022
State:	S (sleeping)
Pid:	4242
VmPeak:	 1290436 kB
VmSize:	 1290436 kB
VmHWM:	   61234 kB
VmRSS:	   40960 kB
RssAnon:	   30000 kB
Threads:	9
`

func TestParseStatus(t *testing.T) {
	m, err := ParseStatus([]byte(statusSample))
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSKB != 40960 || m.HWMKB != 61234 {
		t.Fatalf("got %+v, want RSS 40960 HWM 61234", m)
	}
}

func TestParseStatusErrors(t *testing.T) {
	f := func(name, in string) {
		t.Helper()
		if m, err := ParseStatus([]byte(in)); err == nil {
			t.Fatalf("%s: got %+v, want an error", name, m)
		}
	}
	// A zombie or kernel thread has no Vm lines.
	f("no vm lines", "Name:\tkworker\nState:\tZ (zombie)\n")
	f("only rss", "VmRSS:\t 10 kB\n")
	f("bad unit", "VmRSS:\t 10 MB\nVmHWM:\t 10 kB\n")
	f("bad number", "VmRSS:\t x kB\nVmHWM:\t 10 kB\n")
	f("negative", "VmRSS:\t -1 kB\nVmHWM:\t 10 kB\n")
}

func TestParseStatTimes(t *testing.T) {
	f := func(in string, want StatTimes) {
		t.Helper()
		got, err := ParseStatTimes([]byte(in))
		if err != nil {
			t.Fatalf("ParseStatTimes(%q): %v", in, err)
		}
		if got != want {
			t.Fatalf("ParseStatTimes(%q) = %+v, want %+v", in, got, want)
		}
	}
	// Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
	f("4242 (avila-agent) S 1 4242 4242 0 -1 4194560 900 0 0 0 125 37 0 0 20 0 9 0 1000 1290436 10240", StatTimes{Self: 162})
	// A name with spaces and a ")" must not shift the fields.
	f("7 (a b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 5 100 10", StatTimes{Self: 7})
	// A postmaster: its exited backends' time is in cutime and cstime.
	f("900 (postgres) S 1 900 900 0 -1 0 0 0 0 0 10 5 700 300 20 0 1 0 5 100 10", StatTimes{Self: 15, Children: 1000})
}

func TestParseStatTimesErrors(t *testing.T) {
	for _, in := range []string{"", "4242 avila S 1", "1 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 4 0 0",
		"1 (x) S 1 1 1 0 -1 0 0 0 0 0 3 4 0", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 3 4 0 c"} {
		if v, err := ParseStatTimes([]byte(in)); err == nil {
			t.Fatalf("ParseStatTimes(%q) = %+v, want an error", in, v)
		}
	}
}

func TestParseMachineTimes(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	m, err := ParseMachineTimes([]byte("cpu  100 2 30 500 8 1 4 0 0 0\ncpu0 50 1 15 250 4 0 2 0 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (MachineTimes{Busy: 137, Total: 645}); m != want {
		t.Fatalf("got %+v, want %+v", m, want)
	}
	for _, in := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3 4 5 6 7", "cpu 1 2 3 x 5 6 7 8"} {
		if m, err := ParseMachineTimes([]byte(in)); err == nil {
			t.Fatalf("ParseMachineTimes(%q) = %+v, want an error", in, m)
		}
	}
}

// The parsers must agree with the kernel's real files.
func TestReadOwnProcess(t *testing.T) {
	m, err := ReadMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSSKB <= 0 || m.HWMKB < m.RSSKB {
		t.Fatalf("own memory %+v: want 0 < RSS <= HWM", m)
	}
	if _, err := ReadCPUTicks(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if m, err := ReadMachineTimes(); err != nil || m.Busy == 0 || m.Total < m.Busy {
		t.Fatalf("machine times %+v, %v: want 0 < busy <= total", m, err)
	}
	if _, err := ReadMemory(-1); err == nil {
		t.Fatal("ReadMemory(-1): want an error")
	}
}

func TestCPUPercent(t *testing.T) {
	if got := cpuPercent(50, 5); got != 10 {
		t.Fatalf("50 ticks over 5 s = %v%%, want 10%%", got)
	}
	if got := cpuPercent(50, 0); got != 0 {
		t.Fatalf("zero wall time: %v, want 0", got)
	}
}
