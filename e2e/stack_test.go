package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/avila-analytics/avila/internal/testenv"
	"github.com/avila-analytics/avila/storage/postgres"
)

// stack is one aggregator and one agent on fixed loopback ports, so either
// can be killed and restarted on the same address.
type stack struct {
	t      *testing.T
	dbURL  string
	store  *postgres.Store
	db     *pgxpool.Pool // the test's own, for checks in SQL
	site   postgres.Site
	apiKey string
	agg    *proc
	agent  *proc
	ca     string
}

func newStack(t *testing.T, dbURL string) *stack {
	t.Helper()
	s := &stack{t: t, dbURL: dbURL}
	aggDir, agentDir := filepath.Join(t.TempDir(), "aggregator"), filepath.Join(t.TempDir(), "agent")
	s.agg = start(t, "avila-aggregator", []string{"DATABASE_URL=" + dbURL},
		"--listen-quic", freePort(t, "udp"), "--listen-api", freePort(t, "tcp"), "--listen-operator", freePort(t, "tcp"), "--data-dir", aggDir)
	s.ca = s.agg.ready["ca"]
	ctx := context.Background()
	store, err := postgres.Open(ctx, dbURL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	s.store, s.db = store, testenv.Pool(t, dbURL)
	s.site, err = store.CreateSite(ctx, postgres.SiteSpec{Name: "e2e", Domains: []string{"e2e.test"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.EnsureSalts(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	s.apiKey, err = store.CreateAPIKey(ctx, "e2e", []uint32{s.site.ID})
	if err != nil {
		t.Fatal(err)
	}
	s.agent = start(t, "avila-agent", nil,
		"--listen", freePort(t, "tcp"), "--data-dir", agentDir,
		"--aggregator", s.agg.ready["quic"], "--ca", s.ca)
	s.waitAgentReady()
	return s
}

// waitAgentReady waits until the agent knows its sites.
func (s *stack) waitAgentReady() {
	s.t.Helper()
	waitReady(s.t, s.agent.ready["agent"])
}

// hitURL is a gtag.js page_view whose page path carries the hit's number,
// so stored rows can be matched to acknowledged requests one by one.
func (s *stack) hitURL(n int) string {
	return fmt.Sprintf("%s/g/collect?v=2&tid=%s&cid=%d.1764000000&sid=1764000000&sct=1&en=page_view&dl=http%%3A%%2F%%2Fe2e.test%%2Fp%%2F%d&dt=Page",
		s.agent.ready["agent"], s.site.MeasurementID, n%997, n)
}

// storedHits returns how often each hit number is stored.
func (s *stack) storedHits(ctx context.Context) (map[int]int, error) {
	rows, err := s.db.Query(ctx, `
		SELECT d.value, count(*) FROM events e JOIN content_profiles c ON c.id = e.content_id JOIN dims d ON d.id = c.page_id
		WHERE e.site_id = $1 AND d.value LIKE '/p/%' AND e.flags & 256 = 0 GROUP BY d.value`, int32(s.site.ID))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int]int{}
	for rows.Next() {
		var path string
		var n int
		if err := rows.Scan(&path, &n); err != nil {
			return nil, err
		}
		id, err := strconv.Atoi(strings.TrimPrefix(path, "/p/"))
		if err != nil {
			return nil, fmt.Errorf("unexpected stored path %q", path)
		}
		out[id] = n
	}
	return out, rows.Err()
}

// pageViews asks the query API, as a dashboard would, for screenPageViews over
// the last days.
func (s *stack) pageViews() (int, error) {
	// Page views, not eventCount: the hits are page views, and eventCount
	// adds the session_start and first_visit events GA4 (and the write
	// stage) derive.
	return s.totalOf(`{"dateRanges":[{"startDate":"2daysAgo","endDate":"today"}],"metrics":[{"name":"screenPageViews"}]}`)
}

// sentEvents asks the query API for the events sent over the last days:
// eventCount without the session_start and first_visit events the write
// stage derives.
func (s *stack) sentEvents() (int, error) {
	return s.totalOf(`{"dateRanges":[{"startDate":"2daysAgo","endDate":"today"}],"metrics":[{"name":"eventCount"}],
		"dimensionFilter":{"notExpression":{"filter":{"fieldName":"eventName","inListFilter":{"values":["session_start","first_visit"]}}}}}`)
}

// totalOf runs a runReport without dimensions and returns its one
// metric's value (0 without rows).
func (s *stack) totalOf(body string) (int, error) {
	url := fmt.Sprintf("%s/v1beta/properties/%d:runReport", s.agg.ready["api"], s.site.ID)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	req.Header.Set("Authorization", "Bearer "+s.apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("runReport %d: %s", resp.StatusCode, b)
	}
	var rep struct {
		Rows []struct {
			MetricValues []struct{ Value string } `json:"metricValues"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		return 0, fmt.Errorf("runReport answer %s: %w", b, err)
	}
	if len(rep.Rows) == 0 {
		return 0, nil
	}
	return strconv.Atoi(rep.Rows[0].MetricValues[0].Value)
}

// expectExactlyOnce waits until every acknowledged hit is stored, then checks
// that nothing is stored twice and that hits stored without a 204 are among
// those whose request failed (the agent may fsync a hit and die before it
// answers).
func (s *stack) expectExactlyOnce(res *loadResult) map[int]int {
	s.t.Helper()
	var stored map[int]int
	eventually(s.t, 3*time.Minute, "all acknowledged hits stored", func() error {
		var err error
		stored, err = s.storedHits(context.Background())
		if err != nil {
			return err
		}
		missing := 0
		for id := range res.acked {
			if stored[id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged hits not stored yet (%s)", missing, len(res.acked), s.danglingEvents())
		}
		return nil
	})
	for id, n := range stored {
		if n != 1 {
			s.t.Fatalf("hit %d stored %d times", id, n)
		}
		if !res.acked[id] && !res.failed[id] {
			s.t.Fatalf("hit %d stored but never sent", id)
		}
	}
	extra := len(stored) - len(res.acked)
	s.t.Logf("acknowledged %d, failed %d, stored %d (%d stored although their request failed)",
		len(res.acked), len(res.failed), len(stored), extra)
	return stored
}

// danglingEvents says how many of the site's events are stored and how many
// of those name a page that storedHits cannot find (a content profile or page
// dims row that does not exist), to tell events lost from events stored with
// broken dictionary ids.
func (s *stack) danglingEvents() string {
	var all, dangling int
	err := s.db.QueryRow(context.Background(), `
		SELECT count(*), count(*) FILTER (WHERE d.id IS NULL)
		FROM events e LEFT JOIN content_profiles c ON c.id = e.content_id LEFT JOIN dims d ON d.id = c.page_id
		WHERE e.site_id = $1`, int32(s.site.ID)).Scan(&all, &dangling)
	if err != nil {
		return fmt.Sprintf("count events: %v", err)
	}
	return fmt.Sprintf("the site has %d events, %d of them without their page", all, dangling)
}
