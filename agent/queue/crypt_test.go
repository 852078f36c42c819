package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	bolt "go.etcd.io/bbolt"

	"github.com/avila-analytics/avila/protocol"
)

const secretMarker = "/checkout-7f3a9e-secret-marker"

func markedEvent(t testing.TB, id uint64) []byte {
	t.Helper()
	b, err := protocol.EncodeEvent(&protocol.Event{Site: 1, Name: "page_view", Visitor: id, Path: secretMarker})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValuesEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	q := openTest(t, path, 0)
	ctx := context.Background()
	for i := range uint64(6) {
		if err := q.Append(ctx, [][]byte{markedEvent(t, i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.PutMeta("config", []byte(secretMarker)); err != nil {
		t.Fatal(err)
	}
	seq1, _, err := q.Seal(2)
	if err != nil {
		t.Fatal(err)
	}
	seq2, _, err := q.Seal(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Reject(seq2, "test"); err != nil {
		t.Fatal(err)
	}
	// Two events stay pending, one segment sealed, one rejected.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, WALPath(path)} {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(secretMarker)) {
			t.Fatalf("%s holds an event field in the clear", filepath.Base(p))
		}
	}
	fi, err := os.Stat(DefaultKeyFile(path))
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 2*keyBytes+1 {
		t.Fatalf("key file mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), 2*keyBytes+1)
	}

	q = openTest(t, path, 0)
	if got := segmentIDs(t, q, seq1); !equalIDs(got, []uint64{0, 1}) {
		t.Fatalf("segment %d after reopen: %v", seq1, got)
	}
	if _, wire, err := q.Rejected(seq2); err != nil {
		t.Fatal(err)
	} else if b, err := protocol.DecodeBatch(wire); err != nil || len(b.Events) != 2 || b.Events[0].Path != secretMarker {
		t.Fatalf("rejected segment: %v %+v", err, b)
	}
	if v, err := q.GetMeta("config"); err != nil || string(v) != secretMarker {
		t.Fatalf("meta after reopen = %q, %v", v, err)
	}
	seq3, _, err := q.Seal(10)
	if err != nil {
		t.Fatal(err)
	}
	if got := segmentIDs(t, q, seq3); !equalIDs(got, []uint64{4, 5}) {
		t.Fatalf("pending after reopen sealed as %v", got)
	}
	segs, err := q.Segments()
	if err != nil || len(segs) != 2 || segs[0].Bytes <= 0 {
		t.Fatalf("segments %+v, %v", segs, err)
	}
	if wire, _ := q.Segment(seq1); segs[0].Bytes != len(wire) {
		t.Fatalf("SegmentInfo.Bytes %d, wire is %d", segs[0].Bytes, len(wire))
	}
}

func TestWrongOrMissingKeyIsAnErrorNotDataLoss(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queue.db")
	keyFile := filepath.Join(dir, "keys", "agent.key")
	if err := os.Mkdir(filepath.Dir(keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	q, err := Open(Options{Path: path, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Append(context.Background(), [][]byte{markedEvent(t, 42)}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(DefaultKeyFile(path)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a key file beside the queue despite Options.KeyFile: %v", err)
	}
	goodKey, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	// Another valid key.
	other := filepath.Join(dir, "other.key")
	if _, _, err := loadKey(other, true); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Path: path, KeyFile: other})
	if !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), other) {
		t.Fatalf("Open with another key = %v, want ErrWrongKey naming %s", err, other)
	}
	// A key file that is not a key.
	if err := os.WriteFile(other, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err = Open(Options{Path: path, KeyFile: other}); err == nil || !strings.Contains(err.Error(), "hex") {
		t.Fatalf("Open with a broken key file = %v", err)
	}
	// No key file: refused, and none is made up.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Path: path, KeyFile: keyFile})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Open without its key file = %v, want an error saying it is missing", err)
	}
	if _, err := os.Stat(keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open created a new key for a queue that has data: %v", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("failed Opens changed the queue file")
	}

	// The right key back: the event is there.
	if err := os.WriteFile(keyFile, goodKey, 0o600); err != nil {
		t.Fatal(err)
	}
	q, err = Open(Options{Path: path, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	seq, ok, err := q.Seal(10)
	if err != nil || !ok {
		t.Fatalf("Seal = %v, %v", ok, err)
	}
	if got := segmentIDs(t, q, seq); !equalIDs(got, []uint64{42}) {
		t.Fatalf("event after restoring the key: %v", got)
	}
}

// TestPlainFileEncryptedInPlace opens a queue file as an agent without
// encryption wrote it and finds every value readable, and sealed.
func TestPlainFileEncryptedInPlace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := protocol.EncodeRawBatch("oldagent", 1, 1_700_000_000_000_000, [][]byte{markedEvent(t, 7)})
	if err != nil {
		t.Fatal(err)
	}
	rec := make([]byte, segHeaderLen)
	binary.BigEndian.PutUint64(rec, 1_700_000_000_000_000)
	binary.BigEndian.PutUint32(rec[8:], 1)
	rec = append(rec, wire...)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPending, bucketSegments, bucketRejected, bucketMeta} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		segs := tx.Bucket(bucketSegments)
		if err := segs.SetSequence(1); err != nil {
			return err
		}
		if err := segs.Put(seqKey(1), rec); err != nil {
			return err
		}
		pending := tx.Bucket(bucketPending)
		if err := pending.SetSequence(1); err != nil {
			return err
		}
		if err := pending.Put(seqKey(1), markedEvent(t, 8)); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		if err := meta.Put(keyAgentID, []byte("oldagent")); err != nil {
			return err
		}
		return meta.Put([]byte("config"), []byte("cached"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	q := openTest(t, path, 0)
	if q.AgentID() != "oldagent" {
		t.Fatalf("agent id %q", q.AgentID())
	}
	got, err := q.Segment(1)
	if err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("old segment after migration: %v, same bytes %v", err, bytes.Equal(got, wire))
	}
	if v, err := q.GetMeta("config"); err != nil || string(v) != "cached" {
		t.Fatalf("old meta: %q, %v", v, err)
	}
	seq, _, err := q.Seal(10)
	if err != nil || seq != 2 {
		t.Fatalf("Seal = %d, %v", seq, err)
	}
	if ids := segmentIDs(t, q, seq); !equalIDs(ids, []uint64{8}) {
		t.Fatalf("old pending event sealed as %v", ids)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openTest(t, path, 0) // the second open finds the key check and migrates nothing
	if got, err := q.Segment(1); err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("old segment after reopen: %v", err)
	}
}

func TestSealedValuesBoundToTheirKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openTest(t, path, 0)
	for i := range uint64(2) {
		if err := q.Append(context.Background(), [][]byte{markedEvent(t, i)}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := q.Seal(1); err != nil {
			t.Fatal(err)
		}
	}
	// Swap the two segments' records: each still decrypts only under its
	// own seq, so a swapped file cannot resend events under another key.
	err := q.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSegments)
		r1 := append([]byte(nil), b.Get(seqKey(1))...)
		r2 := append([]byte(nil), b.Get(seqKey(2))...)
		if err := b.Put(seqKey(1), r2); err != nil {
			return err
		}
		return b.Put(seqKey(2), r1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Segment(1); err == nil {
		t.Fatal("segment 2's record opened as segment 1")
	}
}

// openAppend and sealAppend round-trip many values into one buffer, which
// grows as append grows it: a segment's thousands of events must not
// copy the buffer once per event (the AEAD alone would make room for
// exactly one more value each time).
func TestAppendedValuesShareAGrowingBuffer(t *testing.T) {
	s, err := newSealer(bytes.Repeat([]byte{3}, keyBytes))
	if err != nil {
		t.Fatal(err)
	}
	aad := []byte("pending")
	var plain, want []byte
	arrays := map[*byte]bool{}
	const values = 5000
	for i := range values {
		v := bytes.Repeat([]byte{byte(i)}, 200+i%100)
		want = append(want, v...)
		sealed := s.sealAppend([]byte("prefix"), v, aad)
		if plain, err = s.openAppend(plain, sealed[len("prefix"):], aad); err != nil {
			t.Fatal(err)
		}
		arrays[unsafe.SliceData(plain)] = true
	}
	if !bytes.Equal(plain, want) {
		t.Fatal("the appended plaintexts differ from the values sealed")
	}
	if len(arrays) > 40 {
		t.Fatalf("%d values appended into %d successive buffers; want the buffer to grow geometrically", values, len(arrays))
	}
}

// The events of one Append share one read of the randomness, yet each is
// sealed under a nonce of its own (a nonce used twice under one key would
// expose both plaintexts), and each opens.
func TestAppendNoncesDistinct(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 1<<30)
	events := make([][]byte, 64)
	for i := range events {
		events[i] = []byte("the same event")
	}
	for range 3 {
		if err := q.Append(context.Background(), events); err != nil {
			t.Fatal(err)
		}
	}
	_, vals, _, err := q.walRecords(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 3*len(events) {
		t.Fatalf("%d values logged, want %d", len(vals), 3*len(events))
	}
	seen := map[string]bool{}
	for _, v := range vals {
		nonce := string(v[:nonceBytes])
		if seen[nonce] {
			t.Fatalf("nonce %x sealed two values", nonce)
		}
		seen[nonce] = true
		if plain, err := q.seal.open(v, aadPending); err != nil || string(plain) != "the same event" {
			t.Fatalf("value opens to %q, %v", plain, err)
		}
	}
}

// A nonce source reads the randomness once for many nonces: 12 bytes,
// whose last four it counts up (mod 2^32) per nonce, and again after
// block nonces. Nonces of one draw never repeat, across calls and a
// counter that wraps.
func TestNonceSourceCounts(t *testing.T) {
	draws := [][]byte{
		{1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xfe},
		{9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 5},
		{7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0},
	}
	n := 0
	s := newNonceSource(func(b []byte) {
		copy(b, draws[n])
		n++
	})
	s.block = 3
	got := make([]byte, 7*nonceBytes)
	s.fill(got[:2*nonceBytes]) // across calls as within one
	s.fill(got[2*nonceBytes:])
	want := [][]byte{
		{1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xfe},
		{1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xff, 0xff, 0xff},
		{1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0}, // the counter wraps
		{9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 5}, // block used up: drawn again
		{9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 6},
		{9, 9, 9, 9, 9, 9, 9, 9, 0, 0, 0, 7},
		{7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0},
	}
	for i, w := range want {
		if g := got[i*nonceBytes : (i+1)*nonceBytes]; !bytes.Equal(g, w) {
			t.Fatalf("nonce %d is %x, want %x", i, g, w)
		}
	}
	if n != 3 {
		t.Fatalf("randomness read %d times for 7 nonces in blocks of 3, want 3", n)
	}
}

// Concurrent Appends take nonces from one source: every value the queue
// seals gets a nonce no other value has, and hundreds of requests read the
// randomness once.
func TestAppendNoncesUniqueOneDraw(t *testing.T) {
	q := openTest(t, filepath.Join(t.TempDir(), "queue.db"), 1<<30)
	var draws atomic.Int64
	q.seal.nonces = newNonceSource(func(b []byte) {
		draws.Add(1)
		readRandom(b)
	})
	const workers, requests, perRequest = 8, 40, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			events := make([][]byte, perRequest)
			for r := range requests {
				for i := range events {
					events[i] = []byte(fmt.Sprintf("event %d/%d/%d", w, r, i))
				}
				if err := q.Append(context.Background(), events); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if d := draws.Load(); d != 1 {
		t.Fatalf("randomness read %d times for %d requests, want once", d, workers*requests)
	}
	_, vals, _, err := q.walRecords(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != workers*requests*perRequest {
		t.Fatalf("%d values logged, want %d", len(vals), workers*requests*perRequest)
	}
	seen := make(map[string]bool, len(vals))
	for _, v := range vals {
		nonce := string(v[:nonceBytes])
		if seen[nonce] {
			t.Fatalf("nonce %x sealed two values", nonce)
		}
		seen[nonce] = true
		if _, err := q.seal.open(v, aadPending); err != nil {
			t.Fatal(err)
		}
	}
	// A segment and a meta value take theirs from the same source.
	seq, ok, err := q.Seal(5)
	if err != nil || !ok {
		t.Fatalf("seal: %v %v", ok, err)
	}
	if err := q.PutMeta("config", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Segment(seq); err != nil {
		t.Fatal(err)
	}
	if d := draws.Load(); d != 1 {
		t.Fatalf("randomness read %d times, want once", d)
	}
}

// BenchmarkNonces measures the nonces of one gtag.js POST (20 events):
// from the queue's nonce source, and, as a same-run baseline, read from
// the system's randomness as each request did before.
func BenchmarkNonces(b *testing.B) {
	buf := make([]byte, 20*nonceBytes)
	b.Run("source", func(b *testing.B) {
		s := newNonceSource(readRandom)
		for b.Loop() {
			s.fill(buf)
		}
	})
	b.Run("random", func(b *testing.B) {
		for b.Loop() {
			readRandom(buf)
		}
	})
}

// walRecords returns up to limit (all when limit <= 0) logged records that
// are not in bbolt yet, oldest first, with the offset after the last one;
// see walRead.
func (q *Queue) walRecords(limit int) (ids []uint64, vals [][]byte, end int64, err error) {
	q.mu.Lock()
	from, to, first := q.wal.consumedOff, q.wal.committedOff, q.wal.consumedID+1
	q.mu.Unlock()
	maxBytes := int64(0)
	if limit > 0 {
		maxBytes = q.wal.readMax
	}
	var p walPiece
	end, err = q.walRead(from, to, first, limit, maxBytes, &p)
	return p.ids, p.vals, end, err
}
