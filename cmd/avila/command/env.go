package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgconn"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
)

// databaseURLFlag declares --database-url: AVILA_DATABASE_URL, then
// DATABASE_URL.
func (c *cli) databaseURLFlag(fs *shared.FlagSet, help string) *string {
	url := fs.String("database-url", "", help)
	fs.SetEnv("database-url", "AVILA_DATABASE_URL", "DATABASE_URL")
	return url
}

// logFlags declares --log-level and --log-format and returns the function
// building the logger once flags are parsed. Logs go to stderr.
func (c *cli) logFlags(fs *shared.FlagSet, defLevel string) func() (*slog.Logger, error) {
	level := fs.String("log-level", defLevel, "log level on stderr: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format on stderr: text or json")
	return func() (*slog.Logger, error) { return shared.NewLogger(c.stderr, *format, *level) }
}

// storeFlags declares --database-url and the log flags of a verb that works
// on the database, and returns the function that, once flags are parsed,
// builds the logger and connects. The caller closes the store.
func (c *cli) storeFlags(fs *shared.FlagSet, help, defLevel string) func(context.Context) (*postgres.Store, *slog.Logger, error) {
	dbURL := c.databaseURLFlag(fs, help)
	logger := c.logFlags(fs, defLevel)
	return func(ctx context.Context) (*postgres.Store, *slog.Logger, error) {
		log, err := logger()
		if err != nil {
			return nil, nil, err
		}
		store, err := openStore(ctx, *dbURL, log)
		if err != nil {
			return nil, nil, err
		}
		return store, log, nil
	}
}

// openStore connects to the database an admin verb works on.
func openStore(ctx context.Context, databaseURL string, log *slog.Logger) (*postgres.Store, error) {
	if databaseURL == "" {
		return nil, errors.New("no database: set --database-url or DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/avila?sslmode=disable)")
	}
	return postgres.Open(ctx, databaseURL, log)
}

// explain adds the fix to errors a person can fix: a database whose schema
// was never created.
func explain(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("%w (the database has no Avila schema yet: run avila migrate)", err)
	}
	return err
}
