package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/avila-analytics/avila/aggregator/governance"
	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
	"github.com/avila-analytics/avila/storage/redis"
)

// subjectFlags are the flags naming a data subject.
type subjectFlags struct {
	property, userID, clientID *string
}

func declareSubjectFlags(fs *shared.FlagSet) subjectFlags {
	return subjectFlags{
		property: fs.String("property", "", "property id of the site (see 'avila site list'); required"),
		userID:   fs.String("user-id", "", "the subject's user_id, as the site sends it (gtag user_id, Measurement Protocol user_id)"),
		clientID: fs.String("client-id", "", "the subject's client id, or the whole value of its _ga cookie (GA1.1.<random>.<timestamp>)"),
	}
}

// resolve checks the flags and computes the subject's key.
func (f subjectFlags) resolve(ctx context.Context, store *postgres.Store) (governance.Subject, error) {
	ids, err := propertyIDs([]string{*f.property})
	if *f.property == "" || err != nil {
		return governance.Subject{}, usagef("--property is required: a property id (see 'avila site list')")
	}
	id, value := governance.ClientID, *f.clientID
	switch {
	case *f.userID != "" && *f.clientID != "":
		return governance.Subject{}, usagef("give --user-id or --client-id, not both")
	case *f.userID != "":
		id, value = governance.UserID, *f.userID
	case *f.clientID == "":
		return governance.Subject{}, usagef("give --user-id or --client-id: the subject's user_id, or the client id of its _ga cookie")
	}
	if store == nil {
		return governance.Subject{}, nil
	}
	sub, err := governance.Resolve(ctx, store, ids[0], id, value)
	switch {
	case errors.Is(err, governance.ErrBadSubject):
		return sub, usagef("%v", err)
	case errors.Is(err, postgres.ErrNotFound):
		return sub, fmt.Errorf("%w (see 'avila site list' for the property ids)", err)
	case errors.Is(err, postgres.ErrNoIdentitySecret):
		return sub, fmt.Errorf("%w\n%s", err, governance.CookielessNote)
	}
	return sub, err
}

// readPassphrase reads a passphrase file: its first line.
func readPassphrase(path string) ([]byte, error) {
	if path == "" {
		return nil, usagef("--passphrase-file is required: a file whose first line is the passphrase (at least %d bytes)", governance.MinPassphrase)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read --passphrase-file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimRight(line, "\r")
	if len(line) < governance.MinPassphrase {
		return nil, usagef("--passphrase-file %s: the passphrase has %d bytes, want at least %d", path, len(line), governance.MinPassphrase)
	}
	return []byte(line), nil
}

func gdprExportCommand() command {
	return command{
		name: "gdpr export",
		summary: "Export everything stored of one data subject on one site: events (stored and packed), sessions and\n" +
			"their dimension values, parameters and user properties, as JSON or CSV (right of access, portability).\n\n" +
			"The subject is named by the site's user_id or by the client id of its _ga cookie; only events recorded\n" +
			"with analytics consent carry a key that can be tied to either (cookieless visitors cannot be identified).\n" +
			"With --encrypt the file is AES-256-GCM under a key derived from the passphrase with Argon2id; read it\n" +
			"with 'avila gdpr decrypt'. The export is recorded in the audit trail.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			sf := declareSubjectFlags(fs)
			out := fs.String("out", "", "file to write; stdout when empty (not with --encrypt)")
			format := fs.String("format", "json", "json (one document: events, sessions, the note on cookieless visitors) or csv\n(one table: a row per event, then per session)")
			encrypt := fs.Bool("encrypt", false, "encrypt the file (AES-256-GCM, key from --passphrase-file with Argon2id)")
			passFile := fs.String("passphrase-file", "", "with --encrypt: file whose first line is the passphrase, at least 12 bytes")
			return func(ctx context.Context) error {
				if _, err := sf.resolve(ctx, nil); err != nil {
					return err
				}
				if *format != "json" && *format != "csv" {
					return usagef("--format %q: want json or csv", *format)
				}
				var pass []byte
				if *encrypt {
					if *out == "" {
						return usagef("--encrypt needs --out FILE (an encrypted file on a terminal helps nobody)")
					}
					var err error
					if pass, err = readPassphrase(*passFile); err != nil {
						return err
					}
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				sub, err := sf.resolve(ctx, store)
				if err != nil {
					return err
				}
				svc := &governance.Service{Store: store}
				e, err := svc.Export(ctx, sub, c.actor())
				if err != nil {
					return explain(err)
				}
				var buf bytes.Buffer
				if *format == "csv" {
					err = e.WriteCSV(&buf)
				} else {
					err = e.WriteJSON(&buf)
				}
				if err != nil {
					return err
				}
				data := buf.Bytes()
				if *encrypt {
					if data, err = governance.Encrypt(data, pass); err != nil {
						return err
					}
				}
				if *out == "" {
					_, err = c.stdout.Write(data)
					return err
				}
				if err := os.WriteFile(*out, data, 0o600); err != nil {
					return fmt.Errorf("write --out: %w", err)
				}
				fmt.Fprintf(c.stderr, "avila gdpr export: %d events, %d sessions written to %s\n", len(e.Events), len(e.Sessions), *out)
				return nil
			}
		},
	}
}

func gdprDecryptCommand() command {
	return command{
		name:    "gdpr decrypt",
		summary: "Decrypt a file written by 'avila gdpr export --encrypt' with its passphrase.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			in := fs.String("in", "", "the encrypted file; required")
			out := fs.String("out", "", "file to write the export to; stdout when empty")
			passFile := fs.String("passphrase-file", "", "file whose first line is the passphrase; required")
			return func(ctx context.Context) error {
				if *in == "" {
					return usagef("--in is required: the encrypted export")
				}
				pass, err := readPassphrase(*passFile)
				if err != nil {
					return err
				}
				sealed, err := os.ReadFile(*in)
				if err != nil {
					return fmt.Errorf("read --in: %w", err)
				}
				plain, err := governance.Decrypt(sealed, pass)
				if err != nil {
					return err
				}
				if *out == "" {
					_, err = c.stdout.Write(plain)
					return err
				}
				return os.WriteFile(*out, plain, 0o600)
			}
		},
	}
}

