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

func TestList(t *testing.T) {
	f := func(in string, want ...string) {
		t.Helper()
		if got := List(in); strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Fatalf("List(%q) = %q, want %q", in, got, want)
		}
	}
	f("")
	f(" , ,")
	f("a", "a")
	f("a, b,,c ", "a", "b", "c")
	f("127.0.0.1:4433,[::1]:4433", "127.0.0.1:4433", "[::1]:4433")
}
