// Command gen rewrites the flag tables of README.md from the commands' flag
// sets: go run ./internal/flagdoc/gen from the repository root.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/avila-analytics/avila/internal/flagdoc"
)

func main() {
	path := flag.String("readme", "README.md", "the README to update")
	flag.Parse()
	if err := run(*path); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(path string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	updated, err := flagdoc.UpdateREADME(old)
	if err != nil {
		return err
	}
	if bytes.Equal(old, updated) {
		return nil
	}
	return os.WriteFile(path, updated, 0o644)
}
