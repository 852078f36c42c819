// Package cli holds what the command mains share: AVILA_<FLAG> environment
// fallbacks for flags and the stderr logger. Only cmd/ imports it; libraries
// take Config structs instead.
package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Env looks up environment variables: os.LookupEnv in a main, a map in tests.
type Env func(key string) (string, bool)

// String returns AVILA_<name> when set, else def. name is the flag's name
// in upper snake case: --data-dir ↔ AVILA_DATA_DIR.
func (e Env) String(name, def string) string {
	if v, ok := e("AVILA_" + name); ok {
		return v
	}
	return def
}

// Int64 is String for integer flags; a set variable that is not an integer
// is an error naming it.
func (e Env) Int64(name string, def int64) (int64, error) {
	v, ok := e("AVILA_" + name)
	if !ok {
		return def, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("AVILA_%s=%q: want an integer", name, v)
	}
	return n, nil
}

// Duration is String for duration flags (time.ParseDuration: "500ms",
// "2s"); a set variable that is not a duration is an error naming it.
func (e Env) Duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := e("AVILA_" + name)
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("AVILA_%s=%q: want a duration such as 500ms or 2s", name, v)
	}
	return d, nil
}

// Bool is String for boolean flags (1, t, true, 0, f, false, …, as
// strconv.ParseBool reads them); anything else is an error naming it.
func (e Env) Bool(name string, def bool) (bool, error) {
	v, ok := e("AVILA_" + name)
	if !ok {
		return def, nil
	}
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, fmt.Errorf("AVILA_%s=%q: want true or false", name, v)
	}
	return b, nil
}

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
