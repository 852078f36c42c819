package queue

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/avila-analytics/avila/protocol"
)

// Power-loss tests. A SIGKILL (crash_test.go) cannot tell whether the
// write-ahead log was fdatasynced: the kernel's page cache keeps every
// write of a killed process. Here the log lives on simDisk, which at a
// simulated power loss keeps only what Datasync made durable (optionally
// plus a random part of the rest, as a torn write), and the queue is
// stopped at each failpoint (wal_file.go) in turn. The bbolt file is copied
// at that instant: bbolt fdatasyncs every commit before it returns, and at
// a failpoint no commit is half done (inside a transaction nothing of it is
// written yet), so the copy is what a power loss would leave of it.
//
// The check: every event whose Append returned nil reaches the model
// aggregator exactly once after recovery, no other event reaches it twice,
// and a segment resent under a seq carries the bytes first sent under it.
//
// Without the fdatasync the check fails: TestPowerLossWithoutSyncLoses runs
// the same workload with simDisk.noSync (Datasync does nothing, as if
// logGroup did not call it) and expects the check to report lost events.
// Deleting the Datasync call from logGroup makes TestPowerLoss fail alike.

// sector is the unit a torn write keeps or loses.
const sector = 512

// simDisk is a walDisk in memory whose files survive a simulated power loss
// only as far as they were synced.
type simDisk struct {
	mu     sync.Mutex
	files  map[string]*simFile
	noSync bool // Datasync does nothing
}

type simFile struct {
	d       *simDisk
	data    []byte         // what reads see: the page cache
	durable []byte         // what a power loss keeps
	dirty   map[int64]bool // sectors written since the last Datasync
}

func newSimDisk() *simDisk { return &simDisk{files: map[string]*simFile{}} }

func (d *simDisk) ReadFile(path string) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[path]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return bytes.Clone(f.data), nil
}

func (d *simDisk) Create(path string, size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.files[path] = &simFile{d: d, data: make([]byte, size), durable: make([]byte, size), dirty: map[int64]bool{}}
	return nil
}

func (d *simDisk) Open(path string) (walFile, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f, ok := d.files[path]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return f, nil
}

