package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Server is a started server process part: an agent or an aggregator node.
type Server interface {
	Err() <-chan error                  // reports a failure while serving
	Shutdown(ctx context.Context) error // stops it, waiting at most until ctx ends
}

// Serve prints ready as the one JSON line on stdout, then waits until ctx
// ends (a signal) or s fails, and shuts s down within timeout. It returns
// the serving failure, if any; an unclean shutdown is only logged.
func Serve(ctx context.Context, s Server, ready any, stdout io.Writer, timeout time.Duration, log *slog.Logger) error {
	line, err := json.Marshal(ready)
	if err != nil {
		return fmt.Errorf("BUG: ready line: %w", err)
	}
	if _, err := fmt.Fprintln(stdout, string(line)); err != nil {
		log.Warn("printing the ready line failed", "err", err)
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-s.Err():
		log.Error("serving failed", "err", serveErr)
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		log.Warn("unclean shutdown", "err", err)
	}
	return serveErr
}
