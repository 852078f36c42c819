package command

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/aggregator/write"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query"
	"github.com/avila-analytics/avila/storage/postgres"
)

// reportServer is a migrated database with one site's events behind the
// real query API; it returns the API URL, the site id and a key for it.
func reportServer(t *testing.T) (api, property, key string) {
	t.Helper()
	ctx := context.Background()
	db := migratedDB(t)
	store, err := postgres.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	reports, err := postgres.OpenReportPool(ctx, db, nil, postgres.PoolOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reports.Close)
	site, err := store.CreateSite(ctx, postgres.SiteSpec{Name: "Report", Domains: []string{"report.example"}})
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	if err := store.EnsurePartitions(ctx, day.AddDate(0, 0, -1), day.AddDate(0, 0, 2)); err != nil {
		t.Fatal(err)
	}
	var evs []protocol.Event
	hit := func(visitor uint64, name, path string, flags uint8) {
		evs = append(evs, protocol.Event{Site: site.ID, Visitor: visitor, Name: name, Path: path, Flags: flags,
			TimeMicros: day.Add(time.Duration(len(evs)) * time.Minute).UnixMicro()})
	}
	for _, v := range []uint64{1, 2, 1} {
		hit(v, "page_view", "/a", protocol.FlagEngaged)
	}
	hit(3, "page_view", "/b", protocol.FlagEngaged)
	hit(1, "page_view", "/long/path/ünï", protocol.FlagEngaged)
	hit(1, "page_view", "/long/path/ünï", protocol.FlagEngaged)
	hit(4, "click", "/a", 0) // an event, not a view, of a visitor who is not active
	// Through the aggregator's write stage, derived before the test reads;
	// without session_start and first_visit, so the figures are the events
	// above (a first_visit would make visitor 4 active).
	w := write.New(write.Config{NoDerivedEvents: true}, store)
	if _, err := w.WriteBatch(ctx, "cli-test", 1, evs, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	key, err = store.CreateAPIKey(ctx, "cli", []uint32{site.ID})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(query.NewHandler(query.Options{}, reports, store))
	t.Cleanup(srv.Close)
	return srv.URL, strconv.FormatUint(uint64(site.ID), 10), key
}

func TestReport(t *testing.T) {
	api, property, key := reportServer(t)
	base := []string{"report", "--api", api, "--key", key, "--property", property, "--start", "2026-03-01", "--end", "2026-03-03"}
	run := func(wantCode int, args ...string) (string, string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, nil, append(append([]string(nil), base...), args...)...)
		if code != wantCode {
			t.Fatalf("avila %q: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, stdout, stderr)
		}
		return stdout, stderr
	}
	table := func(rows ...[3]string) string {
		var b strings.Builder
		for _, r := range rows {
			fmt.Fprintf(&b, "%-14s  %15s  %11s\n", r[0], r[1], r[2])
		}
		return b.String()
	}
	head := [3]string{"pagePath", "screenPageViews", "activeUsers"}

	// Table: aligned (widths by characters, ü counts one), numbers right,
	// the requested order, totals under a rule.
	out, _ := run(0, "--dimensions", "pagePath", "--metrics", "screenPageViews,activeUsers", "--order", "-screenPageViews", "--totals")
	rule := strings.Repeat("-", 14+2+15+2+11) + "\n"
	want := table(head, [3]string{"/a", "3", "2"}, [3]string{"/long/path/ünï", "2", "1"}, [3]string{"/b", "1", "1"}) +
		rule + strings.TrimRight(fmt.Sprintf("%-14s  %15s  %11s", "Total", "6", "3"), " ") + "\n"
	if out != want {
		t.Errorf("table:\n%s\nwant:\n%s", out, want)
	}

	// Ascending by dimension, a page of one row says how many there are.
	out, _ = run(0, "--dimensions", "pagePath", "--metrics", "screenPageViews,activeUsers", "--order", "pagePath", "--limit", "1")
	if want := table(head, [3]string{"/a", "3", "2"}) + "(1 of 3 rows; see --limit and --offset)\n"; out != fmtWidth(want, 2) {
		t.Errorf("page of one:\n%q\nwant:\n%q", out, fmtWidth(want, 2))
	}

	// CSV: exact values, proper quoting, totals with GA4's RESERVED_TOTAL.
	out, _ = run(0, "--dimensions", "pagePath", "--metrics", "screenPageViews,eventCountPerUser", "--order", "pagePath", "--csv", "--totals")
	wantCSV := "pagePath,screenPageViews,eventCountPerUser\n/a,3,2\n/b,1,1\n/long/path/ünï,2,2\nRESERVED_TOTAL,6,2.3333333333333335\n"
	if out != wantCSV {
		t.Errorf("csv:\n%s\nwant:\n%s", out, wantCSV)
	}

	// --json is the API's own answer.
	out, _ = run(0, "--dimensions", "pagePath", "--metrics", "screenPageViews", "--json")
	var got datapb.RunReportResponse
	if err := protojson.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	body := `{"dimensions":[{"name":"pagePath"}],"metrics":[{"name":"screenPageViews"}],"dateRanges":[{"startDate":"2026-03-01","endDate":"2026-03-03"}]}`
	if direct := apiReport(t, api, property, key, body); !cmp.Equal(direct, &got, protocmp.Transform()) {
		t.Errorf("--json differs from the API's answer:\n%s", cmp.Diff(direct, &got, protocmp.Transform()))
	}

	// Filters: a dimension condition and a metric condition.
	out, _ = run(0, "--dimensions", "pagePath", "--metrics", "screenPageViews", "--filter", "pagePath!@b; screenPageViews>=2", "--csv")
	if want := "pagePath,screenPageViews\n/a,3\n/long/path/ünï,2\n"; out != want {
		t.Errorf("filtered csv:\n%s\nwant:\n%s", out, want)
	}
	out, _ = run(0, "--dimensions", "pagePath", "--metrics", "screenPageViews", "--filter", "pagePath=~^/L", "--csv")
	if want := "pagePath,screenPageViews\n/long/path/ünï,2\n"; out != want {
		t.Errorf("regexp filter:\n%s\nwant:\n%s", out, want)
	}

	// The environment stands in for --api and --key.
	env := map[string]string{"AVILA_API_URL": strings.TrimPrefix(api, "http://"), "AVILA_API_KEY": key}
	code, stdout, stderr := runCLI(t, env, "report", "--property", property, "--metrics", "eventCount", "--start", "2026-03-02", "--end", "2026-03-02", "--csv")
	if code != 0 || stdout != "eventCount\n7\n" {
		t.Errorf("from env: exit %d, %q, %s", code, stdout, stderr)
	}

	// Errors: the API's message passes through; a wrong key, a dead
	// server and command line mistakes say what is wrong.
	_, stderr = run(1, "--metrics", "screenPageViewz")
	if !strings.Contains(stderr, `400 INVALID_ARGUMENT: Field "screenPageViewz" is not a valid metric`) {
		t.Errorf("unknown metric: %s", stderr)
	}
	code, _, stderr = runCLI(t, nil, "report", "--api", api, "--key", "avk_nope", "--property", property, "--metrics", "eventCount")
	if code != 1 || !strings.Contains(stderr, "401 UNAUTHENTICATED") {
		t.Errorf("bad key: exit %d, %s", code, stderr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	code, _, stderr = runCLI(t, nil, "report", "--api", dead, "--key", key, "--property", property, "--metrics", "eventCount")
	if code != 1 || !strings.Contains(stderr, dead+"/v1beta/properties/"+property+":runReport") || !strings.Contains(stderr, "connection refused") ||
		!strings.Contains(stderr, "check --api") {
		t.Errorf("dead server: exit %d, %s", code, stderr)
	}
	code, stdout, _ = runCLI(t, nil, "help", "report")
	for _, w := range []string{"avila report", "-dimensions", "-metrics", "-order", "-filter", "-totals", "-csv", "-json", "AVILA_API_URL", "AVILA_API_KEY"} {
		if code != 0 || !strings.Contains(stdout, w) {
			t.Errorf("help report: exit %d, lacks %q:\n%s", code, w, stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"report", "--metrics", "eventCount", "--key", "k"}, "--property is required"},
		{[]string{"report", "--metrics", "eventCount", "--property", "1"}, "--key is required"},
		{[]string{"report", "--metrics", "eventCount", "--property", "x", "--key", "k"}, `--property "x"`},
		{[]string{"report", "--property", "1", "--key", "k"}, "give --metrics, --dimensions or both"},
		{[]string{"report", "--metrics", "eventCount", "--property", "1", "--key", "k", "--json", "--csv"}, "choose one"},
		{[]string{"report", "--metrics", "eventCount", "--property", "1", "--key", "k", "--order", "-pagePath"}, `"pagePath" is not among`},
		{[]string{"report", "--metrics", "eventCount", "--property", "1", "--key", "k", "--filter", "pagePath"}, "want NAME==VALUE"},
		{[]string{"report", "--metrics", "eventCount", "--property", "1", "--key", "k", "--filter", "eventCount=@3"}, "takes a number comparison"},
		{[]string{"report", "--metrics", "eventCount", "--property", "1", "--key", "k", "--filter", "eventCount>x"}, `"x" after > is not a number`},
	} {
		code, _, stderr := runCLI(t, nil, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("avila %q: exit %d, %s; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// fmtWidth re-renders table lines whose widths depend on the rows shown:
// the page of one row has narrower columns. n is the number of table lines.
func fmtWidth(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	rows := make([][]string, 0, n)
	for _, l := range lines[:n] {
		rows = append(rows, strings.Fields(l))
	}
	widths := make([]int, 3)
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "%-*s  %*s  %*s\n", widths[0], r[0], widths[1], r[1], widths[2], r[2])
	}
	return b.String() + strings.Join(lines[n:], "")
}

// apiReport posts body to runReport directly.
func apiReport(t *testing.T, api, property, key, body string) *datapb.RunReportResponse {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, api+"/v1beta/properties/"+property+":runReport", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out datapb.RunReportResponse
	if resp.StatusCode != 200 || protojson.Unmarshal(raw, &out) != nil {
		t.Fatalf("API: %d %s", resp.StatusCode, raw)
	}
	return &out
}
