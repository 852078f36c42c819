// Package cli holds what the commands share: FlagSet, which gives every flag
// its AVILA_<FLAG> environment fallback in one place, and the stderr logger.
// Only cmd/ imports it (and internal/flagdoc, which documents the flags);
// libraries take Config structs instead.
package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Env looks up environment variables: os.LookupEnv in a main, a map in tests.
type Env func(key string) (string, bool)

// NewLogger builds the logger a binary writes to w (stderr) from
// --log-format (text or json) and --log-level (debug, info, warn, error).
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// List splits a comma-separated flag value into its items, spaces trimmed
// and empty items dropped: "a, b,,c" is [a b c]; "" is none.
func List(s string) []string {
	var out []string
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}
