package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func mapEnv(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestEnv(t *testing.T) {
	e := mapEnv(map[string]string{"AVILA_DATA_DIR": "/srv/agent", "AVILA_EMPTY": "", "AVILA_MAX": " 42 ", "AVILA_BAD": "lots"})
	if got := e.String("DATA_DIR", "./data"); got != "/srv/agent" {
		t.Fatalf("set: %q", got)
	}
	if got := e.String("EMPTY", "def"); got != "" {
		t.Fatalf("set to empty must win over the default: %q", got)
	}
	if got := e.String("LISTEN", "127.0.0.1:8090"); got != "127.0.0.1:8090" {
		t.Fatalf("unset: %q", got)
	}
	if n, err := e.Int64("MAX", 7); err != nil || n != 42 {
		t.Fatalf("Int64 set: %d %v", n, err)
	}
	if n, err := e.Int64("UNSET", 7); err != nil || n != 7 {
		t.Fatalf("Int64 unset: %d %v", n, err)
	}
	if _, err := e.Int64("BAD", 7); err == nil || err.Error() != `AVILA_BAD="lots": want an integer` {
		t.Fatalf("Int64 bad: %v", err)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := NewLogger(&buf, "JSON", "warn")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "shown" {
		t.Fatalf("json log %q: %v", buf.String(), err)
	}
	buf.Reset()
	log, err = NewLogger(&buf, "text", "debug")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("dbg")
	if !strings.Contains(buf.String(), "msg=dbg") {
		t.Fatalf("text log %q", buf.String())
	}
	if _, err := NewLogger(&buf, "xml", "info"); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("bad format: %v", err)
	}
	if _, err := NewLogger(&buf, "text", "loud"); err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("bad level: %v", err)
	}
}