func gdprEraseCommand() command {
	return command{
		name: "gdpr erase",
		summary: "Erase one data subject from one site: its events (stored and packed), sessions and their parameters\n" +
			"and user properties; the rollup cells they touched are corrected (their counters less the subject's,\n" +
			"their user sketches as if built without it), so reports\n" +
			"equal reports over data that never held the subject. Events of the subject that arrive in the next\n" +
			"72 hours (still queued at agents, or dated back) are dropped. With --redis-url the subject also leaves\n" +
			"the realtime counters and cached reports are made stale (else they expire with the next batch).\n" +
			"One transaction; recorded in the audit trail.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			sf := declareSubjectFlags(fs)
			redisURL := fs.String("redis-url", "", "the aggregators' Redis, to clear the subject's realtime counts and cached reports")
			fs.SetEnv("redis-url", "AVILA_REDIS_URL", "REDIS_URL")
			prefix := fs.String("redis-prefix", "", "the aggregators' --redis-prefix")
			return func(ctx context.Context) error {
				if _, err := sf.resolve(ctx, nil); err != nil {
					return err
				}
				store, log, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				sub, err := sf.resolve(ctx, store)
				if err != nil {
					return err
				}
				svc := &governance.Service{Store: store, Log: log}
				if *redisURL != "" {
					rdb, err := redis.New(redis.Options{URL: *redisURL})
					if err != nil {
						return err
					}
					defer rdb.Close()
					svc.Cache = redis.NewCache(rdb, redis.CacheOptions{Prefix: *prefix, Logger: log})
					svc.Realtime = redis.NewRedisRealtime(rdb, redis.RealtimeOptions{Prefix: *prefix, Logger: log})
				}
				start := time.Now()
				out, err := svc.Erase(ctx, sub, c.actor())
				if err != nil {
					return explain(err)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintf(tw, "property\t%d\n", sub.Site)
				fmt.Fprintf(tw, "events\t%d\n", out.Events)
				fmt.Fprintf(tw, "sessions\t%d\n", out.Sessions)
				fmt.Fprintf(tw, "rollup_days_corrected\t%d\n", len(out.RollupDays))
				fmt.Fprintf(tw, "session_rollup_days_corrected\t%d\n", len(out.SessionDays))
				fmt.Fprintf(tw, "late_events_dropped_until\t%s\n", out.Until.Format(timeLayout))
				if out.Quarantined > 0 || out.Unsearched > 0 {
					fmt.Fprintf(tw, "quarantined_events\t%d\n", out.Quarantined)
					fmt.Fprintf(tw, "quarantined_rows_unsearched\t%d\n", out.Unsearched)
				}
				fmt.Fprintf(tw, "audit_row\t%d\n", out.Audit.ID)
				fmt.Fprintf(tw, "took\t%s\n", time.Since(start).Round(time.Millisecond))
				if err := tw.Flush(); err != nil {
					return err
				}
				if out.Unsearched > 0 {
					fmt.Fprintf(c.stderr, "avila gdpr erase: %d quarantined staged rows do not decode and could not be searched for this %s's events "+
						"('avila staged list'); they go with the property's event retention, and a requeue applies this erasure\n", out.Unsearched, sub.Identity)
				}
				if out.Events == 0 && out.Quarantined == 0 {
					fmt.Fprintf(c.stderr, "avila gdpr erase: nothing stored under this %s. %s\n", sub.Identity, governance.CookielessNote)
				}
				return nil
			}
		},
	}
}
