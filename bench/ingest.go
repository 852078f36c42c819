package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
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
// means the hit is fsynced, against the bare handler, with one generator:
// first with the CPUs split between an edge host and an aggregator host
// (see hostSplit; the primary figures), then with every process sharing
// every CPU (the _shared figures). The agent keeps shipping throughout.
// At the end every hit the agent acknowledged must be stored.
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
	base, err := r.drain(ctx)
	if err != nil {
		return err
	}
	if n, err := RequestBytes(hit); err == nil {
		r.set("raw_request_bytes_single_hit", float64(n))
	}

	var acked int64
	var primary hitPair // the split run's when the CPUs could be split, else the shared one's
	split, pinned, err := r.pinHosts(ctx)
	if err != nil {
		return err
	}
	if pinned {
		p, err := r.singleHitPair(ctx, "split hosts", bare, bareHit, hit)
		if uerr := r.unpinHosts(context.WithoutCancel(ctx), split); err == nil {
			err = uerr
		}
		if err != nil {
			return err
		}
		acked += p.agent.OK
		primary = p
		// The split run's backlog is shipped before the shared one starts.
		if _, err := r.drain(ctx); err != nil {
			return err
		}
	}
	s, err := r.singleHitPair(ctx, "shared CPUs", bare, bareHit, hit)
	if err != nil {
		return err
	}
	acked += s.agent.OK
	r.set("ingest_hits_per_s_shared", s.agentRate())
	r.set("bare_http_per_s_shared", s.bareRate())
	r.set("ingest_ratio_vs_bare_shared", ratio(s.agentRate(), s.bareRate()))
	if !pinned {
		primary = s
	}
	r.set("ingest_hits_per_s", primary.agentRate())
	r.set("bare_http_per_s", primary.bareRate())
	r.set("ingest_ratio_vs_bare", ratio(primary.agentRate(), primary.bareRate()))
	r.setCPUPerHit(primary)
	split01 := 0.0
	if pinned {
		split01 = 1
	}
	r.set("ingest_cpu_split", split01)
	return r.checkStored(ctx, "single-hit ingest", base, acked, "ingest_events_lost")
}

// hitPair is one bare run and one agent run under the same conditions, with
// the CPU time (USER_HZ ticks) the harness (bare) and the agent used in each.
type hitPair struct {
	bare, agent           LoadResult
	bareTicks, agentTicks uint64
	queue                 queueCounters // the agent's, during its run
}

func (p hitPair) bareRate() float64  { return perSecond(p.bare.OK, p.bare.Elapsed) }
func (p hitPair) agentRate() float64 { return perSecond(p.agent.OK, p.agent.Elapsed) }

// singleHitPair runs the generator against the bare handler, then against
// the agent.
func (r *run) singleHitPair(ctx context.Context, how string, bare *bareServer, bareHit, hit Request) (hitPair, error) {
	var p hitPair
	load := Load{Connections: r.sz.connections, Duration: r.sz.ingestFor}
	r.log.Info("single-hit ingest: bare net/http baseline", "cpus", how, "generator", r.gen.Name(), "for", load.Duration)
	t0, err := ReadCPUTicks(os.Getpid())
	if err != nil {
		return p, err
	}
	if p.bare, err = r.gen.Run(ctx, []Request{bareHit}, load); err != nil {
		return p, err
	}
	t1, err := ReadCPUTicks(os.Getpid())
	if err != nil {
		return p, err
	}
	p.bareTicks = t1 - t0
	if want := bareHit.Method + " " + bareHit.URL[len(bare.url):]; bare.first != want {
		return p, fmt.Errorf("bench: the %s generator sent %q, want %q", r.gen.Name(), bare.first, want)
	}
	r.log.Info("single-hit ingest: agent", "cpus", how, "generator", r.gen.Name(), "for", load.Duration)
	q0, err := r.queueCounters(ctx)
	if err != nil {
		return p, err
	}
	if t0, err = ReadCPUTicks(r.st.agent.pid()); err != nil {
		return p, err
	}
	if p.agent, err = r.gen.Run(ctx, []Request{hit}, load); err != nil {
		return p, err
	}
	if t1, err = ReadCPUTicks(r.st.agent.pid()); err != nil {
		return p, err
	}
	p.agentTicks = t1 - t0
	q1, err := r.queueCounters(ctx)
	if err != nil {
		return p, err
	}
	p.queue = queueCounters{appended: q1.appended - q0.appended, commits: q1.commits - q0.commits}
	r.note("single-hit ingest (agent, "+how+")", p.agent)
	r.log.Info("single-hit ingest: agent queue", "cpus", how, "commits", p.queue.commits, "events", p.queue.appended,
		"cpu_us_per_hit", cpuMicrosPer(p.agentTicks, p.agent.OK))
	r.note("single-hit ingest (bare, "+how+")", p.bare)
	if p.agent.OK == 0 {
		return p, errors.New("bench: the agent acknowledged no single hit; see agent.log")
	}
	return p, nil
}