func (f *simFile) ReadAt(p []byte, off int64) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if off >= int64(len(f.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *simFile) WriteAt(p []byte, off int64) (int, error) {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if end := off + int64(len(p)); end > int64(len(f.data)) {
		f.data = append(f.data, make([]byte, end-int64(len(f.data)))...)
	}
	copy(f.data[off:], p)
	for s := off / sector; s <= (off+int64(len(p))-1)/sector; s++ {
		f.dirty[s] = true
	}
	return len(p), nil
}

func (f *simFile) Datasync() error {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	if f.d.noSync {
		return nil
	}
	f.durable = bytes.Clone(f.data)
	clear(f.dirty)
	return nil
}

func (f *simFile) Close() error { return nil }

// afterPowerLoss is the disk a power loss leaves, with the log at from
// moved to to: each file's durable bytes plus the unsynced sectors keep
// picks (none: nil keep).
func (d *simDisk) afterPowerLoss(from, to string, keep func() bool) *simDisk {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := newSimDisk()
	for path, f := range d.files {
		data := bytes.Clone(f.durable)
		if keep != nil {
			dirty := slices.Sorted(func(yield func(int64) bool) {
				for s := range f.dirty {
					if !yield(s) {
						return
					}
				}
			})
			for _, s := range dirty {
				if keep() {
					lo, hi := s*sector, min((s+1)*sector, int64(len(f.data)))
					if hi > int64(len(data)) {
						data = append(data, make([]byte, hi-int64(len(data)))...)
					}
					copy(data[lo:hi], f.data[lo:hi])
				}
			}
		}
		if path == from {
			path = to
		}
		out.files[path] = &simFile{d: out, data: data, durable: bytes.Clone(data), dirty: map[int64]bool{}}
	}
	return out
}

// clone copies the disk as it is.
func (d *simDisk) clone() *simDisk {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := newSimDisk()
	out.noSync = d.noSync
	for path, f := range d.files {
		out.files[path] = &simFile{d: out, data: bytes.Clone(f.data), durable: bytes.Clone(f.durable), dirty: maps(f.dirty)}
	}
	return out
}

func maps(m map[int64]bool) map[int64]bool {
	out := make(map[int64]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// aggregator is the model of the aggregators: it stores a batch's events
// once per (agent id, seq), as the real one does with its batch keys.
type aggregator struct {
	batches map[string][]byte // agent/seq → wire first received
	stored  map[uint64]int    // event id → times stored
}

func newAggregator() *aggregator {
	return &aggregator{batches: map[string][]byte{}, stored: map[uint64]int{}}
}

func (a *aggregator) clone() *aggregator {
	out := newAggregator()
	for k, v := range a.batches {
		out.batches[k] = v
	}
	for k, v := range a.stored {
		out.stored[k] = v
	}
	return out
}

// receive stores a segment's events unless its key was stored before; a
// resend must carry the same bytes.
func (a *aggregator) receive(agentID string, seq uint64, wire []byte) error {
	key := fmt.Sprintf("%s/%d", agentID, seq)
	if prev, ok := a.batches[key]; ok {
		if !bytes.Equal(prev, wire) {
			return fmt.Errorf("segment %s resent with other bytes", key)
		}
		return nil
	}
	b, err := protocol.DecodeBatch(wire)
	if err != nil {
		return fmt.Errorf("segment %s: %w", key, err)
	}
	if b.AgentID != agentID || b.Seq != seq {
		return fmt.Errorf("segment %s decodes as %s/%d", key, b.AgentID, b.Seq)
	}
	a.batches[key] = bytes.Clone(wire)
	for _, e := range b.Events {
		a.stored[e.Visitor]++
	}
	return nil
}

// ship sends the oldest segment and acks it.
func ship(q *Queue, agg *aggregator) error {
	segs, err := q.OldestSegments(1)
	if err != nil || len(segs) == 0 {
		return err
	}
	wire, err := q.Segment(segs[0].Seq)
	if err != nil {
		return err
	}
	if err := agg.receive(q.AgentID(), segs[0].Seq, wire); err != nil {
		return err
	}
	return q.Ack(segs[0].Seq)
}

// powerLossRun is one workload stopped at the nth time it passes point.
type powerLossRun struct {
	t     *testing.T
	point failpoint
	nth   int

	mu      sync.Mutex
	passed  int
	stopped bool
	// At the stop: the bbolt and key files, the log's disk, the
	// aggregator.
	db, key []byte
	wal     *simDisk
	agg     *aggregator

	dir  string
	disk *simDisk
	live *aggregator // the aggregator during the workload
}

// failAt is the queue's failpoint hook: at the nth pass of point it takes
// the power-loss snapshot and stops the queue; after that every failpoint
// fails, as nothing runs after a power loss.
func (r *powerLossRun) failAt(p failpoint) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return errFailpoint
	}
	if p != r.point {
		return nil
	}
	if r.passed++; r.passed < r.nth {
		return nil
	}
	r.stopped = true
	var err error
	if r.db, err = os.ReadFile(filepath.Join(r.dir, "queue.db")); err != nil {
		r.t.Errorf("snapshot: %v", err)
	}
	if r.key, err = os.ReadFile(DefaultKeyFile(filepath.Join(r.dir, "queue.db"))); err != nil {
		r.t.Errorf("snapshot: %v", err)
	}
	r.wal, r.agg = r.disk.clone(), r.live.clone()
	return errFailpoint
}

func (r *powerLossRun) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

const powerLossWALBytes = 8 << 10 // small: the log fills, drains and starts again often

// workload appends from 8 writers at a time (so groups form), seals every
// third round and ships every fourth, until the failpoint stops the queue
// (or maxRounds). It returns the ids acknowledged (Append returned nil) and
// all ids sent.
func (r *powerLossRun) workload(noSync bool) (acked, sent map[uint64]bool) {
	t := r.t
	r.dir, r.disk, r.live = t.TempDir(), newSimDisk(), newAggregator()
	r.disk.noSync = noSync
	q, err := Open(Options{Path: filepath.Join(r.dir, "queue.db"), WALBytes: powerLossWALBytes, walDisk: r.disk, failAt: r.failAt})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = q.Close() }() // fails at the failpoints: the snapshot is taken
	acked, sent = map[uint64]bool{}, map[uint64]bool{}
	var mu sync.Mutex
	const maxRounds = 200
	for round := uint64(0); round < maxRounds && !r.isStopped(); round++ {
		var wg sync.WaitGroup
		for w := range uint64(8) {
			ids := []uint64{round*100 + w*10}
			for j := uint64(1); j <= (round+w)%3; j++ {
				ids = append(ids, ids[0]+j)
			}
			mu.Lock()
			for _, id := range ids {
				sent[id] = true
			}
			mu.Unlock()
			wg.Go(func() {
				err := q.Append(context.Background(), evs(t, ids...))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					for _, id := range ids {
						acked[id] = true
					}
				case !strings.Contains(err.Error(), errFailpoint.Error()):
					t.Errorf("append %v: %v", ids, err)
				}
			})
		}
		wg.Wait()
		if round%3 == 2 && !r.isStopped() {
			if _, _, err := q.Seal(20); err != nil && !r.isStopped() {
				t.Fatalf("seal: %v", err)
			}
		}
		if round%4 == 3 && !r.isStopped() {
			if err := ship(q, r.live); err != nil && !r.isStopped() {
				t.Fatalf("ship: %v", err)
			}
		}
	}
	if !r.isStopped() {
		t.Fatalf("failpoint %d never passed %d times in %d rounds", r.point, r.nth, maxRounds)
	}
	return acked, sent
}

