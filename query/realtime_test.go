package query

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/go-cmp/cmp"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/query/engine/realtime"
	"github.com/avila-analytics/avila/query/plan"
	"github.com/avila-analytics/avila/storage/redis"
)

// rtNow is the realtime tests' clock: 30 seconds into a minute.
var rtNow = time.Date(2026, 12, 2, 12, 0, 30, 0, time.UTC)

// rtEvent is an event minutesAgo minutes before rtNow, with engagement time
// (its visitor is an active user).
func rtEvent(site uint32, minutesAgo int, visitor uint64, name, country, city, device, title, path string) protocol.Event {
	return protocol.Event{Site: site, TimeMicros: rtNow.Add(-time.Duration(minutesAgo) * time.Minute).UnixMicro(),
		Name: name, Visitor: visitor, Country: country, City: city, Device: device, Title: title, Path: path, EngageMs: 100}
}

// rtEvents: four visitors of site 1 in the window, one event of site 1 a
// minute too old, one of site 2, one stamped in the future (counted now).
func rtEvents() []protocol.Event {
	return []protocol.Event{
		rtEvent(1, 0, 1, "page_view", "US", "New York", "desktop", "Home", "/"),
		rtEvent(1, 0, 1, "click", "US", "New York", "desktop", "Home", "/"),
		rtEvent(1, 0, 1, "click", "US", "New York", "desktop", "Home", "/"),
		rtEvent(1, 3, 2, "page_view", "DE", "Berlin", "mobile", "", "/about?utm_source=x"),
		rtEvent(1, 5, 2, "scroll", "DE", "Berlin", "mobile", "", "/about"),
		rtEvent(1, 29, 3, "page_view", "", "", "", "Home", "/"),
		rtEvent(1, 30, 4, "page_view", "US", "Boston", "desktop", "Old", "/old"),
		rtEvent(2, 1, 5, "page_view", "FR", "Paris", "desktop", "Other site", "/"),
		rtEvent(1, -5, 6, "page_view", "JP", "Tokyo", "tablet", "Home", "/"),
	}
}

// rtSources are the realtime backends every answer must agree on: Redis
// and this node's memory.
func rtSources(t *testing.T) map[string]rtStore {
	t.Helper()
	c, err := redis.Open(context.Background(), redis.Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	now := func() time.Time { return rtNow }
	withRedis := redis.NewRedisRealtime(c, redis.RealtimeOptions{Prefix: testenv.Prefix(t), Now: now})
	memory := redis.NewRealtime(redis.RealtimeOptions{Now: now})
	return map[string]rtStore{"redis": withRedis, "memory": memory}
}

// rtStore is either realtime store (storage/redis), as the node holds it.
type rtStore interface {
	realtime.Source
	Record(ctx context.Context, events []protocol.Event)
}

func rtHandler(t testing.TB, f *fixture, src realtime.Source) http.Handler {
	return newHandler(Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Now: func() time.Time { return rtNow }, Realtime: src},
		f.pool, stubKeys{testKey: {1, 2, 3, 99}, "avk_site1": {1}})
}

// postRealtime sends body to the property's runRealtimeReport.
func postRealtime(t testing.TB, h http.Handler, property, key, body string) (int, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1beta/properties/"+property+":runRealtimeReport", bytes.NewReader([]byte(body)))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func rows(rs ...[]string) []plan.Row {
	var out []plan.Row
	for _, r := range rs {
		var row plan.Row
		for _, v := range r {
			if d, ok := strings.CutPrefix(v, "d:"); ok {
				row.DimensionValues = append(row.DimensionValues, plan.Value{Value: d})
			} else {
				row.MetricValues = append(row.MetricValues, plan.Value{Value: v})
			}
		}
		out = append(out, row)
	}
	return out
}