// setCPUPerHit records the CPU time per acknowledged hit of the agent and
// of the harness process serving the bare handler, in microseconds: a
// figure far less noisy than throughput on a shared machine.
func (r *run) setCPUPerHit(p hitPair) {
	r.set("ingest_agent_cpu_us_per_hit", cpuMicrosPer(p.agentTicks, p.agent.OK))
	r.set("bare_http_cpu_us_per_hit", cpuMicrosPer(p.bareTicks, p.bare.OK))
	if p.queue.commits > 0 {
		r.set("ingest_events_per_commit", p.queue.appended/p.queue.commits)
	}
}

// hostSettle is how long pinned processes get before a measurement: a Go
// runtime adjusts GOMAXPROCS to a changed CPU affinity within a second.
const hostSettle = 1500 * time.Millisecond

// pinHosts pins the harness (and so the generator it starts) and the agent
// to the edge host's CPUs, the aggregator and the managed PostgreSQL to the
// aggregator host's. false, with a log line saying why, when the CPUs are
// not split: fewer than two CPUs, or a PostgreSQL the harness did not start.
func (r *run) pinHosts(ctx context.Context) (hostSplit, bool, error) {
	split, ok, err := splitHosts()
	switch {
	case err != nil:
		return split, false, err
	case !ok:
		r.log.Warn("single-hit ingest: fewer than two CPUs; measured with shared CPUs only")
		return split, false, nil
	case r.st.pg == nil:
		r.log.Warn("single-hit ingest: PostgreSQL was not started by the harness (--database-url), so its processes " +
			"cannot be moved to the aggregator host's CPUs; measured with shared CPUs only")
		return split, false, nil
	}
	pgPID, err := postmasterPID(filepath.Join(r.st.work, "postgres"))
	if err != nil {
		return split, false, err
	}
	pins := []struct {
		pin func(int, unix.CPUSet) error
		pid int
		set unix.CPUSet
	}{
		{pinProcess, os.Getpid(), split.edge}, {pinProcess, r.st.agent.pid(), split.edge},
		{pinProcess, r.st.agg.pid(), split.agg}, {pinTree, pgPID, split.agg},
	}
	for _, p := range pins {
		if err := p.pin(p.pid, p.set); err != nil {
			r.log.Warn("single-hit ingest: could not split the CPUs; measured with shared CPUs only", "err", err)
			return split, false, r.unpinHosts(context.WithoutCancel(ctx), split)
		}
	}
	r.log.Info("single-hit ingest: CPUs split", "edge_host", cpuList(split.edge)+" (generator, harness with the bare handler, agent)",
		"aggregator_host", cpuList(split.agg)+" (aggregator, PostgreSQL)")
	return split, true, sleep(ctx, hostSettle)
}

// unpinHosts gives every process of the run all the harness's CPUs again.
func (r *run) unpinHosts(ctx context.Context, split hostSplit) error {
	var errs []error
	for _, pid := range []int{os.Getpid(), r.st.agent.pid(), r.st.agg.pid()} {
		errs = append(errs, pinProcess(pid, split.all))
	}
	if pgPID, err := postmasterPID(filepath.Join(r.st.work, "postgres")); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, pinTree(pgPID, split.all))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return sleep(ctx, hostSettle)
}

