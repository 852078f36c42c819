package queue

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Stats is a snapshot of the queue for metrics and logs. Byte figures are
// in the budget's unit: stored key and value bytes.
type Stats struct {
	Pending       int64 // events appended, not yet sealed
	PendingBytes  int64
	Segments      int64 // sealed, not yet acknowledged
	SegmentBytes  int64
	Rejected      int64 // segments set aside by Reject
	RejectedBytes int64
	UsedBytes     int64 // counted against MaxBytes
	MaxBytes      int64
	OldestSegment time.Time // sealing time of the oldest unacknowledged segment; zero if none
	Commits       uint64    // fsynced Append transactions since Open
	Appended      uint64    // events appended since Open
}

// Stats returns current figures. It reads only the oldest segment's header
// from the file, so it is cheap enough for every metrics scrape.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	a := q.acct
	q.mu.Unlock()
	s := Stats{
		Pending: a.pending, PendingBytes: a.pendingBytes,
		Segments: a.segments, SegmentBytes: a.segmentBytes,
		Rejected: a.rejected, RejectedBytes: a.rejectedBytes,
		UsedBytes: a.used(), MaxBytes: q.max,
		Commits: a.commits, Appended: a.appended,
	}
	if a.segments > 0 {
		_ = q.db.View(func(tx *bolt.Tx) error {
			k, v := tx.Bucket(bucketSegments).Cursor().First()
			if k != nil {
				if info, _, err := parseRecord(0, v); err == nil {
					s.OldestSegment = info.Sealed
				}
			}
			return nil
		})
	}
	return s
}

// Pending is Stats().Pending without reading the file: the shipper's sealer
// asks after every commit.
func (q *Queue) Pending() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.acct.pending
}

// PutMeta stores a small named value (e.g. the cached site config) durably,
// encrypted.
func (q *Queue) PutMeta(key string, val []byte) error {
	if key == "" || bytes.Equal([]byte(key), keyAgentID) || bytes.Equal([]byte(key), keyCheck) {
		return fmt.Errorf("queue: put meta %q: reserved or empty key", key)
	}
	err := q.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), q.seal.seal(val, []byte(key)))
	})
	if err != nil {
		return q.wrap(fmt.Sprintf("put meta %q", key), err)
	}
	return nil
}

// GetMeta returns a copy of a value stored with PutMeta; nil, nil when absent.
func (q *Queue) GetMeta(key string) ([]byte, error) {
	if key == "" {
		return nil, errors.New("queue: get meta: empty key")
	}
	var out []byte
	err := q.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get([]byte(key)); v != nil {
			var err error
			out, err = q.seal.open(v, []byte(key))
			if err == nil && out == nil {
				out = []byte{} // present but empty, unlike absent
			}
			return err
		}
		return nil
	})
	if err != nil {
		return nil, q.wrap(fmt.Sprintf("get meta %q", key), err)
	}
	return out, nil
}
