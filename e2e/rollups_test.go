package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avila-analytics/avila/internal/testenv"
)

// SIGKILL the agent under load, so batches are resent: the daily rollups
// and the sessions, written in each batch's transaction, still count every
// stored event once (rollups page by page; every event in its session),
// and the query API's reports from them agree with the events.
func TestRollupsExactlyOnceThroughAgentKill(t *testing.T) {
	s := newStack(t, testenv.PostgresURL(t))
	var acked atomic.Int64
	done := make(chan struct{})
	go whenAcked(&acked, 6_000, done, func() {
		s.agent.kill()
		s.agent.restart()
	})
	res := sendHits(context.Background(), s, 20_000, 32, &acked)
	close(done)
	if len(res.failed) == 0 {
		t.Fatal("no request failed: the agent was not killed during the load")
	}
	stored := s.expectExactlyOnce(res)
	ctx := context.Background()
	// One statement, one snapshot: events and rollups commit together, so
	// they agree at any instant, not only once the load is over.
	var events, rolled, pagesOff, sessions, inSessions, sessionless int
	err := s.db.QueryRow(ctx, `
		WITH ev AS (SELECT COALESCE(c.page_id, 0) AS page_id, count(*) AS n FROM events e
		            LEFT JOIN content_profiles c ON c.id = e.content_id WHERE e.site_id = $1 GROUP BY 1),
		     ro AS (SELECT dim_id AS page_id, sum(events) AS n FROM rollup_days WHERE site_id = $1 AND kind = 2 GROUP BY 1)
		SELECT (SELECT count(*) FROM events WHERE site_id = $1),
		       (SELECT COALESCE(sum(events), 0) FROM rollup_days WHERE site_id = $1 AND kind = 0),
		       (SELECT count(*) FROM ev FULL JOIN ro USING (page_id) WHERE ev.n IS DISTINCT FROM ro.n),
		       (SELECT count(*) FROM sessions WHERE site_id = $1),
		       (SELECT COALESCE(sum(events), 0) FROM sessions WHERE site_id = $1),
		       (SELECT count(*) FROM events e WHERE e.site_id = $1 AND NOT EXISTS (SELECT 1 FROM sessions x
		           WHERE x.site_id = e.site_id AND x.visitor_id = e.visitor_id AND x.session_id = e.session_id))`,
		int32(s.site.ID)).Scan(&events, &rolled, &pagesOff, &sessions, &inSessions, &sessionless)
	if err != nil {
		t.Fatal(err)
	}
	if events < len(stored) || rolled != events || pagesOff != 0 {
		t.Fatalf("events %d (hits stored %d), rollups count %d, %d pages whose rollup differs from their events", events, len(stored), rolled, pagesOff)
	}
	if sessions == 0 || inSessions != events || sessionless != 0 {
		t.Fatalf("%d sessions hold %d events of %d; %d events without their session", sessions, inSessions, events, sessionless)
	}
	if got := s.report(t, `{"dateRanges":[{"startDate":"1daysAgo","endDate":"today"}],"metrics":[{"name":"sessions"},{"name":"eventCount"}]}`); got[0] != float64(sessions) || got[1] != float64(events) {
		t.Errorf("session report: sessions %v, eventCount %v; stored %d sessions of %d events", got[0], got[1], sessions, events)
	}

	var exactUsers int
	if err := s.db.QueryRow(ctx, "SELECT count(DISTINCT visitor_id) FROM events WHERE site_id = $1", int32(s.site.ID)).Scan(&exactUsers); err != nil {
		t.Fatal(err)
	}
	got := s.report(t, `{"dateRanges":[{"startDate":"1daysAgo","endDate":"today"}],"metrics":[{"name":"eventCount"},{"name":"totalUsers"}]}`)
	if got[0] != float64(events) {
		t.Errorf("runReport eventCount %v, events stored %d", got[0], events)
	}
	if math.Abs(got[1]-float64(exactUsers)) > 0.02*float64(exactUsers) {
		t.Errorf("runReport totalUsers %v, exact %d", got[1], exactUsers)
	}
	t.Logf("%d events, rollups and %d sessions agree; totalUsers %v from sketches, %d exact", events, sessions, got[1], exactUsers)
}

// report runs a runReport body on the stack's site and returns the first
// row's metric values.
func (s *stack) report(t *testing.T, body string) []float64 {
	t.Helper()
	url := fmt.Sprintf("%s/v1beta/properties/%d:runReport", s.agg.ready["api"], s.site.ID)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("runReport %d: %s", resp.StatusCode, b)
	}
	var rep struct {
		Rows []struct {
			MetricValues []struct{ Value string } `json:"metricValues"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Rows) == 0 {
		t.Fatalf("runReport answer %s: %v", b, err)
	}
	var out []float64
	for _, v := range rep.Rows[0].MetricValues {
		x, err := strconv.ParseFloat(v.Value, 64)
		if err != nil {
			t.Fatalf("metric value %q: %v", v.Value, err)
		}
		out = append(out, x)
	}
	return out
}
