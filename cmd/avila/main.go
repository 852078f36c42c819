// Command avila is Avila Analytics' command line: it runs the single-node
// demo and administers a database (migrations, sites, API keys).
//
// Every flag has an AVILA_<FLAG> environment fallback (--data-dir ↔
// AVILA_DATA_DIR); --database-url also falls back to DATABASE_URL. Run
// `avila help` for the verbs.
package main

import "os"

func main() {
	os.Exit(newCLI(os.Stdout, os.Stderr, os.LookupEnv).run(os.Args[1:]))
}
