package command

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"text/tabwriter"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/storage/postgres"
)

// actor names who runs an avila verb in the audit trail: the OS user.
func (c *cli) actor() string {
	for _, v := range []string{"AVILA_ACTOR", "USER", "LOGNAME"} {
		if u, ok := c.lookupEnv(v); ok && u != "" {
			return "cli:" + u
		}
	}
	return "cli:unknown"
}

// audit records an operator action done by this verb. The action is done
// already when it fails, and the error says so.
func (c *cli) audit(ctx context.Context, store *postgres.Store, action string, site uint32, detail map[string]any) error {
	if _, err := store.AppendAudit(ctx, postgres.AuditEntry{Actor: c.actor(), Action: action, Site: site, Detail: detail}); err != nil {
		return fmt.Errorf("%s done, but not recorded in the audit trail: %w", action, explain(err))
	}
	return nil
}

func auditListCommand() command {
	return command{
		name: "audit list",
		summary: "List the audit trail: every operator action (site, key, retention, export, erasure, rebuild,\n" +
			"migration) with who did it, oldest first, and the chain's head hash at the end.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			after := fs.Int64("after", 0, "list rows with an id above this")
			limit := fs.Int("limit", 1000, "list at most this many rows; 0 for all")
			return func(ctx context.Context) error {
				if *after < 0 || *limit < 0 {
					return usagef("--after and --limit must be >= 0")
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				rows, err := store.AuditRows(ctx, *after, *limit)
				if err != nil {
					return explain(err)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tAT\tACTOR\tACTION\tPROPERTY\tDETAIL\tHASH")
				for _, r := range rows {
					site := "-"
					if r.Site != 0 {
						site = strconv.FormatUint(uint64(r.Site), 10)
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.At.Format(timeLayout), r.Actor, r.Action, site, r.Detail,
						hex.EncodeToString(r.Hash)[:16])
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if len(rows) > 0 {
					last := rows[len(rows)-1]
					fmt.Fprintf(c.stdout, "head %d:%s\n", last.ID, hex.EncodeToString(last.Hash))
				}
				return nil
			}
		},
	}
}

func auditVerifyCommand() command {
	return command{
		name: "audit verify",
		summary: "Check the audit trail's hash chain: every row's hash matches its content and the row before.\n" +
			"Names the first row changed or removed and exits 1 then. Removing the newest rows leaves a valid\n" +
			"shorter chain: pass a head saved earlier (avila audit list prints it) with --head to catch that too.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			head := fs.String("head", "", "a head saved earlier, as 'avila audit list' prints it: ID:HASH (hex); the chain must still hold it")
			return func(ctx context.Context) error {
				var headID int64
				var headHash []byte
				if *head != "" {
					var hexHash string
					if _, err := fmt.Sscanf(*head, "%d:%s", &headID, &hexHash); err != nil || headID <= 0 {
						return usagef("--head %q: want ID:HASH, e.g. 42:9f86d0…", *head)
					}
					var err error
					if headHash, err = hex.DecodeString(hexHash); err != nil || len(headHash) != 32 {
						return usagef("--head %q: the hash must be 64 hex digits", *head)
					}
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				v, err := store.VerifyAudit(ctx)
				if err != nil {
					return explain(err)
				}
				if v.Break != nil {
					return fmt.Errorf("audit trail broken: %w; %d rows before it verified", v.Break, v.Rows)
				}
				if headID > 0 {
					rows, err := store.AuditRows(ctx, headID-1, 1)
					if err != nil {
						return explain(err)
					}
					if len(rows) == 0 || rows[0].ID != headID {
						return fmt.Errorf("audit trail broken: audit row %d removed (the saved head is gone; the chain has %d rows)", headID, v.Rows)
					}
					if hex.EncodeToString(rows[0].Hash) != hex.EncodeToString(headHash) {
						return fmt.Errorf("audit trail broken: audit row %d changed (its hash is not the saved head's)", headID)
					}
				}
				if v.Rows == 0 {
					fmt.Fprintln(c.stdout, "audit trail empty")
					return nil
				}
				fmt.Fprintf(c.stdout, "audit trail intact: %d rows, head %d:%s\n", v.Rows, v.Rows, hex.EncodeToString(v.Head))
				return nil
			}
		},
	}
}
