package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const wrkSample = `Running 5s test @ http://127.0.0.1:41234/g/collect?v=2
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    1.02ms  30.11ms   80.00%
    Req/Sec    15.12k     1.01k   17.00k    70.00%
  150432 requests in 5.00s, 11.05MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 32
Requests/sec:  30086.40
Transfer/sec:      2.21MB
`

func TestParseWrk(t *testing.T) {
	got, err := ParseWrk([]byte(wrkSample))
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 150432 || got.OK != 150400 || got.Errors != 7 || got.Elapsed != 5*time.Second {
		t.Fatalf("got %+v, want 150432 requests, 150400 ok, 7 errors, 5s", got)
	}
	// A clean run prints neither error line; wrk may print minutes.
	clean := "  2 threads and 8 connections\n  900 requests in 1.50m, 1KB read\nRequests/sec: 10\n"
	got, err = ParseWrk([]byte(clean))
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 900 || got.OK != 900 || got.Errors != 0 || got.Elapsed != 90*time.Second {
		t.Fatalf("got %+v, want 900 ok in 90s", got)
	}
	if _, err := ParseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused\n")); err == nil {
		t.Fatal("output without a total parsed")
	}
}

func TestLuaQuote(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		if got := luaQuote(in); got != want {
			t.Fatalf("luaQuote(%q) = %s, want %s", in, got, want)
		}
	}
	f("POST", `"POST"`)
	f("en=a&dl=x\nen=b", `"en=a&dl=x\010en=b"`)
	f(`say "hi" \o/`, `"say \"hi\" \\o/"`)
	f("é", `"\195\169"`)
}

// The Go generator must count exactly what the server saw, stop at its
// request bound, and send the headers and body it was given.
func TestGoLoadCounts(t *testing.T) {
	var served atomic.Int64
	var mu sync.Mutex
	bodies := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies[r.Header.Get("X-Test")+":"+string(b)]++
		mu.Unlock()
		if served.Add(1)%10 == 0 {
			http.Error(w, "every tenth fails", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	reqs := []Request{
		{Method: "POST", URL: srv.URL + "/a", Header: http.Header{"X-Test": {"one"}}, Body: []byte("body-a")},
		{Method: "POST", URL: srv.URL + "/b", Header: http.Header{"X-Test": {"two"}}, Body: []byte("body-b")},
	}
	res, err := GoLoad{}.Run(context.Background(), reqs, Load{Connections: 4, Duration: time.Minute, MaxRequests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 200 || served.Load() != 200 || res.OK != 180 || res.Statuses[204] != 180 || res.Statuses[503] != 20 || res.Errors != 0 {
		t.Fatalf("got %+v, server saw %d; want 200 requests, 180 ok, 20 × 503", res, served.Load())
	}
	if bodies["one:body-a"] != 100 || bodies["two:body-b"] != 100 {
		t.Fatalf("requests seen %v, want 100 of each", bodies)
	}
}

// Without a count bound the duration stops the run; a dead server gives
// errors, not answers.
func TestGoLoadDurationAndErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close()
	res, err := GoLoad{}.Run(context.Background(), []Request{{Method: "GET", URL: url}}, Load{Connections: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.OK != 0 || res.Errors == 0 {
		t.Fatalf("closed server: got %+v, want only errors", res)
	}
}

func TestRequestBytes(t *testing.T) {
	r := Request{Method: "POST", URL: "http://127.0.0.1:8090/g/collect?v=2", Header: http.Header{"User-Agent": {"ua"}}, Body: []byte("0123456789")}
	n, err := RequestBytes(r)
	if err != nil {
		t.Fatal(err)
	}
	want := len("POST /g/collect?v=2 HTTP/1.1\r\nHost: 127.0.0.1:8090\r\nUser-Agent: ua\r\nContent-Length: 10\r\n\r\n0123456789")
	if n != want {
		t.Fatalf("RequestBytes = %d, want %d", n, want)
	}
}

// Run must hand wrk the connections, duration, script and URL, and read
// its report. A stand-in wrk prints a canned report and records its
// arguments, so this runs where wrk is not installed.
func TestWrkRun(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "wrk")
	argsFile := filepath.Join(dir, "args")
	sh := "#!/bin/sh\necho \"$@\" > " + argsFile + "\ncat <<'EOF'\n" + wrkSample + "EOF\n"
	if err := os.WriteFile(fake, []byte(sh), 0o755); err != nil {
		t.Fatal(err)
	}
	w := &Wrk{Path: fake, Dir: dir}
	req := Request{Method: "POST", URL: "http://127.0.0.1:1/g/collect", Header: http.Header{"User-Agent": {"bench ua"}}, Body: []byte("en=a\nen=b")}
	res, err := w.Run(context.Background(), []Request{req}, Load{Connections: 64, Duration: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 150400 {
		t.Fatalf("result %+v, want the canned report's 150400 ok", res)
	}
	args, _ := os.ReadFile(argsFile)
	script := filepath.Join(dir, "wrk-request.lua")
	if want := "-t 2 -c 64 -d 5s --timeout 10s -s " + script + " http://127.0.0.1:1/g/collect\n"; string(args) != want {
		t.Fatalf("wrk args %q, want %q", args, want)
	}
	lua, _ := os.ReadFile(script)
	want := "wrk.method = \"POST\"\nwrk.headers[\"User-Agent\"] = \"bench ua\"\nwrk.body = \"en=a\\010en=b\"\n"
	if string(lua) != want {
		t.Fatalf("script:\n%s\nwant:\n%s", lua, want)
	}
	if _, err := w.Run(context.Background(), []Request{req}, Load{Connections: 1, Duration: 10 * time.Millisecond}); err == nil {
		t.Fatal("a run shorter than wrk's 1 s resolution was accepted")
	}
}

// Several requests become a Lua table sent in turn by request().
func TestWrkScriptSeveral(t *testing.T) {
	s := wrkScript([]Request{
		{Method: "POST", URL: "http://127.0.0.1:1/g/collect?v=2&tid=G-1", Header: http.Header{"User-Agent": {"ua"}, "Content-Type": {"text/plain"}}, Body: []byte("en=a\nen=b")},
		{Method: "GET", URL: "http://127.0.0.1:1/g/collect?v=2&tid=G-2"},
	})
	for _, want := range []string{
		`{"POST", "/g/collect?v=2&tid=G-1", {["Content-Type"] = "text/plain", ["User-Agent"] = "ua", }, "en=a\010en=b"},`,
		`{"GET", "/g/collect?v=2&tid=G-2", {}, ""},`,
		"function request()",
		"wrk.format(s[1], s[2], s[3]",
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("script lacks %q:\n%s", want, s)
		}
	}
}
