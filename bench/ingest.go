package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// bareServer is the baseline of single-hit ingest: a bare net/http
// handler that answers 204 and does nothing else. It remembers the first
// request so the run can check the generator sent what it was given.
type bareServer struct {
	srv   *http.Server
	url   string
	once  sync.Once
	first string // method and request URI of the first request
}

func startBare() (*bareServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: bare server: %w", err)
	}
	b := &bareServer{url: "http://" + ln.Addr().String()}
	b.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.once.Do(func() { b.first = r.Method + " " + r.URL.RequestURI() })
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

func (b *bareServer) close() { _ = b.srv.Close() }

// singleHitIngest measures single GET hits through the agent, whose 204
// means the hit is fsynced, against the bare handler, with one generator.
func (r *run) singleHitIngest(ctx context.Context) error {
	bare, err := startBare()
	if err != nil {
		return err
	}
	defer bare.close()
	hit := singleHit(r.st.agentURL, r.st.sites[siteIngest].MeasurementID)
	bareHit, err := withBase(hit, bare.url)
	if err != nil {
		return err
	}
	load := Load{Connections: r.sz.connections, Duration: r.sz.ingestFor}

	r.log.Info("single-hit ingest: bare net/http baseline", "generator", r.gen.Name(), "for", load.Duration)
	b, err := r.gen.Run(ctx, []Request{bareHit}, load)
	if err != nil {
		return err
	}
	if want := bareHit.Method + " " + bareHit.URL[len(bare.url):]; bare.first != want {
		return fmt.Errorf("bench: the %s generator sent %q, want %q", r.gen.Name(), bare.first, want)
	}
	r.log.Info("single-hit ingest: agent", "generator", r.gen.Name(), "for", load.Duration)
	a, err := r.gen.Run(ctx, []Request{hit}, load)
	if err != nil {
		return err
	}
	r.note("single-hit ingest (agent)", a)
	r.note("single-hit ingest (bare)", b)
	if a.OK == 0 {
		return errors.New("bench: the agent acknowledged no single hit; see agent.log")
	}
	agentRate, bareRate := perSecond(a.OK, a.Elapsed), perSecond(b.OK, b.Elapsed)
	r.set("ingest_hits_per_s", agentRate)
	r.set("bare_http_per_s", bareRate)
	r.set("ingest_ratio_vs_bare", ratio(agentRate, bareRate))
	if n, err := RequestBytes(hit); err == nil {
		r.set("raw_request_bytes_single_hit", float64(n))
	}
	return nil
}

// batchedIngest measures POSTs of batchEvents events through the agent.
func (r *run) batchedIngest(ctx context.Context) error {
	reqs := batchedSet(r.st.agentURL, r.st.sites[siteIngest].MeasurementID, 64)
	load := Load{Connections: r.sz.connections, Duration: r.sz.ingestFor}
	r.log.Info("batched ingest: agent", "generator", r.gen.Name(), "for", load.Duration, "events_per_post", batchEvents)
	// wrk sends one request over and over; the Go generator cycles through all.
	res, err := r.gen.Run(ctx, reqs, load)
	if err != nil {
		return err
	}
	r.note("batched ingest", res)
	if res.OK == 0 {
		return errors.New("bench: the agent acknowledged no batched POST; see agent.log")
	}
	r.set("batched_events_per_s", perSecond(res.OK*batchEvents, res.Elapsed))
	return nil
}

// note logs a load run and warns when answers were not all 2xx: such runs
// still count only what was acknowledged.
func (r *run) note(what string, res LoadResult) {
	args := []any{"requests", res.Requests, "ok", res.OK, "errors", res.Errors, "elapsed", res.Elapsed.Round(time.Millisecond)}
	if len(res.Statuses) > 0 {
		args = append(args, "statuses", fmt.Sprint(res.Statuses))
	}
	if res.OK != res.Requests || res.Errors > 0 {
		r.log.Warn(what+": not every request was acknowledged", args...)
		return
	}
	r.log.Info(what, args...)
}

// mpIngest measures Measurement Protocol batches of mpEvents events
// through the agent, when the agent serves /mp/collect: a probe request
// answered 404 or 405 means it does not yet, and the figure is left out.
func (r *run) mpIngest(ctx context.Context) error {
	site := r.st.sites[siteIngest]
	reqs := make([]Request, 64)
	for i := range reqs {
		reqs[i] = mpBatch(r.st.agentURL, site.MeasurementID, site.APISecret, i)
	}
	status, err := send(ctx, http.DefaultClient, &reqs[0])
	if err != nil {
		return fmt.Errorf("bench: measurement protocol probe: %w", err)
	}
	switch {
	case status == http.StatusNotFound || status == http.StatusMethodNotAllowed:
		r.log.Warn("the agent does not serve /mp/collect; Measurement Protocol ingest not measured", "status", status)
		return nil
	case status < 200 || status > 299:
		return fmt.Errorf("bench: measurement protocol probe answered %d; see agent.log", status)
	}
	load := Load{Connections: r.sz.connections, Duration: r.sz.ingestFor}
	r.log.Info("measurement protocol ingest: agent", "generator", r.gen.Name(), "for", load.Duration, "events_per_post", mpEvents)
	res, err := r.gen.Run(ctx, reqs, load)
	if err != nil {
		return err
	}
	r.note("measurement protocol ingest", res)
	r.set("mp_batched_events_per_s", perSecond(res.OK*mpEvents, res.Elapsed))
	return nil
}
