package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Defaults of ReplicaOptions.
const (
	DefaultReplicaMaxLag    = 10 * time.Second
	DefaultReplicaPollEvery = 100 * time.Millisecond
)

// ReplicaOptions configure the read replicas reports may read from.
type ReplicaOptions struct {
	// URLs name streaming standbys of the primary (hot_standby on).
	URLs []string
	// MaxLag bounds how far behind the primary a replica may be and still
	// serve a report: its last replayed commit at most this old. A report
	// it serves while behind is not cached. Default DefaultReplicaMaxLag.
	MaxLag time.Duration
	// PollEvery is how often each replica's replay position is read.
	// Default DefaultReplicaPollEvery.
	PollEvery time.Duration
	Tracer    pgx.QueryTracer // nil: none
	Logger    *slog.Logger    // nil: discard
	// Primary is the pool reports use when they read the primary (the
	// report pool, see OpenReportPool); nil: the store's own pool.
	Primary *pgxpool.Pool
	// Pool sizes and bounds each replica's pool like the report pool
	// (connections, statement timeout); zero fields: pgx's defaults.
	Pool PoolOptions
}

// Replicas route reports between the primary and read replicas. A report
// of a site at a data version reads a replica that has replayed the
// primary's write-ahead log at least as far as it reached when the
// version was first seen (so it holds every commit the version covers);
// else, a replica less than MaxLag behind, whose answer must not be cached
// under the version; else the primary. Safe for concurrent use.
type Replicas struct {
	primary *pgxpool.Pool
	reps    []*replica
	opts    ReplicaOptions
	log     *slog.Logger
	next    atomic.Uint64 // round robin over caught-up replicas

	mu   sync.Mutex
	seen map[uint32]versionLSN // per site

	reads [numReadTargets]atomic.Uint64
}

// versionLSN is a site's data version and the primary's WAL insert
// position read when it was first seen. The version changes only after
// the commits it covers, so every one of them lies before that position.
type versionLSN struct {
	version string
	lsn     uint64
}

// Read targets, as counted by Reads.
const (
	ReadPrimary       = iota // the primary: no replica, or none near enough
	ReadReplica              // a replica holding everything the version covers
	ReadReplicaBehind        // a replica behind, within MaxLag; not cached
	numReadTargets
)

// ReadTargetNames are the metric label values of the read targets.
var ReadTargetNames = [numReadTargets]string{"primary", "replica", "replica_behind"}

// replica is one standby and its last known replay position.
type replica struct {
	name string // host:port, for logs and errors
	pool *pgxpool.Pool

	mu        sync.Mutex
	lsn       uint64    // pg_last_wal_replay_lsn()
	replayed  time.Time // pg_last_xact_replay_timestamp(): zero when unknown
	sampledAt time.Time // when lsn and replayed were read; zero: never
	err       error     // the last poll's failure, nil when it succeeded
}

// ReplicaState is what Replicas last learnt of one replica.
type ReplicaState struct {
	Name string
	Up   bool          // the last poll succeeded and found a standby
	Lag  time.Duration // age of its last replayed commit (meaningful when Up)
}

// OpenReplicas connects to opts.URLs, checks that each is a standby in
// recovery, and reads their positions once. Run keeps the positions
// current; Close closes the replicas' pools (not the primary's).
func (s *Store) OpenReplicas(ctx context.Context, opts ReplicaOptions) (*Replicas, error) {
	if opts.MaxLag <= 0 {
		opts.MaxLag = DefaultReplicaMaxLag
	}
	if opts.PollEvery <= 0 {
		opts.PollEvery = DefaultReplicaPollEvery
	}
	r := &Replicas{primary: s.pool, opts: opts, log: opts.Logger, seen: map[uint32]versionLSN{}}
	if opts.Primary != nil {
		r.primary = opts.Primary
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, u := range opts.URLs {
		pool, err := connectWith(ctx, u, opts.Tracer, opts.Pool)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("read replica: %w", err)
		}
		cfg := pool.Config().ConnConfig
		rep := &replica{name: net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), pool: pool}
		r.reps = append(r.reps, rep)
		var standby bool
		if err := pool.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&standby); err != nil {
			r.Close()
			return nil, fmt.Errorf("read replica %s: %w", rep.name, err)
		}
		if !standby {
			r.Close()
			return nil, fmt.Errorf("read replica %s is not a standby (pg_is_in_recovery() is false): name streaming replicas of the primary", rep.name)
		}
		r.poll(ctx, rep)
	}
	return r, nil
}

// Close closes the replicas' pools.
func (r *Replicas) Close() {
	for _, rep := range r.reps {
		rep.pool.Close()
	}
}

// Run reads every replica's replay position each PollEvery until ctx ends.
func (r *Replicas) Run(ctx context.Context) {
	if len(r.reps) == 0 {
		return
	}
	t := time.NewTicker(r.opts.PollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, rep := range r.reps {
			r.poll(ctx, rep)
		}
	}
}

