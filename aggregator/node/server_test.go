package node

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/avila-analytics/avila/internal/pgserver"
	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/storage/postgres"
)

// guardNode starts a node with the given API and report settings (and an
// operator address), a site and a key for it.
func guardNode(t *testing.T, db string, cfg Config) (*Node, postgres.Site, string) {
	t.Helper()
	ctx := context.Background()
	cfg.DatabaseURL, cfg.ListenQUIC, cfg.ListenAPI, cfg.ListenOperator, cfg.DataDir = db, "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	n, err := Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Shutdown(sctx)
	})
	site, err := n.store.CreateSite(ctx, postgres.SiteSpec{Name: "guarded"})
	if err != nil {
		t.Fatal(err)
	}
	key, err := n.store.CreateAPIKey(ctx, "guard", []uint32{site.ID})
	if err != nil {
		t.Fatal(err)
	}
	return n, site, key
}

// rawConn opens a TCP connection to the node's API address.
func rawConn(t *testing.T, n *Node) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(n.APIURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAPISlowBodyCut: a client that sends its head and then its body a
// byte at a time, too slowly, is cut by the read timeout whether or not it
// sent a valid key: the server closes the connection instead of holding it.
func TestAPISlowBodyCut(t *testing.T) {
	n, site, key := guardNode(t, testenv.PostgresURL(t), Config{APIReadTimeout: time.Second})
	for _, auth := range []string{"", "Authorization: Bearer " + key + "\r\n"} {
		c := rawConn(t, n)
		head := "POST /v1beta/properties/" + itoa(site.ID) + ":runReport HTTP/1.1\r\nHost: x\r\n" + auth +
			"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		// Trickle a byte every 300ms for up to 20s while reading what the
		// server says; the server must end the connection long before.
		start := time.Now()
		closed := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, c)
			closed <- err
		}()
		tick := time.NewTicker(300 * time.Millisecond)
	trickle:
		for {
			select {
			case err := <-closed:
				if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
					t.Fatalf("key %v: read: %v", auth != "", err)
				}
				break trickle
			case <-tick.C:
				if time.Since(start) > 20*time.Second {
					t.Fatalf("key %v: a slow body still open after %s; want it cut by the 1s read timeout", auth != "", time.Since(start))
				}
				_, _ = io.WriteString(c, " ")
			}
		}
		tick.Stop()
		t.Logf("key %v: connection cut after %s", auth != "", time.Since(start).Round(time.Millisecond))
	}
}