func TestRunRealtimeReport(t *testing.T) {
	f := newFixture(t, 0)
	for name, rt := range rtSources(t) {
		t.Run(name, func(t *testing.T) {
			rt.Record(context.Background(), rtEvents())
			h := rtHandler(t, f, rt)
			check := func(body string, want *realtime.RunRealtimeReportResponse) {
				t.Helper()
				code, out := postRealtime(t, h, "1", testKey, body)
				if code != http.StatusOK {
					t.Fatalf("%s: %d %s", body, code, out)
				}
				var got realtime.RunRealtimeReportResponse
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatal(err)
				}
				want.Kind = "analyticsData#runRealtimeReport"
				if d := cmp.Diff(want, &got); d != "" {
					t.Fatalf("%s (-want +got):\n%s", body, d)
				}
			}
			dh := func(names ...string) []plan.DimensionHeader {
				var out []plan.DimensionHeader
				for _, n := range names {
					out = append(out, plan.DimensionHeader{Name: n})
				}
				return out
			}
			mh := func(names ...string) []plan.MetricHeader {
				var out []plan.MetricHeader
				for _, n := range names {
					out = append(out, plan.MetricHeader{Name: n, Type: "TYPE_INTEGER"})
				}
				return out
			}
			// The dashboard's request: no dimensions. Visitors 1, 2, 3 and 6
			// (the future event counts now); 4 is 30 minutes old, 5 on site 2.
			check(`{"dimensions":[],"metrics":[{"name":"activeUsers"}]}`, &realtime.RunRealtimeReportResponse{
				MetricHeaders: mh("activeUsers"), Rows: rows([]string{"4"}), RowCount: 1})
			check(`{"metrics":[{"name":"activeUsers"},{"name":"eventCount"},{"name":"screenPageViews"}],"metricAggregations":["TOTAL"]}`, &realtime.RunRealtimeReportResponse{
				MetricHeaders: mh("activeUsers", "eventCount", "screenPageViews"), Rows: rows([]string{"4", "7", "4"}),
				Totals: rows([]string{"4", "7", "4"}), RowCount: 1})
			check(`{"dimensions":[{"name":"minutesAgo"}],"metrics":[{"name":"activeUsers"},{"name":"eventCount"},{"name":"screenPageViews"}]}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("minutesAgo"), MetricHeaders: mh("activeUsers", "eventCount", "screenPageViews"),
				Rows:     rows([]string{"d:00", "2", "4", "2"}, []string{"d:03", "1", "1", "1"}, []string{"d:05", "1", "1", "0"}, []string{"d:29", "1", "1", "1"}),
				RowCount: 4})
			// Country names from the ISO codes; a visitor in two rows counts
			// once in the totals.
			check(`{"dimensions":[{"name":"country"}],"metrics":[{"name":"activeUsers"},{"name":"eventCount"}],"metricAggregations":["TOTAL","MAXIMUM","MINIMUM"]}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("country"), MetricHeaders: mh("activeUsers", "eventCount"),
				Rows:   rows([]string{"d:(not set)", "1", "1"}, []string{"d:Germany", "1", "2"}, []string{"d:Japan", "1", "1"}, []string{"d:United States", "1", "3"}),
				Totals: rows([]string{"d:RESERVED_TOTAL", "4", "7"}), Maximums: rows([]string{"d:RESERVED_MAX", "1", "3"}),
				Minimums: rows([]string{"d:RESERVED_MIN", "1", "1"}), RowCount: 4})
			// unifiedScreenName: the title, else the path without its query.
			check(`{"dimensions":[{"name":"unifiedScreenName"}],"metrics":[{"name":"screenPageViews"},{"name":"activeUsers"}]}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("unifiedScreenName"), MetricHeaders: mh("screenPageViews", "activeUsers"),
				Rows: rows([]string{"d:Home", "3", "3"}, []string{"d:/about", "1", "1"}), RowCount: 2})
			check(`{"dimensions":[{"name":"deviceCategory"},{"name":"city"}],"metrics":[{"name":"eventCount"}],
				"dimensionFilter":{"filter":{"fieldName":"eventName","stringFilter":{"value":"PAGE_VIEW"}}}}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("deviceCategory", "city"), MetricHeaders: mh("eventCount"),
				Rows:     rows([]string{"d:(not set)", "d:(not set)", "1"}, []string{"d:desktop", "d:New York", "1"}, []string{"d:mobile", "d:Berlin", "1"}, []string{"d:tablet", "d:Tokyo", "1"}),
				RowCount: 4})
			check(`{"dimensions":[{"name":"eventName"}],"metrics":[{"name":"eventCount"}],
				"dimensionFilter":{"notExpression":{"filter":{"fieldName":"eventName","inListFilter":{"values":["page_view"],"caseSensitive":true}}}}}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("eventName"), MetricHeaders: mh("eventCount"),
				Rows: rows([]string{"d:click", "2"}, []string{"d:scroll", "1"}), RowCount: 2})
			check(`{"dimensions":[{"name":"country"}],"metrics":[{"name":"eventCount"}],"metricAggregations":["TOTAL"],
				"metricFilter":{"filter":{"fieldName":"eventCount","numericFilter":{"operation":"GREATER_THAN","value":{"int64Value":"1"}}}}}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("country"), MetricHeaders: mh("eventCount"),
				Rows:   rows([]string{"d:United States", "3"}, []string{"d:Germany", "2"}),
				Totals: rows([]string{"d:RESERVED_TOTAL", "7"}), RowCount: 2})
			check(`{"metrics":[{"name":"eventCount"}],"minuteRanges":[{"name":"recent","startMinutesAgo":"4","endMinutesAgo":0},{"startMinutesAgo":29,"endMinutesAgo":5}],"metricAggregations":["TOTAL"]}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("dateRange"), MetricHeaders: mh("eventCount"),
				Rows:   rows([]string{"d:recent", "5"}, []string{"d:date_range_1", "2"}),
				Totals: rows([]string{"d:recent", "5"}, []string{"d:date_range_1", "2"}), RowCount: 2})
			check(`{"dimensions":[{"name":"minutesAgo"}],"metrics":[{"name":"eventCount"}],"limit":2,"metricAggregations":["MAXIMUM"],
				"orderBys":[{"dimension":{"dimensionName":"minutesAgo","orderType":"NUMERIC"},"desc":true}]}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("minutesAgo"), MetricHeaders: mh("eventCount"),
				Rows:     rows([]string{"d:29", "1"}, []string{"d:05", "1"}),
				Maximums: rows([]string{"d:RESERVED_MAX", "4"}), RowCount: 4})
			check(`{"dimensions":[{"name":"minutesAgo"}],"metrics":[{"name":"activeUsers"}],
				"dimensionFilter":{"filter":{"fieldName":"minutesAgo","betweenFilter":{"fromValue":{"int64Value":"1"},"toValue":{"doubleValue":5}}}}}`, &realtime.RunRealtimeReportResponse{
				DimensionHeaders: dh("minutesAgo"), MetricHeaders: mh("activeUsers"),
				Rows: rows([]string{"d:03", "1"}, []string{"d:05", "1"}), RowCount: 2})
			// Another property's counters are its own.
			code, out := postRealtime(t, h, "2", testKey, `{"metrics":[{"name":"activeUsers"},{"name":"eventCount"}]}`)
			if code != 200 || !strings.Contains(string(out), `"rows":[{"metricValues":[{"value":"1"},{"value":"1"}]}]`) {
				t.Fatalf("property 2: %d %s", code, out)
			}
			// Realtime tokens are counted apart from core reports, as in GA4.
			code, out = postRealtime(t, h, "2", testKey, `{"metrics":[{"name":"activeUsers"}],"returnPropertyQuota":true}`)
			var q realtime.RunRealtimeReportResponse
			if err := json.Unmarshal(out, &q); code != 200 || err != nil || q.PropertyQuota == nil || q.PropertyQuota.TokensPerDay.Consumed < 2 {
				t.Fatalf("returnPropertyQuota: %d %s", code, out)
			}
			// A property without events: no rows, rowCount 0 (left out,
			// as proto3 JSON leaves out zeros).
			code, out = postRealtime(t, h, "3", testKey, `{"metrics":[{"name":"activeUsers"}]}`)
			if code != 200 || string(out) != `{"metricHeaders":[{"name":"activeUsers","type":"TYPE_INTEGER"}],"kind":"analyticsData#runRealtimeReport"}`+"\n" {
				t.Fatalf("property 3: %d %s", code, out)
			}
		})
	}
}

