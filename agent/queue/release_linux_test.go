package queue

import (
	"bufio"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// rssFileKB is this process's resident file-backed memory, in KiB.
func rssFileKB(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssFile:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// Pages of the queue file that seals and sends read stay in the agent's
// memory map, and in its RSS, until an Ack releases them; their contents
// read back intact afterwards.
func TestAckReleasesMappedPages(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 0)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	// Paths that do not compress: about 20 MB of segments.
	for b := range 40 {
		batch := make([][]byte, 1000)
		for i := range batch {
			path := make([]byte, 0, 400)
			for len(path) < 400 {
				path = strconv.AppendUint(path, rng.Uint64(), 36)
			}
			e, err := protocol.EncodeEvent(&protocol.Event{Site: 1, TimeMicros: int64(b*1000 + i), Name: "page_view",
				Visitor: uint64(b*1000 + i), Path: "/" + string(path)})
			if err != nil {
				t.Fatal(err)
			}
			batch[i] = e
		}
		if err := q.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	var seqs []uint64
	for {
		seq, ok, err := q.Seal(1000)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		seqs = append(seqs, seq)
	}
	for _, seq := range seqs {
		if _, err := q.Segment(seq); err != nil {
			t.Fatal(err)
		}
	}
	before := rssFileKB(t)
	q.released.Store(0) // the seals may have released within the second
	if err := q.Ack(seqs[0]); err != nil {
		t.Fatal(err)
	}
	after := rssFileKB(t)
	if before-after < 8<<10 {
		t.Fatalf("resident file pages %d KiB before the ack, %d after: want at least 8 MiB released", before, after)
	}
	for _, seq := range seqs[1:] {
		if got := segmentIDs(t, q, seq); len(got) != 1000 || got[0] != (seq-1)*1000 {
			t.Fatalf("segment %d after the release: %d events from %d", seq, len(got), got[0])
		}
	}
}
