package command

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/avila-analytics/avila/aggregator/node"
	shared "github.com/avila-analytics/avila/internal/cli"
)

// statusTimeout bounds the status request.
const statusTimeout = 10 * time.Second

func clusterStatusCommand() command {
	return command{
		name: "cluster status",
		summary: "Show the aggregator cluster as one node sees it: members, their state (alive; suspect: not\n" +
			"answering this node's probes; dead, for a minute after gossip declared it; draining),\n" +
			"load (batches per second), the agents each heard from in the last minute, each one's build version\n" +
			"and the newest batch version it reads (BATCHES; during an upgrade, a row of a newer version\n" +
			"is left to the nodes that read it).",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			api := fs.String("operator", "http://127.0.0.1:8081", "any aggregator's operator address (its --listen-operator), where /v1/cluster/status is served")
			asJSON := fs.Bool("json", false, "print the status as JSON, as GET /v1/cluster/status answers it")
			return func(ctx context.Context) error {
				st, raw, err := fetchStatus(ctx, *api)
				if err != nil {
					return err
				}
				if *asJSON {
					_, err := c.stdout.Write(raw)
					return err
				}
				printStatus(c.stdout, st)
				return nil
			}
		},
	}
}

func fetchStatus(ctx context.Context, api string) (node.ClusterStatus, []byte, error) {
	var st node.ClusterStatus
	if !strings.HasPrefix(api, "http://") && !strings.HasPrefix(api, "https://") {
		api = "http://" + api
	}
	url := strings.TrimSuffix(api, "/") + "/v1/cluster/status"
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, nil, usagef("--operator %q: %v", api, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, nil, fmt.Errorf("GET %s: %w (is the aggregator running? check --operator: its --listen-operator)", url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return st, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return st, nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(raw)))
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, nil, fmt.Errorf("GET %s: not a cluster status (an older aggregator?): %w", url, err)
	}
	return st, raw, nil
}

func printStatus(w io.Writer, st node.ClusterStatus) {
	mode := "single node"
	if st.Clustered {
		n := 0
		for _, m := range st.Members {
			if m.State != "dead" {
				n++
			}
		}
		mode = fmt.Sprintf("cluster of %d", n)
	}
	fmt.Fprintf(w, "node %s: %s, %s\n", st.Node, st.State, mode)
	fmt.Fprintf(w, "reports: %s\n", stagedLine(st.Staged, time.Now()))
	if st.Staged.QuarantinedRows > 0 {
		fmt.Fprintf(w, "quarantine: %d staged rows (%d events) no derivation could take, in no report: 'avila staged list'\n",
			st.Staged.QuarantinedRows, st.Staged.QuarantinedEvents)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tQUIC\tAPI\tLOAD\tAGENTS\tVERSION\tBATCHES")
	for _, m := range st.Members {
		name, state := m.Name, m.State
		if m.Self {
			name += " *"
		}
		switch {
		case m.Draining && (state == "" || state == "alive"):
			state = "draining"
		case m.Draining:
			state += ",draining"
		}
		batches := "" // a node of a build that does not tell it
		if m.Protocol > 0 {
			batches = fmt.Sprintf("v%d", m.Protocol)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f/s\t%d\t%s\t%s\n", name, state, m.QUICAddr, m.APIAddr, m.Load, m.Agents, m.Version, batches)
	}
	_ = tw.Flush()
}

// stagedLine tells how far reports lag ingest, as the node last looked.
func stagedLine(st node.StagedStatus, now time.Time) string {
	if st.LookedAt.IsZero() {
		return "backlog not looked at yet"
	}
	looked := fmt.Sprintf("looked %s ago", now.Sub(st.LookedAt).Round(100*time.Millisecond))
	if st.Events == 0 {
		return "up to date, nothing staged (" + looked + ")"
	}
	sites := "site"
	if st.Sites != 1 {
		sites += "s"
	}
	oldest := time.Duration(st.OldestSeconds * float64(time.Second)).Round(100 * time.Millisecond)
	return fmt.Sprintf("%d events staged on %d %s, not in reports yet; the oldest staged %s ago (%s)", st.Events, st.Sites, sites, oldest, looked)
}
