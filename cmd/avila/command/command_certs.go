package command

import (
	"context"
	"fmt"
	"strconv"
	"time"

	shared "github.com/avila-analytics/avila/internal/cli"
	"github.com/avila-analytics/avila/protocol"
)

// defaultCertsDir is where `avila certs` keeps the CA and what it issues.
const defaultCertsDir = "./certs"

func certsInitCommand() command {
	return command{
		name: "certs init",
		summary: "Make the private CA that agents and aggregators trust for mutual TLS, in --dir (ca.pem, and ca-key.pem\n" +
			"readable only by you). Give ca.pem to every agent (--ca) and aggregator (--tls-client-ca); keep ca-key.pem safe.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			dir := fs.String("dir", defaultCertsDir, "directory for the CA and issued certificates")
			return func(context.Context) error {
				ca, err := protocol.InitCA(*dir)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.stdout, ca)
				return nil
			}
		},
	}
}

func certsIssueCommand() command {
	return command{
		name: "certs issue",
		summary: "Issue a certificate signed by the CA in --dir: --agent NAME for an agent (NAME becomes its identity),\n" +
			"or --aggregator NAME for an aggregator's QUIC listener. Writes <kind>-NAME.pem and <kind>-NAME-key.pem (mode 0600)\n" +
			"and prints their paths.",
		flags: func(c *cli, fs *shared.FlagSet) func(context.Context) error {
			dir := fs.String("dir", defaultCertsDir, "directory holding the CA from 'avila certs init'")
			agent := fs.String("agent", "", "issue an agent certificate with this name")
			agg := fs.String("aggregator", "", "issue an aggregator certificate with this node name")
			var hosts listFlag
			_ = hosts.Set("")
			fs.Var(&hosts, "host", "with --aggregator: DNS name or IP agents reach it at; repeat or separate with commas "+
				"(localhost, 127.0.0.1 and ::1 are always included)")
			daysDef := strconv.Itoa(int(protocol.DefaultCertValidity / (24 * time.Hour)))
			days := fs.String("days", daysDef, "days the certificate is valid")
			return func(context.Context) error {
				req := protocol.IssueRequest{Kind: protocol.KindAgent, Name: *agent, Hosts: hosts}
				switch {
				case *agent != "" && *agg != "":
					return usagef("give either --agent or --aggregator, not both")
				case *agg != "":
					req.Kind, req.Name = protocol.KindAggregator, *agg
				case *agent == "":
					return usagef("--agent NAME or --aggregator NAME is required")
				}
				if req.Kind == protocol.KindAgent && len(hosts) > 0 {
					return usagef("--host goes with --aggregator")
				}
				n, err := strconv.Atoi(*days)
				if err != nil || n < 1 {
					return usagef("--days %q: want a whole number of days, at least 1", *days)
				}
				req.Validity = time.Duration(n) * 24 * time.Hour
				out, err := protocol.IssueCert(*dir, req)
				if err != nil {
					return err
				}
				fmt.Fprintln(c.stdout, out.Cert)
				fmt.Fprintln(c.stdout, out.Key)
				return nil
			}
		},
	}
}
