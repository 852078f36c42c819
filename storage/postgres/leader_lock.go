package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// leaderCloseTimeout bounds closing the leader connection.
const leaderCloseTimeout = 5 * time.Second

// keepalive makes PostgreSQL notice within about 25 s that the leader's
// host vanished without closing its connection (power loss, network cut),
// instead of the kernel's default of hours, and so free the leader lock.
// Ignored on Unix-socket connections.
const keepalive = "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3"

// LeaderLock makes a job a singleton across the cluster with PostgreSQL
// advisory locks (aggregator/jobs' Lock). Leadership is
// a session lock on a connection taken out of the pool for as long as the
// node leads: when the node dies its connection closes and PostgreSQL frees
// the lock, so another node's next Lead takes it. Each run also holds a
// transaction lock, so a node that lost leadership in the middle of a run,
// or one running the jobs at start-up, never overlaps another's run.
//
// Lead and Release are called from one goroutine.
type LeaderLock struct {
	pool              *pgxpool.Pool
	leaderKey, runKey int64
	conn              *pgx.Conn // holds leaderKey while not nil
}

// LeaderLock returns the lock whose leadership is the session advisory lock
// leaderKey and whose runs hold the transaction advisory lock runKey. Keys
// share PostgreSQL's one bigint key space with every user of the database.
func (s *Store) LeaderLock(leaderKey, runKey int64) *LeaderLock {
	return &LeaderLock{pool: s.pool, leaderKey: leaderKey, runKey: runKey}
}

// Lead takes the leader lock if it is free, or confirms this node still
// holds it; true means this node leads.
func (l *LeaderLock) Lead(ctx context.Context) (bool, error) {
	if l.conn != nil {
		// A session that still answers still holds its lock; one that
		// does not has lost it (a restarted or unreachable database, a
		// terminated backend).
		if _, err := l.conn.Exec(ctx, "SELECT 1"); err == nil {
			return true, nil
		} else if ctx.Err() != nil {
			return false, ctx.Err()
		}
		l.closeConn()
	}
	pc, err := l.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("postgres: leader lock: %w", err)
	}
	// The connection leaves the pool: it lives exactly as long as the
	// leadership it carries.
	conn := pc.Hijack()
	var got bool
	if _, err = conn.Exec(ctx, keepalive); err == nil {
		err = conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", l.leaderKey).Scan(&got)
	}
	if err != nil || !got {
		_ = conn.Close(context.WithoutCancel(ctx))
		if err != nil {
			return false, fmt.Errorf("postgres: leader lock: %w", err)
		}
		return false, nil
	}
	l.conn = conn
	return true, nil
}

// Exclusive runs fn while holding the run lock, waiting (until ctx ends)
// for a run in progress on another node to finish.
func (l *LeaderLock) Exclusive(ctx context.Context, fn func(context.Context) error) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: run lock: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", l.runKey); err != nil {
		return fmt.Errorf("postgres: run lock: %w", err)
	}
	if err := fn(ctx); err != nil {
		return err
	}
	// Ending the transaction frees the lock; nothing was written in it.
	if err := tx.Commit(ctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("postgres: run lock: %w", err)
	}
	return nil
}

// Release gives the leader lock up, if held.
func (l *LeaderLock) Release(ctx context.Context) {
	if l.conn == nil {
		return
	}
	_, _ = l.conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", l.leaderKey)
	l.closeConn()
}

func (l *LeaderLock) closeConn() {
	// A dead peer must not hold the caller: closing only says goodbye.
	ctx, cancel := context.WithTimeout(context.Background(), leaderCloseTimeout)
	defer cancel()
	_ = l.conn.Close(ctx)
	l.conn = nil
}
