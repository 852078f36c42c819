package jobs

import (
	"context"

	"github.com/avila-analytics/avila/storage/postgres"
)

// Lock makes the jobs singletons across the cluster.
type Lock interface {
	// Lead takes the leader lock if it is free, or confirms this node still
	// holds it; true means this node runs the periodic jobs.
	Lead(ctx context.Context) (bool, error)
	// Exclusive runs fn while holding the run lock, waiting (until ctx
	// ends) for a run in progress on another node to finish.
	Exclusive(ctx context.Context, fn func(context.Context) error) error
	// Release gives the leader lock up, if held.
	Release(ctx context.Context)
}

// Advisory lock keys, in PostgreSQL's one bigint key space shared by every
// user of the database: 'avil' 'a' followed by a number.
const (
	leaderKey int64 = 0x6176696c61_0001
	runKey    int64 = 0x6176696c61_0002
)

var _ Lock = (*postgres.LeaderLock)(nil)

// NewAdvisoryLock returns the jobs' lock on store's database: leadership is
// a PostgreSQL session advisory lock, each run a transaction one (see
// postgres.LeaderLock).
func NewAdvisoryLock(store *postgres.Store) *postgres.LeaderLock {
	return store.LeaderLock(leaderKey, runKey)
}