// recover opens the queue the power loss left (keep picks the unsynced
// sectors that survive), ships everything in it to the aggregator as it
// was at the loss, and returns that aggregator.
func (r *powerLossRun) recover(keep func() bool) *aggregator {
	t := r.t
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	if err := os.WriteFile(path, r.db, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(DefaultKeyFile(path), r.key, 0o600); err != nil {
		t.Fatal(err)
	}
	disk := r.wal.afterPowerLoss(WALPath(filepath.Join(r.dir, "queue.db")), WALPath(path), keep)
	q, err := Open(Options{Path: path, WALBytes: powerLossWALBytes, walDisk: disk})
	if err != nil {
		t.Fatalf("reopen after the power loss: %v", err)
	}
	defer func() {
		if err := q.Close(); err != nil {
			t.Error(err)
		}
	}()
	agg := r.agg.clone()
	for {
		_, ok, err := q.Seal(50)
		if err != nil {
			t.Fatalf("seal after the power loss: %v", err)
		}
		if !ok {
			break
		}
	}
	for {
		segs, err := q.Segments()
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) == 0 {
			return agg
		}
		if err := ship(q, agg); err != nil {
			t.Fatalf("ship after the power loss: %v", err)
		}
	}
}

// checkOnce reports acknowledged events the aggregator lacks, events it
// holds twice, and events it holds that were never sent.
func checkOnce(acked, sent map[uint64]bool, agg *aggregator) error {
	var lost, twice, unknown []uint64
	for id := range acked {
		if agg.stored[id] == 0 {
			lost = append(lost, id)
		}
	}
	for id, n := range agg.stored {
		if n > 1 {
			twice = append(twice, id)
		}
		if !sent[id] {
			unknown = append(unknown, id)
		}
	}
	if len(lost)+len(twice)+len(unknown) == 0 {
		return nil
	}
	slices.Sort(lost)
	return fmt.Errorf("%d acknowledged events lost %v, %d stored twice %v, %d never sent %v",
		len(lost), head(lost), len(twice), head(twice), len(unknown), head(unknown))
}

func head(ids []uint64) []uint64 { return ids[:min(len(ids), 5)] }

// TestPowerLoss stops the queue at every failpoint, at several passes of
// each, and recovers what a power loss leaves: only the synced log, a torn
// log (a random half of the unsynced sectors), and the whole log (a crash
// of the process alone). Every acknowledged event reaches the aggregator
// exactly once.
func TestPowerLoss(t *testing.T) {
	points := map[failpoint]string{
		fpLogWritten: "log written, not synced", fpLogSynced: "log synced, not answered",
		fpSealing: "inside the seal transaction", fpSealed: "seal committed, log not consumed",
		fpDrained: "log drained into pending, not restarted", fpAcking: "ack received, segment not deleted",
	}
	for point, name := range points {
		for _, nth := range []int{1, 2, 5} {
			t.Run(fmt.Sprintf("%s/%d", strings.ReplaceAll(name, " ", "_"), nth), func(t *testing.T) {
				r := &powerLossRun{t: t, point: point, nth: nth}
				acked, sent := r.workload(false)
				if len(acked) == 0 && point != fpLogWritten && point != fpLogSynced {
					t.Fatalf("nothing acknowledged before the failpoint")
				}
				rng := rand.New(rand.NewPCG(uint64(point), uint64(nth)))
				for _, v := range []struct {
					name string
					keep func() bool
				}{
					{"synced only", nil},
					{"torn", func() bool { return rng.IntN(2) == 0 }},
					{"all written", func() bool { return true }},
				} {
					if err := checkOnce(acked, sent, r.recover(v.keep)); err != nil {
						t.Errorf("%s: %v", v.name, err)
					}
				}
			})
		}
	}
}

// TestPowerLossWithoutSyncLoses runs TestPowerLoss's workload with a log
// whose Datasync does nothing, as if logGroup no longer called it, and
// stops it at the third group written: the check must report acknowledged
// events lost. This is what keeps TestPowerLoss honest: it fails when the
// fdatasync is gone.
func TestPowerLossWithoutSyncLoses(t *testing.T) {
	r := &powerLossRun{t: t, point: fpLogWritten, nth: 3}
	acked, sent := r.workload(true)
	if len(acked) == 0 {
		t.Fatal("nothing acknowledged before the failpoint")
	}
	err := checkOnce(acked, sent, r.recover(nil))
	if err == nil || !strings.Contains(err.Error(), "acknowledged events lost") {
		t.Fatalf("check after a power loss without fdatasync: %v, want acknowledged events lost", err)
	}
	t.Logf("without fdatasync: %v", err)
	// The same snapshot with the unsynced bytes kept (a crash of the
	// process alone, which a SIGKILL test exercises) loses nothing: only a
	// power loss shows the missing sync.
	if err := checkOnce(acked, sent, r.recover(func() bool { return true })); err != nil {
		t.Fatalf("process crash without fdatasync: %v", err)
	}
}
