package queue

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Errors callers branch on.
var (
	// ErrFull: Append refused because the disk budget (Options.MaxBytes) is
	// used up; the agent answers 503 until shipping frees space.
	ErrFull = errors.New("queue full")
	// ErrClosed: the queue was closed before the call could complete.
	ErrClosed = errors.New("queue closed")
	// ErrNoSegment: no sealed, unacknowledged segment has this seq.
	ErrNoSegment = errors.New("no such segment")
)

// DefaultMaxBytes is the disk budget when Options.MaxBytes is 0.
const DefaultMaxBytes = 1 << 30

// lockTimeout bounds the wait for bbolt's file lock: a second agent on the
// same data dir must fail at start, not hang.
const lockTimeout = 2 * time.Second

// Bucket names. pending: big-endian counter → encoded event. segments:
// big-endian seq → segment record (header + wire batch); the bucket's own
// sequence is the last seq handed out. rejected: big-endian seq → reason +
// segment record. meta: small named values (agent id, cached config).
var (
	bucketPending  = []byte("pending")
	bucketSegments = []byte("segments")
	bucketRejected = []byte("rejected")
	bucketMeta     = []byte("meta")
	keyAgentID     = []byte("agent_id")
)

// Options configures Open.
type Options struct {
	Path string // bbolt file, e.g. <data-dir>/queue.db
	// KeyFile holds the AES-256 key (64 hex digits) every stored value is
	// sealed with; DefaultKeyFile(Path) when empty. A missing file is
	// created (0600) for a new queue; opening a queue with another key
	// fails with ErrWrongKey.
	KeyFile  string
	MaxBytes int64 // budget for pending + sealed + rejected bytes; DefaultMaxBytes when 0
	// WALBytes is the size of the write-ahead log file beside Path (see
	// WALPath), written in full when created; DefaultWALBytes when 0. It
	// is not counted in MaxBytes.
	WALBytes int64
	Logger   *slog.Logger
	Now      func() time.Time // default time.Now

	// Tests only (powerloss_test.go): the write-ahead log's file system
	// (nil: osDisk) and the failpoint hook (nil: none).
	walDisk walDisk
	failAt  func(failpoint) error
}

// Queue is the agent's durable event queue. Safe for concurrent use.
type Queue struct {
	db      *bolt.DB
	path    string
	keyFile string
	seal    *sealer
	max     int64
	log     *slog.Logger
	now     func() time.Time
	agentID string
	walSize int64
	walDisk walDisk
	failAt  func(failpoint) error // tests only; see failpoint

	mu      sync.Mutex
	closed  bool
	waiting []*request // Appends queued for the next commit
	// spare is the array of the group committed last, emptied, for
	// waiting to take at the next commit: a commit otherwise left it to
	// the collector, and Appends grew a new one for every commit. Only
	// the committer goroutine touches it.
	spare      []*request
	committing bool // the committer was kicked and has not gone idle since
	acct       accounting
	wal        wal   // the write-ahead log; see wal.go for who owns which field
	reserved   int64 // bytes of queued and in-flight Appends, admitted but not yet committed

	// free holds answered Appends' requests for later Appends (see
	// takeRequest), at most maxFreeRequests; under its own lock.
	freeMu sync.Mutex
	free   []*request

	sealMu   sync.Mutex // serializes Seal so the next seq is known before encoding
	sealBufs sealBufs   // Seal's buffers, under sealMu
	signal   chan struct{}

	released atomic.Int64 // Unix nanoseconds of the last releaseMapped

	// The committer goroutine: kick wakes it (room for one), stop ends
	// it, committerDone is closed when it has ended.
	kick, stop, committerDone chan struct{}
}

// accounting mirrors what the file holds; rebuilt by a scan at Open and
// updated only after the transaction that changed it committed.
type accounting struct {
	pending, pendingBytes   int64
	segments, segmentBytes  int64
	rejected, rejectedBytes int64
	commits, appended       uint64
}

func (a *accounting) used() int64 { return a.pendingBytes + a.segmentBytes + a.rejectedBytes }

// Open opens or creates the queue file. A second process on the same file
// fails after lockTimeout; a corrupt file is an error naming it, never
// silently replaced.
func Open(opts Options) (*Queue, error) {
	if opts.Path == "" {
		return nil, errors.New("queue: open: empty path")
	}
	if opts.MaxBytes < 0 || opts.WALBytes < 0 {
		return nil, fmt.Errorf("queue: open %s: max bytes %d and write-ahead log bytes %d must be >= 0", opts.Path, opts.MaxBytes, opts.WALBytes)
	}
	if opts.KeyFile == "" {
		opts.KeyFile = DefaultKeyFile(opts.Path)
	}
	q := &Queue{path: opts.Path, keyFile: opts.KeyFile, max: opts.MaxBytes, log: opts.Logger, now: opts.Now, signal: make(chan struct{}, 1)}
	if q.max == 0 {
		q.max = DefaultMaxBytes
	}
	q.walDisk, q.failAt = opts.walDisk, opts.failAt
	if q.walDisk == nil {
		q.walDisk = osDisk{}
	}
	q.walSize = opts.WALBytes
	if q.walSize == 0 {
		q.walSize = DefaultWALBytes
	}
	if q.log == nil {
		q.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if q.now == nil {
		q.now = time.Now
	}
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{
		Timeout:        lockTimeout,
		NoFreelistSync: true, // the freelist is rebuilt at open; commits write less
		FreelistType:   bolt.FreelistMapType,
		// Backstop only: the byte budget refuses Appends long before this.
		// The slack leaves room for Seal and Ack to free space when full.
		MaxSize: int(2*q.max + 64<<20),
	})
	if err != nil {
		return nil, openError(opts.Path, err)
	}
	q.db = db
	if err := q.init(); err != nil {
		_ = db.Close()
		if q.wal.f != nil {
			_ = q.wal.f.Close()
		}
		return nil, err
	}
	q.kick, q.stop, q.committerDone = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go q.committer()
	return q, nil
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("queue: open %s: file is locked by another process (is another agent using this data dir?)", path)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch),
		strings.Contains(err.Error(), "invalid"), strings.Contains(err.Error(), "checksum"):
		return fmt.Errorf("queue: open %s: file is corrupt (%w); move it aside to start an empty queue, events in it are not shipped", path, err)
	}
	return fmt.Errorf("queue: open %s: %w", path, err)
}

