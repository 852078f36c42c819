package httplog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// records decodes JSON log lines.
func records(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

func TestHandler(t *testing.T) {
	f := func(level slog.Level, wantRequestRecords int) {
		t.Helper()
		var buf bytes.Buffer
		log := ContextLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level})))
		h := Handler(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			log.WarnContext(r.Context(), "inside")
			w.WriteHeader(http.StatusTeapot)
		}))
		ids := map[string]bool{}
		for range 2 {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/g/collect?dl=https%3A%2F%2Fsecret.test%2F", nil))
			id := rec.Header().Get(Header)
			if id == "" || ids[id] {
				t.Fatalf("request id %q empty or repeated (%v)", id, ids)
			}
			ids[id] = true
		}
		var inside, requests int
		for _, r := range records(t, &buf) {
			id, _ := r["request"].(string)
			if !ids[id] {
				t.Errorf("record without a request id of this test: %v", r)
			}
			switch r["msg"] {
			case "inside":
				inside++
			case "request":
				requests++
				if r["status"] != float64(http.StatusTeapot) || r["path"] != "/g/collect" || strings.Contains(buf.String(), "secret.test") {
					t.Errorf("request record %v (the query string must not be logged)", r)
				}
			}
		}
		if inside != 2 || requests != wantRequestRecords {
			t.Errorf("level %v: %d inside and %d request records, want 2 and %d", level, inside, requests, wantRequestRecords)
		}
	}
	f(slog.LevelDebug, 2)
	f(slog.LevelInfo, 0)
}