// poll reads rep's replay position.
func (r *Replicas) poll(ctx context.Context, rep *replica) {
	pctx, cancel := context.WithTimeout(ctx, max(r.opts.PollEvery*5, time.Second))
	defer cancel()
	lsn, replayed, err := replayPosition(pctx, rep.pool)
	rep.mu.Lock()
	defer rep.mu.Unlock()
	wasUp := rep.err == nil && !rep.sampledAt.IsZero()
	if err != nil {
		if wasUp && ctx.Err() == nil {
			r.log.Warn("read replica unreachable; reports read elsewhere", "replica", rep.name, "err", err)
		}
		rep.err = err
		return
	}
	if !wasUp && !rep.sampledAt.IsZero() {
		r.log.Info("read replica back", "replica", rep.name)
	}
	rep.lsn, rep.replayed, rep.sampledAt, rep.err = lsn, replayed, time.Now(), nil
}

var errNotStandby = errors.New("not in recovery: promoted, or not a standby")

// replayPosition reads how far a standby has replayed the primary's WAL.
func replayPosition(ctx context.Context, pool *pgxpool.Pool) (uint64, time.Time, error) {
	var lsn *string
	var replayed *time.Time
	var standby bool
	err := pool.QueryRow(ctx,
		"SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_last_xact_replay_timestamp()").Scan(&standby, &lsn, &replayed)
	if err != nil {
		return 0, time.Time{}, err
	}
	if !standby || lsn == nil {
		return 0, time.Time{}, errNotStandby
	}
	n, err := parseLSN(*lsn)
	if err != nil {
		return 0, time.Time{}, err
	}
	var at time.Time
	if replayed != nil {
		at = *replayed
	}
	return n, at, nil
}

// parseLSN reads PostgreSQL's text form of a WAL position, "16/B374D848".
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("postgres: WAL position %q: want HI/LO in hexadecimal", s)
	}
	return h<<32 | l, nil
}

// needed is the WAL position a database must have replayed to hold every
// commit of site's data version: the primary's insert position when the
// version was first seen (now, for an unknown version "").
func (r *Replicas) needed(ctx context.Context, site uint32, version string) (uint64, error) {
	if version != "" {
		r.mu.Lock()
		v, ok := r.seen[site]
		r.mu.Unlock()
		if ok && v.version == version {
			return v.lsn, nil
		}
	}
	var text string
	if err := r.primary.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&text); err != nil {
		return 0, fmt.Errorf("postgres: primary WAL position: %w", err)
	}
	lsn, err := parseLSN(text)
	if err != nil {
		return 0, err
	}
	if version != "" {
		r.mu.Lock()
		r.seen[site] = versionLSN{version: version, lsn: lsn}
		r.mu.Unlock()
	}
	return lsn, nil
}

// ReadFrom picks the database a report of site at data version reads
// (version "": unknown) and says whether it holds every commit the version
// covers, so that its answer may be cached under it. It fits
// query.Options.ReadFrom.
func (r *Replicas) ReadFrom(ctx context.Context, site uint32, version string) (*pgxpool.Pool, bool) {
	if len(r.reps) == 0 {
		r.reads[ReadPrimary].Add(1)
		return r.primary, true
	}
	need, err := r.needed(ctx, site, version)
	if err != nil {
		// The primary will fail the report the same way, with its error.
		r.reads[ReadPrimary].Add(1)
		return r.primary, true
	}
	now := time.Now()
	stale := max(r.opts.PollEvery*5, time.Second) // a sample older than this is not believed
	start := int(r.next.Add(1))
	var behind *replica
	for i := range r.reps {
		rep := r.reps[(start+i)%len(r.reps)]
		rep.mu.Lock()
		lsn, replayed, sampled, up := rep.lsn, rep.replayed, rep.sampledAt, rep.err == nil && !rep.sampledAt.IsZero()
		rep.mu.Unlock()
		if !up || now.Sub(sampled) > stale {
			continue
		}
		if lsn < need {
			// The sample may predate the version: ask the replica itself.
			if l, at, err := replayPosition(ctx, rep.pool); err == nil {
				lsn, replayed = l, at
			}
		}
		if lsn >= need {
			r.reads[ReadReplica].Add(1)
			return rep.pool, true
		}
		if behind == nil && !replayed.IsZero() && now.Sub(replayed) <= r.opts.MaxLag {
			behind = rep
		}
	}
	if behind != nil {
		r.reads[ReadReplicaBehind].Add(1)
		return behind.pool, false
	}
	r.reads[ReadPrimary].Add(1)
	return r.primary, true
}

// Reads returns how many reports read each target (ReadPrimary,
// ReadReplica, ReadReplicaBehind).
func (r *Replicas) Reads() [numReadTargets]uint64 {
	var out [numReadTargets]uint64
	for i := range out {
		out[i] = r.reads[i].Load()
	}
	return out
}

// States returns what is known of each replica, in the order of URLs.
func (r *Replicas) States() []ReplicaState {
	out := make([]ReplicaState, len(r.reps))
	now := time.Now()
	for i, rep := range r.reps {
		rep.mu.Lock()
		out[i] = ReplicaState{Name: rep.name, Up: rep.err == nil && !rep.sampledAt.IsZero()}
		if !rep.replayed.IsZero() {
			out[i].Lag = now.Sub(rep.replayed)
		}
		rep.mu.Unlock()
	}
	return out
}