func TestRunRealtimeReportErrors(t *testing.T) {
	f := newFixture(t, 0)
	h := rtHandler(t, f, redis.NewRealtime(redis.RealtimeOptions{Now: func() time.Time { return rtNow }}))
	ok := `{"metrics":[{"name":"activeUsers"}]}`
	e := func(name, property, key, body string, wantCode int, wantStatus, wantInMessage string) {
		t.Helper()
		code, out := postRealtime(t, h, property, key, body)
		var eb errorBody
		if err := json.Unmarshal(out, &eb); err != nil {
			t.Fatalf("%s: body is not an error: %s", name, out)
		}
		if code != wantCode || eb.Error.Code != wantCode || eb.Error.Status != wantStatus || !strings.Contains(eb.Error.Message, wantInMessage) {
			t.Fatalf("%s: got %d %s, want %d %s containing %q", name, code, out, wantCode, wantStatus, wantInMessage)
		}
	}
	e("no key", "1", "", ok, 401, "UNAUTHENTICATED", "Bearer")
	e("key for another property", "2", "avk_site1", ok, 403, "PERMISSION_DENIED", "properties/2")
	e("unknown property", "99", testKey, ok, 404, "NOT_FOUND", "properties/99")
	e("unknown dimension", "1", testKey, `{"dimensions":[{"name":"pagePath"}],"metrics":[{"name":"activeUsers"}]}`,
		400, "INVALID_ARGUMENT", `dimensions[0]: Field "pagePath" is not a valid realtime dimension`)
	e("unknown metric", "1", testKey, `{"metrics":[{"name":"activeUsers"},{"name":"sessions"}]}`,
		400, "INVALID_ARGUMENT", `metrics[1]: Field "sessions" is not a valid realtime metric`)
	e("unknown field", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"dateRanges":[]}`, 400, "INVALID_ARGUMENT", `Unknown name "dateRanges"`)
	e("empty", "1", testKey, `{}`, 400, "INVALID_ARGUMENT", "at least one dimension or metric")
	e("start too far back", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"minuteRanges":[{"startMinutesAgo":30}]}`,
		400, "INVALID_ARGUMENT", "minuteRanges[0].startMinutesAgo: 30 is outside 0 to 29")
	e("negative end", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"minuteRanges":[{"endMinutesAgo":-1}]}`,
		400, "INVALID_ARGUMENT", "minuteRanges[0].endMinutesAgo")
	e("reversed range", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"minuteRanges":[{"startMinutesAgo":2,"endMinutesAgo":5}]}`,
		400, "INVALID_ARGUMENT", "startMinutesAgo 2 is after endMinutesAgo 5")
	e("three ranges", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"minuteRanges":[{},{},{}]}`, 400, "INVALID_ARGUMENT", "limit is 2")
	e("metric in dimensionFilter", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"dimensionFilter":{"filter":{"fieldName":"eventCount","emptyFilter":{}}}}`,
		400, "INVALID_ARGUMENT", `dimensionFilter.filter.fieldName: "eventCount" is a metric`)
	e("runReport dimension in filter", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"dimensionFilter":{"filter":{"fieldName":"browser","emptyFilter":{}}}}`,
		400, "INVALID_ARGUMENT", `Field "browser" is not a valid realtime dimension`)
	e("bad regexp", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"dimensionFilter":{"filter":{"fieldName":"city","stringFilter":{"matchType":"FULL_REGEXP","value":"("}}}}`,
		400, "INVALID_ARGUMENT", "dimensionFilter.filter.stringFilter.value: invalid regular expression")
	e("order by absent metric", "1", testKey, `{"metrics":[{"name":"activeUsers"}],"orderBys":[{"metric":{"metricName":"eventCount"}}]}`,
		400, "INVALID_ARGUMENT", `orderBys[0]: metric "eventCount" is not in the request's metrics`)
	e("property mismatch", "1", testKey, `{"property":"properties/2","metrics":[{"name":"activeUsers"}]}`, 400, "INVALID_ARGUMENT", "does not match")
	// The GA4 dimensions runReport answers are unchanged in metadata.
	req := httptest.NewRequest(http.MethodGet, "/v1beta/properties/1/metadata", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"apiName":"activeUsers"`) {
		t.Fatalf("metadata: %d %s", rec.Code, rec.Body)
	}
}

// dialSummary connects to the socket server and returns the connection.
func dialSocket(t *testing.T, srv *httptest.Server, query string, header http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/v1/realtime/ws?"+query, &websocket.DialOptions{HTTPHeader: header})
}

// readUntil reads summaries until ok accepts one; fails after 15 s.
func readUntil(t *testing.T, c *websocket.Conn, ok func(*RealtimeSummary) bool) *RealtimeSummary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var last RealtimeSummary
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (last summary %+v)", err, last)
		}
		last = RealtimeSummary{}
		if err := json.Unmarshal(msg, &last); err != nil {
			t.Fatalf("summary %s: %v", msg, err)
		}
		if ok(&last) {
			return &last
		}
	}
}

func socketServer(t *testing.T, f *fixture, src realtime.Source, max int) (*httptest.Server, *RealtimeSocket, context.CancelFunc) {
	t.Helper()
	s := newRealtimeSocket(SocketOptions{Options: Options{Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}, MaxSockets: max, Interval: 50 * time.Millisecond},
		f.pool, stubKeys{testKey: {1, 2, 3, 99}, "avk_site1": {1}}, src)
	mux := http.NewServeMux()
	mux.Handle("GET /v1/realtime/ws", s)
	srv := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	return srv, s, cancel
}

// TestRealtimeSocket: a socket on node A sees a commit made on node B after it
// connected (Redis pub/sub), and one without Redis sees its own node's.
func TestRealtimeSocket(t *testing.T) {
	f := newFixture(t, 0)
	c, err := redis.Open(context.Background(), redis.Options{URL: testenv.RedisURL(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := testenv.Prefix(t)
	nodeA := redis.NewRedisRealtime(c, redis.RealtimeOptions{Prefix: prefix})
	nodeB := redis.NewRedisRealtime(c, redis.RealtimeOptions{Prefix: prefix})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go nodeA.Run(ctx) // relays B's commits to A's socket
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		subs, err := c.PubSubNumSub(ctx, nodeA.Channel()).Result()
		if err == nil && subs[nodeA.Channel()] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node A never subscribed to %s: %v", nodeA.Channel(), err)
		}
	}
	memory := redis.NewRealtime(redis.RealtimeOptions{})

	live := func(visitor uint64, title string) []protocol.Event {
		return []protocol.Event{{Site: 1, TimeMicros: time.Now().UnixMicro(), Name: "page_view", Visitor: visitor, Title: title, Country: "CH",
			Flags: protocol.FlagFirstVisit}}
	}
	for _, tc := range []struct {
		name     string
		read     realtime.Source
		write    rtStore
		dialWith func(srv *httptest.Server) (*websocket.Conn, *http.Response, error)
	}{
		{"redis, key parameter", nodeA, nodeB, func(srv *httptest.Server) (*websocket.Conn, *http.Response, error) {
			return dialSocket(t, srv, "property=1&key=avk_site1", nil)
		}},
		{"memory, bearer header", memory, memory, func(srv *httptest.Server) (*websocket.Conn, *http.Response, error) {
			return dialSocket(t, srv, "property=1", http.Header{"Authorization": {"Bearer avk_site1"}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _, _ := socketServer(t, f, tc.read, 10)
			conn, _, err := tc.dialWith(srv)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseNow()
			first := readUntil(t, conn, func(*RealtimeSummary) bool { return true })
			if first.Property != "properties/1" || first.ActiveUsers != 0 || len(first.Minutes) != 30 {
				t.Fatalf("first summary %+v, want properties/1 with no users and 30 minutes", first)
			}
			tc.write.Record(context.Background(), live(42, "Live page"))
			got := readUntil(t, conn, func(s *RealtimeSummary) bool { return s.EventCount > 0 })
			want := []SummaryTop{{Name: "Live page", ActiveUsers: 1, EventCount: 1, ScreenPageViews: 1}}
			if got.ActiveUsers != 1 || got.EventCount != 1 || got.ScreenPageViews != 1 ||
				got.Minutes[0].EventCount+got.Minutes[1].EventCount != 1 || !cmp.Equal(got.TopPages, want) ||
				len(got.TopCountries) != 1 || got.TopCountries[0].Name != "Switzerland" {
				t.Fatalf("summary after the commit: %+v", got)
			}
		})
	}

	srv, sock, stop := socketServer(t, f, memory, 1)
	// A key for another property, no key, a bad property: refused before the upgrade.
	for _, tc := range []struct {
		query string
		code  int
	}{{"property=2&key=avk_site1", 403}, {"property=1", 401}, {"property=x&key=avk_site1", 400}, {"property=99&key=" + testKey, 404}} {
		if _, resp, err := dialSocket(t, srv, tc.query, nil); err == nil || resp == nil || resp.StatusCode != tc.code {
			t.Fatalf("%s: %v %v, want %d", tc.query, resp, err, tc.code)
		}
	}
	// The node holds one socket at most.
	conn, _, err := dialSocket(t, srv, "property=1&key=avk_site1", nil)
	if err != nil {
		t.Fatal(err)
	}
	readUntil(t, conn, func(*RealtimeSummary) bool { return true })
	if _, resp, err := dialSocket(t, srv, "property=1&key=avk_site1", nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("second socket: %v %v, want 503", resp, err)
	}
	// Stopping Run closes the socket with "going away".
	stop()
	rctx, rcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer rcancel()
	for {
		if _, _, err := conn.Read(rctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusGoingAway {
				t.Fatalf("after stop: %v, want going away", err)
			}
			break
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for sock.Sockets() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets still registered after stop", sock.Sockets())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRealtimeSummaryActiveDay: the WebSocket summary counts a visitor
// whose events in the window are not active as an active user when its
// latest active event is on the window's day in the property's time zone
// (redis.Window.ActiveVisitors), in its total, its minutes and its top
// countries, and not when that event was on the day before.
func TestRealtimeSummaryActiveDay(t *testing.T) {
	now := time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	w := redis.Window{Now: now.Unix() / 60, Minutes: []redis.Minute{{Minute: now.Unix() / 60, Cells: map[redis.Cell]int64{
		{EventName: "page_view", Country: "CH", Screen: "/a", Visitor: 1}:               1, // quiet, active at 09:00 UTC
		{EventName: "page_view", Country: "CH", Screen: "/a", Visitor: 2}:               1, // quiet, never active
		{EventName: "page_view", Country: "DE", Screen: "/a", Visitor: 3, Active: true}: 1,
	}}}, ActiveAt: map[uint64]int64{1: now.Add(-3 * time.Hour).Unix()}}
	for _, tc := range []struct {
		loc       *time.Location
		active    int64
		swissUser int64
	}{{time.UTC, 2, 1}, {time.FixedZone("UTC-10", -10*3600), 1, 0}} { // 02:00 there: 09:00 UTC was the day before
		sum := summarize(1, w, tc.loc)
		var ch int64
		for _, c := range sum.TopCountries {
			if c.Name == realtime.CountryName("CH") {
				ch = c.ActiveUsers
			}
		}
		if sum.ActiveUsers != tc.active || sum.Minutes[0].ActiveUsers != tc.active || ch != tc.swissUser {
			t.Errorf("in %s: %d active users, %d this minute, %d in CH; want %d, %d, %d", tc.loc, sum.ActiveUsers, sum.Minutes[0].ActiveUsers, ch,
				tc.active, tc.active, tc.swissUser)
		}
	}
}
