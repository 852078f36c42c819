package write

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

// testStore is a migrated store with a write stage whose WriteBatch
// derives the batch before it returns, so a test reads every table right
// after it.
type testStore struct {
	*postgres.Store
	url string // its database, for a second node
	// Pool is the test's own pool on the database, for fixtures and
	// checks in SQL (the store's pool is its own).
	Pool *pgxpool.Pool
	w    *Writer
	// writer, when set, picks the write stage of the i-th WriteBatch call
	// (else w), as batches reach different nodes.
	writer func(i int) *Writer
	other  *Writer      // a second node's write stage, when a test makes one
	calls  atomic.Int64 // WriteBatch calls; tests call it from several goroutines
}

// writeResult is what testStore.WriteBatch did.
type writeResult struct {
	Stored, DeadLetters int
	Duplicate           bool
}

// textRows runs query (one text column) on s's database and returns its
// rows.
func textRows(t testing.TB, s *testStore, query string, args ...any) []string {
	t.Helper()
	rows, err := s.Pool.Query(context.Background(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func newStore(t testing.TB) *testStore {
	t.Helper()
	ctx := context.Background()
	url := testenv.PostgresURL(t)
	s, err := postgres.Open(ctx, url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return &testStore{Store: s, url: url, Pool: testenv.Pool(t, url), w: New(Config{}, s)}
}

// WriteBatch stages the batch and derives everything staged.
func (s *testStore) WriteBatch(ctx context.Context, agent string, seq uint64, events []protocol.Event, dead []postgres.DeadLetter) (writeResult, error) {
	w := s.w
	call := int(s.calls.Add(1)) - 1
	if s.writer != nil {
		w = s.writer(call)
	}
	res, err := w.WriteBatch(ctx, agent, seq, events, dead)
	if err != nil {
		return writeResult{}, err
	}
	if err := w.Flush(ctx); err != nil {
		return writeResult{}, err
	}
	return writeResult{Stored: res.Staged, DeadLetters: res.DeadLetters, Duplicate: res.Duplicate}, nil
}
