package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/storage/postgres"
)

// TestNodeServesGDPRRequests: the aggregator's API answers /v1/gdpr/ for
// admin keys only, and its worker does the accepted request.
func TestNodeServesGDPRRequests(t *testing.T) {
	ctx := context.Background()
	cn := startCacheNode(t, Config{})
	if err := cn.n.store.SetIdentitySecret(ctx, cn.site, make([]byte, 32)); err != nil {
		t.Fatal(err)
	}
	admin, err := cn.n.store.CreateScopedAPIKey(ctx, "dpo", []uint32{cn.site}, postgres.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	post := func(key string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, cn.n.APIURL+"/v1/gdpr/erasures",
			strings.NewReader(fmt.Sprintf(`{"property": "%d", "clientId": "GA1.1.123.456"}`, cn.site)))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	if code, out := post(cn.key); code != http.StatusForbidden || !strings.Contains(fmt.Sprint(out), "admin") {
		t.Fatalf("read key: %d %v, want 403 naming the admin scope", code, out)
	}
	code, out := post(admin)
	if code != http.StatusAccepted {
		t.Fatalf("admin key: %d %v", code, out)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, err := cn.n.store.GDPRRequestByID(ctx, mustInt(t, out["id"]))
		if err != nil {
			t.Fatal(err)
		}
		if r.State == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request still %s (%s)", r.State, r.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := scrape(t, cn.n.OperatorURL, "analytics_gdpr_requests_total", "kind", "erasure", "state", "done"); n != 1 {
		t.Fatalf("analytics_gdpr_requests_total{erasure,done} = %v, want 1", n)
	}
}

func mustInt(t *testing.T, v any) int64 {
	t.Helper()
	var id int64
	if _, err := fmt.Sscan(fmt.Sprint(v), &id); err != nil {
		t.Fatalf("id %v: %v", v, err)
	}
	return id
}