// init creates buckets, loads or creates the agent id and the key, checks
// the key, and rebuilds the byte accounting from the file.
func (q *Queue) init() error {
	var hasCheck bool
	err := q.db.View(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			hasCheck = meta.Get(keyCheck) != nil
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: init %s: %w", q.path, err)
	}
	// A key file is created only for a queue that has never sealed
	// anything: for one that has, a missing key is an error, not a reason
	// to start over.
	key, created, err := loadKey(q.keyFile, !hasCheck)
	if err != nil {
		return fmt.Errorf("queue: open %s: %w", q.path, err)
	}
	if q.seal, err = newSealer(key); err != nil {
		return fmt.Errorf("queue: open %s: key file %s: %w", q.path, q.keyFile, err)
	}
	if created {
		q.log.Info("queue key file created; back it up with the queue, which cannot be read without it", "path", q.keyFile)
	}
	var migrated int
	err = q.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketPending, bucketSegments, bucketRejected, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if check := meta.Get(keyCheck); check != nil {
			if plain, err := q.seal.open(check, keyCheck); err != nil || !bytes.Equal(plain, keyCheckPlain) {
				return fmt.Errorf("key file %s: %w (was it replaced? restore the key this queue was created with; "+
					"nothing in the queue was changed)", q.keyFile, ErrWrongKey)
			}
		} else {
			var err error
			if migrated, err = q.encryptPlain(tx); err != nil {
				return err
			}
			if err := meta.Put(keyCheck, q.seal.seal(keyCheckPlain, keyCheck)); err != nil {
				return err
			}
		}
		if id := meta.Get(keyAgentID); id != nil {
			q.agentID = string(id)
			return nil
		}
		id, err := newAgentID()
		if err != nil {
			return err
		}
		q.agentID = id
		return meta.Put(keyAgentID, []byte(id))
	})
	if err != nil {
		return fmt.Errorf("queue: init %s: %w", q.path, err)
	}
	if migrated > 0 {
		q.log.Warn("queue file held unencrypted values from an older agent; encrypted them in place", "path", q.path, "values", migrated)
	}
	replayed, torn, err := q.openWAL(q.walSize)
	if err != nil {
		return fmt.Errorf("queue: open %s: %w", q.path, err)
	}
	if torn > 0 {
		q.log.Warn("queue: the write-ahead log ends in a record a crash cut short; it was never acknowledged and is dropped",
			"path", WALPath(q.path), "records", torn)
	}
	err = q.db.View(func(tx *bolt.Tx) error {
		a := &q.acct
		a.pending, a.pendingBytes = scan(tx.Bucket(bucketPending))
		a.segments, a.segmentBytes = scan(tx.Bucket(bucketSegments))
		a.rejected, a.rejectedBytes = scan(tx.Bucket(bucketRejected))
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: scan %s: %w", q.path, err)
	}
	q.log.Info("queue opened", "path", q.path, "agent", q.agentID, "replayed", replayed,
		"pending", q.acct.pending, "segments", q.acct.segments, "rejected", q.acct.rejected,
		"used_bytes", q.acct.used(), "max_bytes", q.max)
	return nil
}

// scan counts entries and their key+value bytes, the unit of the budget.
func scan(b *bolt.Bucket) (n, bytes int64) {
	_ = b.ForEach(func(k, v []byte) error {
		n++
		bytes += int64(len(k) + len(v))
		return nil
	})
	return n, bytes
}

// newAgentID returns 16 lower-case base32 characters (80 random bits).
func newAgentID() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate agent id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(b[:])), nil
}

// AgentID is this queue's agent identity, generated once and kept in the
// file, so segment keys (AgentID, Seq) never repeat across restarts.
func (q *Queue) AgentID() string { return q.agentID }

// Close fails queued Appends with ErrClosed, waits for the commit in flight,
// stops the committer and closes the file.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	waiting := q.waiting
	q.waiting = nil
	q.mu.Unlock()
	for _, r := range waiting {
		r.done <- ErrClosed
	}
	close(q.stop)
	<-q.committerDone // after the commit in flight, if any
	q.sealMu.Lock()   // after a Seal in flight, which reads the log
	defer q.sealMu.Unlock()
	// After a clean stop queue.db holds every event; if this fails, the
	// log still does and the next Open reads it.
	derr := q.drainWALLocked()
	return errors.Join(derr, q.closeFiles())
}

// closeFiles closes the log and the bbolt file.
func (q *Queue) closeFiles() error {
	werr := q.wal.f.Close()
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("queue: close %s: %w", q.path, err)
	}
	if werr != nil {
		return fmt.Errorf("queue: close %s: %w", WALPath(q.path), werr)
	}
	return nil
}

// wrap adds the operation to err and maps bbolt's closed-database error to
// ErrClosed.
func (q *Queue) wrap(op string, err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("queue: %s: %w", op, ErrClosed)
	}
	return fmt.Errorf("queue: %s: %w", op, err)
}
