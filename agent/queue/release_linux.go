package queue

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// releaseMapped drops the queue file's pages from this process's memory
// map (madvise MADV_DONTNEED). bbolt reads through a read-only shared map
// of the whole file, so every page a seal or a send read stays resident,
// and counted in the agent's RSS, long after its events were shipped and
// deleted: under a backlog, RSS grows with the file. The pages stay in the
// page cache (the kernel reclaims them as it sees fit) and the map reads
// them back from the file on use. The read transaction keeps bbolt from
// remapping the file meanwhile.
func (q *Queue) releaseMapped() error {
	return q.db.View(func(tx *bolt.Tx) error {
		data, size := q.db.Info().Data, tx.Size()
		if data == 0 || size <= 0 {
			return nil
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, data, uintptr(size), unix.MADV_DONTNEED); errno != 0 {
			return fmt.Errorf("queue: release mapped pages: %w", errno)
		}
		return nil
	})
}
