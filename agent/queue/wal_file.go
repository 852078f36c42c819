package queue

import (
	"errors"
	"io"
	"os"
)

// walFile is what the write-ahead log does with its file: read and write
// at offsets, and make what was written durable. Production uses osWAL;
// the power-loss tests (powerloss_test.go) put a simulated disk behind it
// that keeps, at a simulated power loss, only what Datasync made durable,
// which the page cache of a real file would hide from any test. One
// interface call per group commit; the group's fdatasync costs thousands
// of times more.
type walFile interface {
	io.ReaderAt
	io.WriterAt
	// Datasync makes what was written durable: fdatasync.
	Datasync() error
	Close() error
}

// walDisk opens the write-ahead log's file: osDisk in production.
type walDisk interface {
	// ReadFile returns the whole file; an error wrapping os.ErrNotExist
	// when there is none.
	ReadFile(path string) ([]byte, error)
	// Create makes a file of size zero bytes at path, durably, replacing
	// one there.
	Create(path string, size int64) error
	Open(path string) (walFile, error)
}

// osDisk is the real file system.
type osDisk struct{}

func (osDisk) ReadFile(path string) ([]byte, error) { return os.ReadFile(path) }
func (osDisk) Create(path string, size int64) error { return createZeroed(path, size) }

func (osDisk) Open(path string) (walFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osWAL{f}, nil
}

// osWAL is a write-ahead log file on disk.
type osWAL struct{ *os.File }

func (f osWAL) Datasync() error { return datasync(f.File) }

// failpoint is a place where a crash loses the most if the code around it
// is wrong: the power-loss tests stop the queue there (Options.failAt) and
// check that every acknowledged event survives, once. In production
// failAt is nil and a failpoint costs a nil check.
type failpoint uint8

const (
	// fpLogWritten: a group is written to the log, not yet fdatasynced;
	// its Appends are not answered.
	fpLogWritten failpoint = iota + 1
	// fpLogSynced: the group is fdatasynced, its Appends not yet answered.
	fpLogSynced
	// fpSealing: inside the transaction moving events into a segment,
	// before it commits.
	fpSealing
	// fpSealed: the segment is committed; the log still holds the events
	// it took, and the queue has not yet noted them as consumed.
	fpSealed
	// fpDrained: the log's records are committed to the pending bucket;
	// the log has not started again.
	fpDrained
	// fpAcking: the aggregator acknowledged the segment; inside the
	// transaction deleting it, before it commits.
	fpAcking
)

// errFailpoint is what failAt returns by convention when it stops the
// queue at a failpoint: the operation fails as a crash would end it.
var errFailpoint = errors.New("stopped at a failpoint")

// fail runs the failpoint hook at p; nil when there is none.
func (q *Queue) fail(p failpoint) error {
	if q.failAt == nil {
		return nil
	}
	return q.failAt(p)
}
