// Command avila is Avila Analytics' command line: it runs the single-node
// demo and administers a database (migrations, sites, API keys).
//
// Every flag has an AVILA_<FLAG> environment fallback (--data-dir ↔
// AVILA_DATA_DIR); --database-url also falls back to DATABASE_URL. Run
// `avila help` for the verbs. They live in package command.
package main

import (
	"os"

	"github.com/avila-analytics/avila/cmd/avila/command"
)

func main() {
	os.Exit(command.Main(os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}
