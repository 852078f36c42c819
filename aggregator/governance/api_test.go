package governance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/avila-analytics/avila/aggregator/governance"
	"github.com/avila-analytics/avila/storage/postgres"
)

func call(t *testing.T, h http.Handler, method, path, key, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s: %d %q is not JSON: %v", method, path, rec.Code, rec.Body, err)
	}
	return rec.Code, out
}

func errMessage(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

// TestGDPRAPIScopesAndAsyncRequests: only admin keys of the property
// reach /v1/gdpr/; a request is accepted at once (202), done by the worker,
// and its state and result are read back by id; an erasure removes the
// subject.
func TestGDPRAPIScopesAndAsyncRequests(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	site, other := s.site(t, "api"), s.site(t, "other")
	rng := rand.New(rand.NewPCG(19, 5))
	subj, key, _ := subjectEvents(rng, site, time.Now())
	s.write(t, append(subj, seed(rng, site, 5, 3, time.Now())...))

	read, err := s.store.CreateAPIKey(ctx, "reader", []uint32{site})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := s.store.CreateScopedAPIKey(ctx, "dpo", []uint32{site}, postgres.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	otherAdmin, err := s.store.CreateScopedAPIKey(ctx, "other dpo", []uint32{other}, postgres.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	h := governance.NewHandler(s.store, nil, nil)
	body := fmt.Sprintf(`{"property": "%d", "clientId": %q}`, site, subjectCookie)

	code, out := call(t, h, http.MethodPost, "/v1/gdpr/exports", "", body)
	if code != http.StatusUnauthorized {
		t.Fatalf("no key: %d %v", code, out)
	}
	code, out = call(t, h, http.MethodPost, "/v1/gdpr/exports", read, body)
	if code != http.StatusForbidden || !strings.Contains(errMessage(out), `scope "read"`) || !strings.Contains(errMessage(out), "admin") {
		t.Fatalf("read key: %d %v, want 403 naming the scopes", code, out)
	}
	code, out = call(t, h, http.MethodPost, "/v1/gdpr/erasures", otherAdmin, body)
	if code != http.StatusForbidden || !strings.Contains(errMessage(out), fmt.Sprintf("properties/%d", site)) {
		t.Fatalf("admin key of another property: %d %v", code, out)
	}
	for _, bad := range []string{`{"property": "x", "clientId": "1.2"}`, `{"property": "1"}`, `{"property": "1", "clientId": "nope"}`,
		`{"property": "1", "clientId": "1.2", "userId": "u"}`, `{"property": "1", "cookie": "1.2"}`, `not json`} {
		bad = strings.ReplaceAll(bad, `"1"`, fmt.Sprintf(`"%d"`, site))
		if code, out := call(t, h, http.MethodPost, "/v1/gdpr/exports", admin, bad); code != http.StatusBadRequest || errMessage(out) == "" {
			t.Fatalf("body %s: %d %v, want 400 with a message", bad, code, out)
		}
	}

	code, exp := call(t, h, http.MethodPost, "/v1/gdpr/exports", admin, body)
	if code != http.StatusAccepted || exp["state"] != "PENDING" {
		t.Fatalf("export request: %d %v", code, exp)
	}
	code, era := call(t, h, http.MethodPost, "/v1/gdpr/erasures", admin, body)
	if code != http.StatusAccepted {
		t.Fatalf("erasure request: %d %v", code, era)
	}
	// The worker runs them in order, export first.
	w := governance.NewWorker(&governance.Service{Store: s.store}, governance.WorkerConfig{})
	ran := []bool{w.RunOne(ctx), w.RunOne(ctx), w.RunOne(ctx)}
	if !ran[0] || !ran[1] || ran[2] {
		t.Fatalf("the worker ran %v, want exactly the two requests", ran)
	}
	code, exp = call(t, h, http.MethodGet, "/v1/gdpr/exports/"+exp["id"].(string), admin, "")
	result, _ := exp["result"].(map[string]any)
	events, _ := result["events"].([]any)
	if code != http.StatusOK || exp["state"] != "DONE" || len(events) != len(subj) {
		t.Fatalf("export state: %d %v with %d events, want DONE with %d", code, exp["state"], len(events), len(subj))
	}
	code, era = call(t, h, http.MethodGet, "/v1/gdpr/erasures/"+era["id"].(string), admin, "")
	res, _ := era["result"].(map[string]any)
	if code != http.StatusOK || era["state"] != "DONE" || res["events"] != float64(len(subj)) {
		t.Fatalf("erasure state: %d %v", code, era)
	}
	// Another property's admin cannot read it; the export id is not an erasure's.
	if code, _ := call(t, h, http.MethodGet, "/v1/gdpr/erasures/"+era["id"].(string), otherAdmin, ""); code != http.StatusNotFound {
		t.Fatalf("another property's key read the erasure: %d", code)
	}
	if code, _ := call(t, h, http.MethodGet, "/v1/gdpr/erasures/"+exp["id"].(string), admin, ""); code != http.StatusNotFound {
		t.Fatalf("an export read as an erasure: %d", code)
	}
	data, err := s.store.SubjectData(ctx, site, []uint64{key})
	if err != nil || len(data.Events) != 0 {
		t.Fatalf("after the API erasure: %d events (%v)", len(data.Events), err)
	}
	rows, err := s.store.AuditRows(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range rows {
		if r.Site == site {
			actions = append(actions, r.Action+" by "+r.Actor)
		}
	}
	want := []string{"gdpr.export by api:" + admin[:postgres.KeyPrefixLen], "gdpr.erase by api:" + admin[:postgres.KeyPrefixLen]}
	if strings.Join(actions, ", ") != strings.Join(want, ", ") {
		t.Fatalf("audit of the site: %v, want %v", actions, want)
	}
}

// TestGDPRWorkerResumesAfterRestart: a request claimed by a worker that
// died is taken up again once stale; Run stops when its context ends.
func TestGDPRWorkerResumesAfterRestart(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	site := s.site(t, "restart")
	req, err := s.store.CreateGDPRRequest(ctx, postgres.GDPRRequest{Site: site, Kind: "erasure", Identity: "client_id", Subject: 42, RequestedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	// The first worker claims it and dies before finishing.
	if _, ok, err := s.store.ClaimGDPRRequest(ctx, time.Hour); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if _, ok, _ := s.store.ClaimGDPRRequest(ctx, time.Hour); ok {
		t.Fatal("a running request was claimed twice")
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	w := governance.NewWorker(&governance.Service{Store: s.store}, governance.WorkerConfig{Every: 10 * time.Millisecond, Stale: 50 * time.Millisecond})
	go func() { w.Run(runCtx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := s.store.GDPRRequestByID(ctx, req.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == "done" && r.Attempts == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("request still %s after %d attempts", r.State, r.Attempts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not stop on cancel")
	}
	var n int
	if err := s.db.QueryRow(ctx, "SELECT count(*) FROM gdpr_tombstones WHERE site_id = $1 AND key = 42", int32(site)).Scan(&n); err != nil || n != 1 {
		t.Fatalf("tombstone of the resumed erasure: %d %v", n, err)
	}
}

// TestGDPRWorkerWokenByAcceptedRequest: a worker whose looks found
// nothing waits long between them, but a request accepted by the API of
// its node wakes it, so the request runs without waiting for the next look.
func TestGDPRWorkerWokenByAcceptedRequest(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	site := s.site(t, "wake")
	admin, err := s.store.CreateScopedAPIKey(ctx, "dpo", []uint32{site}, postgres.ScopeAdmin)
	if err != nil {
		t.Fatal(err)
	}
	// A request already stored is run by the first look; after it the
	// looks are an hour apart, so only a wake can run the next one within
	// the test.
	first, err := s.store.CreateGDPRRequest(ctx, postgres.GDPRRequest{Site: site, Kind: "erasure", Identity: "client_id", Subject: 42, RequestedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	w := governance.NewWorker(&governance.Service{Store: s.store}, governance.WorkerConfig{Every: time.Hour})
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(runCtx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r, err := s.store.GDPRRequestByID(ctx, first.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == "done" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored request is still %s after 10 s", r.State)
		}
	}

	h := governance.NewHandler(s.store, nil, w.Wake)
	body := fmt.Sprintf(`{"property": "%d", "clientId": %q}`, site, subjectCookie)
	code, exp := call(t, h, http.MethodPost, "/v1/gdpr/exports", admin, body)
	if code != http.StatusAccepted {
		t.Fatalf("export request: %d %v", code, exp)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, exp = call(t, h, http.MethodGet, "/v1/gdpr/exports/"+exp["id"].(string), admin, "")
		if code == http.StatusOK && exp["state"] == "DONE" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("export still %v 10 s after it was accepted", exp["state"])
		}
	}
}