// TestAPIMalformedChunked: a chunked body whose framing is broken is
// answered 400 INVALID_ARGUMENT in Google's error shape, not 500.
func TestAPIMalformedChunked(t *testing.T) {
	n, site, key := guardNode(t, testenv.PostgresURL(t), Config{})
	for _, body := range []string{
		"zz\r\n{}\r\n0\r\n\r\n",            // a chunk size that is not hex
		"5\r\n{}\r\n0\r\n\r\n",             // a chunk shorter than its size
		"2\r\n{}XX0\r\n\r\n",               // no CRLF after the chunk
		"ffffffffffffffffff\r\n{}\r\n\r\n", // a size past 64 bits
	} {
		c := rawConn(t, n)
		req := "POST /v1beta/properties/" + itoa(site.ID) + ":runReport HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
			"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + body
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"INVALID_ARGUMENT"`) {
			t.Fatalf("%q: %d %s; want 400 INVALID_ARGUMENT", body, resp.StatusCode, b)
		}
	}
	// A well-formed chunked body still works.
	c := rawConn(t, n)
	req := "POST /v1beta/properties/" + itoa(site.ID) + ":runReport HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key +
		"\r\nTransfer-Encoding: chunked\r\n\r\n"
	good := `{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"7daysAgo","endDate":"today"}]}`
	req += strings.ToLower(strconvHex(len(good))) + "\r\n" + good + "\r\n0\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("good chunked body: %d %s", resp.StatusCode, b)
	}
}

func strconvHex(n int) string {
	const digits = "0123456789abcdef"
	if n == 0 {
		return "0"
	}
	var out []byte
	for ; n > 0; n /= 16 {
		out = append([]byte{digits[n%16]}, out...)
	}
	return string(out)
}

// TestOperatorAddress: metrics and the cluster status are served on the
// operator address only; the API address answers 404 for them.
func TestOperatorAddress(t *testing.T) {
	n, _, _ := guardNode(t, testenv.PostgresURL(t), Config{})
	for _, p := range []string{"/metrics", "/v1/cluster/status"} {
		if code, body := get(t, n.APIURL+p); code != http.StatusNotFound || strings.Contains(body, "go_goroutines") || strings.Contains(body, "members") {
			t.Errorf("API %s: %d %.200s; want 404", p, code, body)
		}
		if code, body := get(t, n.OperatorURL+p); code != http.StatusOK {
			t.Errorf("operator %s: %d %.200s", p, code, body)
		}
	}
	for _, base := range []string{n.APIURL, n.OperatorURL} {
		if code, body := get(t, base+"/readyz"); code != http.StatusOK {
			t.Errorf("%s/readyz: %d %s", base, code, body)
		}
	}
}

// TestReadyzHidesDriverErrors: with its database gone, the node's /readyz
// on the API address says only that the database is unavailable, while the
// operator address gives the driver's error.
func TestReadyzHidesDriverErrors(t *testing.T) {
	ctx := context.Background()
	base := testenv.PostgresURL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	name := "avila_readyz_" + strings.TrimPrefix(u.Path, "/avila_test_")
	if err := pgserver.CreateDatabase(ctx, base, name); err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	n, _, _ := guardNode(t, u.String(), Config{})
	if code, body := get(t, n.APIURL+"/readyz"); code != http.StatusOK {
		t.Fatalf("before: %d %s", code, body)
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}
	code, body := get(t, n.APIURL+"/readyz")
	if code != http.StatusServiceUnavailable || body != "not ready: database unavailable\n" {
		t.Fatalf("API /readyz with the database gone: %d %q; want 503 and no driver error", code, body)
	}
	code, body = get(t, n.OperatorURL+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "postgres") || body == "not ready: database unavailable\n" {
		t.Fatalf("operator /readyz: %d %q; want the driver's error", code, body)
	}
}

// TestRealtimeSocketKeyRevoked: an open realtime WebSocket is closed with
// 1008 within seconds of its key being revoked.
func TestRealtimeSocketKeyRevoked(t *testing.T) {
	n, site, key := guardNode(t, testenv.PostgresURL(t), Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(n.APIURL, "http")+"/v1/realtime/ws?property="+itoa(site.ID),
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if _, _, err := conn.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n.store.RevokeAPIKey(ctx, key); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	for {
		_, _, err := conn.Read(ctx)
		if err == nil {
			continue // summaries keep coming until the next check
		}
		if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
			t.Fatalf("socket ended with %v, want close 1008 policy violation", err)
		}
		t.Logf("closed %s after the revocation", time.Since(revoked).Round(time.Millisecond))
		if time.Since(revoked) > 10*time.Second {
			t.Fatalf("closed %s after the revocation; want within seconds", time.Since(revoked))
		}
		return
	}
}

// TestReportsApartFromWrites: with every report connection taken, a batch
// still commits and derives (the write stage has its own pool), and the
// report connections carry the report timeout as statement_timeout.
func TestReportsApartFromWrites(t *testing.T) {
	ctx := context.Background()
	db := testenv.PostgresURL(t)
	n, site, key := guardNode(t, db, Config{ReportConns: 2, ReportTimeout: 3 * time.Second})
	var held []interface{ Release() }
	for range 2 {
		c, err := n.reports.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var st string
		if err := c.QueryRow(ctx, "SHOW statement_timeout").Scan(&st); err != nil || st != "3s" {
			t.Fatalf("report connection statement_timeout %q, %v; want 3s", st, err)
		}
		held = append(held, c)
	}
	t.Cleanup(func() { // before the node's own cleanup closes the pool
		for _, c := range held {
			c.Release()
		}
	})
	sendBatch(t, n, 1, []protocol.Event{{Site: site.ID, TimeMicros: time.Now().UnixMicro(), Name: "page_view", Visitor: 7}})
	fctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := n.Flush(fctx); err != nil {
		t.Fatalf("derive while reports hold every report connection: %v", err)
	}
	var stored int
	if err := testenv.Pool(t, db).QueryRow(ctx, "SELECT count(*) FROM events WHERE site_id = $1 AND flags & $2 = 0",
		int32(site.ID), postgres.EventFlagDerived).Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("events stored: %d, %v", stored, err)
	}
	// Reports wait for a report connection, up to their timeout.
	req, _ := http.NewRequest(http.MethodPost, n.APIURL+"/v1beta/properties/"+itoa(site.ID)+":runReport",
		strings.NewReader(`{"metrics":[{"name":"eventCount"}],"dateRanges":[{"startDate":"today","endDate":"today"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("report with the report pool taken: %d %s; want 504 after the report timeout", resp.StatusCode, b)
	}
}

// TestAPIIdleAndWriteTimeouts: an idle keep-alive connection is closed
// after the idle timeout, and the server carries the configured write
// timeout (answers are cut past it; WebSockets clear it when hijacked).
func TestAPIIdleAndWriteTimeouts(t *testing.T) {
	n, _, _ := guardNode(t, testenv.PostgresURL(t), Config{APIIdleTimeout: time.Second, APIWriteTimeout: 40 * time.Second, ReportTimeout: 20 * time.Second})
	if n.http.WriteTimeout != 40*time.Second || n.http.ReadTimeout != DefaultAPIReadTimeout || n.http.IdleTimeout != time.Second {
		t.Fatalf("API server timeouts: read %s, write %s, idle %s", n.http.ReadTimeout, n.http.WriteTimeout, n.http.IdleTimeout)
	}
	c := rawConn(t, n)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v after %s, want the server to close it (EOF)", err, time.Since(start))
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("idle connection closed after %s, want about the 1s idle timeout", d)
	}
}
