package queue

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// The crash child appends in a loop and prints "ok <id>" for every event
// whose Append returned nil, as the agent answers 204; the parent kills it
// with SIGKILL mid-load and audits the file.
const (
	crashChildEnv   = "AVILA_QUEUE_CRASH_DIR"
	crashRoundEnv   = "AVILA_QUEUE_CRASH_ROUND"
	crashWriters    = 16
	crashAckedLimit = 3000 // acknowledged ids before the parent kills
)

func crashChild(dir string) {
	round, _ := strconv.ParseUint(os.Getenv(crashRoundEnv), 10, 64)
	q, err := Open(Options{Path: filepath.Join(dir, "queue.db"), WALBytes: crashWALBytes(int(round))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var out sync.Mutex
	// Sealing runs concurrently so the kill can land inside a Seal too.
	go func() {
		for range q.Appended() {
			if _, _, err := q.Seal(200); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
	}()
	for w := range crashWriters {
		go func() {
			for i := uint64(0); ; i++ {
				id := round*1_000_000_000 + uint64(w)*10_000_000 + i*2
				e1, _ := protocol.EncodeEvent(&protocol.Event{Site: 1, Name: "page_view", Visitor: id})
				e2, _ := protocol.EncodeEvent(&protocol.Event{Site: 1, Name: "scroll", Visitor: id + 1})
				if err := q.Append(context.Background(), [][]byte{e1, e2}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "ok %d\nok %d\n", id, id+1)
				out.Unlock()
			}
		}()
	}
	// The parent kills long before this; the limit keeps a lost child from
	// running for ever.
	time.Sleep(2 * time.Minute)
	os.Exit(3)
}

// crashWALBytes is the write-ahead log's size in a round: the default, then
// logs so small that the kill often lands while the log is drained into
// bbolt or starts again at offset 0.
func crashWALBytes(round int) int64 {
	switch round % 3 {
	case 2:
		return 64 << 10
	case 0:
		return 8 << 10
	}
	return 0
}

// runCrashChild starts a child on dir, kills it with SIGKILL after it
// acknowledged crashAckedLimit events, and returns every id it acknowledged.
func runCrashChild(t *testing.T, dir string, round int) []uint64 {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []uint64
	r := bufio.NewReader(stdout)
	killed := false
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			break // a line cut by the kill has no newline and does not count
		}
		if err != nil {
			t.Fatal(err)
		}
		id, perr := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(line), "ok "), 10, 64)
		if perr != nil {
			t.Fatalf("child printed %q", line)
		}
		acked = append(acked, id)
		if !killed && len(acked) >= crashAckedLimit {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before being killed: %v", err)
	}
	return acked
}

func TestCrashKeepsAcknowledgedEvents(t *testing.T) {
	dir := t.TempDir()
	var acked []uint64
	for round := 1; round <= 4; round++ {
		acked = append(acked, runCrashChild(t, dir, round)...)

		// Reopened with the next round's log size, so a log of another
		// size is read, then made anew.
		q, err := Open(Options{Path: filepath.Join(dir, "queue.db"), WALBytes: crashWALBytes(round + 1)})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		st := q.Stats()
		seen := sealAll(t, q)
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("round %d: id %d stored %d times", round, id, n)
			}
		}
		for _, id := range acked {
			if seen[id] != 1 {
				t.Fatalf("round %d: acknowledged id %d lost after SIGKILL", round, id)
			}
		}
		t.Logf("round %d: %d acknowledged, %d stored, %d pending and %d segments at reopen",
			round, len(acked), len(seen), st.Pending, st.Segments)
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
