package command

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

func deadLettersListCommand() command {
	return command{
		name: "dead-letters list",
		summary: "List events the aggregator refused into dead_letters, with the rule each broke. Agents apply the\n" +
			"same rules before they answer, so any dead letter is a bug; 'avila dead-letters replay' stores them once fixed.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			open := c.storeFlags(fs, "PostgreSQL URL", "warn")
			sel := deadLetterFlags(fs, 100)
			return func(ctx context.Context) error {
				if err := sel.parse(time.Now()); err != nil {
					return err
				}
				store, _, err := open(ctx)
				if err != nil {
					return err
				}
				defer store.Close()
				rows, err := listDeadLetters(ctx, store, sel)
				if err != nil {
					return explain(err)
				}
				if sel.asJSON {
					if rows == nil {
						rows = []deadLetterView{}
					}
					return c.printJSON(rows)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tRECEIVED\tAGENT\tSEQ\tPROPERTY\tEVENT\tREASON")
				for _, r := range rows {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%s\t%s\n", r.ID, r.ReceivedAt.UTC().Format(timeLayout), r.AgentID, r.Seq,
						r.Site, dash(printable(r.Name)), r.Reason)
				}
				return tw.Flush()
			}
		},
	}
}

// printJSON writes v as indented JSON on stdout.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// deadLetterSelection is the flags that select dead letters, shared by
// list and replay.
type deadLetterSelection struct {
	property, agent, since string
	limit                  int
	asJSON                 bool

	filter postgres.DeadLetterFilter
	site   uint32
}

func deadLetterFlags(fs *shared.FlagSet, defLimit int) *deadLetterSelection {
	s := &deadLetterSelection{}
	fs.StringVar(&s.property, "property", "", "only events of this property id")
	fs.StringVar(&s.agent, "agent", "", "only dead letters of batches from this agent id, as listed")
	fs.StringVar(&s.since, "since", "", "only dead letters received since: a duration back from now (24h, 90m) or a time (2026-12-01, RFC 3339)")
	fs.IntVar(&s.limit, "limit", defLimit, "at most this many dead letters, oldest first; 0 for all")
	fs.BoolVar(&s.asJSON, "json", false, "print JSON instead of a table")
	return s
}

// parse checks the flags' values into filter and site.
func (s *deadLetterSelection) parse(now time.Time) error {
	site, err := optionalProperty(s.property)
	if err != nil {
		return err
	}
	s.site = site
	if s.limit < 0 {
		return usagef("--limit %d: want a number of dead letters, 0 for all", s.limit)
	}
	s.filter = postgres.DeadLetterFilter{AgentID: s.agent, Limit: s.limit}
	if s.since != "" {
		t, err := parseSince(s.since, now)
		if err != nil {
			return err
		}
		s.filter.Since = t
	}
	return nil
}

// parseSince reads a duration back from now or a date or RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, usagef("--since %q: want a duration such as 24h, a date such as 2026-12-01, or an RFC 3339 time", v)
}

// deadLetterView is one dead letter as list shows it.
type deadLetterView struct {
	ID         int64     `json:"id"`
	ReceivedAt time.Time `json:"received"`
	AgentID    string    `json:"agent"`
	Seq        uint64    `json:"seq"`
	Index      int       `json:"index"`
	Site       uint32    `json:"property"`
	Name       string    `json:"event"`
	Reason     string    `json:"reason"`
}

// listDeadLetters reads dead letters, filtered by property after decoding
// each event (the property is inside it), up to the selection's limit.
func listDeadLetters(ctx context.Context, store *postgres.Store, sel *deadLetterSelection) ([]deadLetterView, error) {
	const page = 500
	f := sel.filter
	var out []deadLetterView
	for {
		f.Limit = page
		rows, err := store.DeadLetters(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			f.AfterID = r.ID
			var e protocol.Event
			_ = protocol.DecodeEvent(r.Event, &e) // an undecodable one shows with property 0
			if sel.site != 0 && e.Site != sel.site {
				continue
			}
			out = append(out, deadLetterView{ID: r.ID, ReceivedAt: r.ReceivedAt, AgentID: r.AgentID, Seq: r.Seq, Index: r.Index,
				Site: e.Site, Name: e.Name, Reason: r.Reason})
			if sel.filter.Limit > 0 && len(out) == sel.filter.Limit {
				return out, nil
			}
		}
		if len(rows) < page {
			return out, nil
		}
	}
}

// printable makes a value from an event safe for a terminal table: control
// characters and invalid UTF-8 quoted.
func printable(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s && !strings.ContainsAny(s, "\t ") {
		return s
	}
	return q
}
