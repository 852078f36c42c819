//go:build !linux

package queue

// releaseMapped does nothing where madvise is not used.
func (q *Queue) releaseMapped() error { return nil }