// checkStored waits until the acked events a phase added to the stored
// count base have arrived, or r.sz.drainFor passed, and records how many did
// not under key. The generator counts only answered requests, so a few more
// than acked may be stored.
func (r *run) checkStored(ctx context.Context, what string, base, acked int64, key string) error {
	want := base + acked
	n, err := r.waitStored(ctx, want)
	if err != nil {
		return err
	}
	lost := max(want-n, 0)
	r.set(key, float64(lost))
	if lost > 0 {
		r.log.Warn(what+": acknowledged events not stored", "acknowledged", acked, "stored", n-base, "lost", lost)
	} else {
		r.log.Info(what+": every acknowledged event stored", "acknowledged", acked, "stored", n-base)
	}
	return nil
}

// waitStored polls the stored event count until it reaches want or
// r.sz.drainFor passed, and returns the last count.
func (r *run) waitStored(ctx context.Context, want int64) (int64, error) {
	deadline := time.Now().Add(r.sz.drainFor)
	for {
		n, _, err := r.stored(ctx)
		if err != nil {
			return 0, err
		}
		if n >= want || time.Now().After(deadline) {
			return n, nil
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return 0, err
		}
	}
}

// batchedIngest measures POSTs of batchEvents events through the agent.
func (r *run) batchedIngest(ctx context.Context) error {
	reqs := batchedSet(r.st.agentURL, r.st.sites[siteIngest].MeasurementID, 64)
	load := Load{Connections: r.sz.connections, Duration: r.sz.ingestFor}
	r.log.Info("batched ingest: agent", "generator", r.gen.Name(), "for", load.Duration, "events_per_post", batchEvents)
	// wrk sends one request over and over; the Go generator cycles through all.
	res, ticks, err := r.runOnAgent(ctx, reqs, load)
	if err != nil {
		return err
	}
	r.note("batched ingest", res)
	if res.OK == 0 {
		return errors.New("bench: the agent acknowledged no batched POST; see agent.log")
	}
	r.set("batched_events_per_s", perSecond(res.OK*batchEvents, res.Elapsed))
	r.set("batched_agent_cpu_us_per_event", cpuMicrosPer(ticks, res.OK*batchEvents))
	return nil
}

// runOnAgent runs the generator over reqs and returns, beside its result,
// the CPU time (USER_HZ ticks) the agent spent meanwhile: serving, and the
// sealing and shipping that go on beside it.
func (r *run) runOnAgent(ctx context.Context, reqs []Request, load Load) (LoadResult, uint64, error) {
	t0, err := ReadCPUTicks(r.st.agent.pid())
	if err != nil {
		return LoadResult{}, 0, err
	}
	res, err := r.gen.Run(ctx, reqs, load)
	if err != nil {
		return res, 0, err
	}
	t1, err := ReadCPUTicks(r.st.agent.pid())
	if err != nil {
		return res, 0, err
	}
	return res, t1 - t0, nil
}

// cpuMicrosPer is ticks of CPU time per one of n, in microseconds.
func cpuMicrosPer(ticks uint64, n int64) float64 {
	return float64(ticks) * 1e6 / userHZ / float64(max(n, 1))
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
// It starts once the earlier phases' events are stored and derived
// (drain), as the end-to-end phase does, so the agent is not measured
// beside an aggregator still busy with the batched phase's backlog.
func (r *run) mpIngest(ctx context.Context) error {
	if _, err := r.drain(ctx); err != nil {
		return err
	}
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
	res, ticks, err := r.runOnAgent(ctx, reqs, load)
	if err != nil {
		return err
	}
	r.note("measurement protocol ingest", res)
	r.set("mp_batched_events_per_s", perSecond(res.OK*mpEvents, res.Elapsed))
	r.set("mp_agent_cpu_us_per_event", cpuMicrosPer(ticks, res.OK*mpEvents))
	return nil
}
