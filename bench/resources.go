package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// idle measures both binaries at rest: resident memory, and CPU time over
// r.sz.idleFor as percent of one core.
func (r *run) idle(ctx context.Context) error {
	// Let start-up work (first config fetch, upkeep jobs) settle.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	pids := map[string]int{"agent": r.st.agent.pid(), "aggregator": r.st.agg.pid()}
	before := map[string]uint64{}
	for name, pid := range pids {
		t, err := ReadCPUTicks(pid)
		if err != nil {
			return err
		}
		before[name] = t
	}
	start := time.Now()
	if err := sleep(ctx, r.sz.idleFor); err != nil {
		return err
	}
	wall := time.Since(start).Seconds()
	var total float64
	for name, pid := range pids {
		t, err := ReadCPUTicks(pid)
		if err != nil {
			return err
		}
		pct := cpuPercent(t-before[name], wall)
		total += pct
		r.set(name+"_idle_cpu_percent", pct)
		m, err := ReadMemory(pid)
		if err != nil {
			return err
		}
		r.set(name+"_rss_mb_idle", mib(m.RSSKB))
	}
	r.set("idle_cpu_percent", total)
	return nil
}

// rssSampler records the highest resident size of the binaries while load
// phases run.
type rssSampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak map[string]int64 // KiB
	err  error
}

const rssEvery = 200 * time.Millisecond

func (r *run) sampleRSS() *rssSampler {
	s := &rssSampler{stop: make(chan struct{}), done: make(chan struct{}), peak: map[string]int64{}}
	pids := map[string]int{"agent": r.st.agent.pid(), "aggregator": r.st.agg.pid()}
	go func() {
		defer close(s.done)
		t := time.NewTicker(rssEvery)
		defer t.Stop()
		for {
			for name, pid := range pids {
				m, err := ReadMemory(pid)
				s.mu.Lock()
				if err != nil && s.err == nil {
					s.err = fmt.Errorf("bench: %s: %w", name, err)
				}
				s.peak[name] = max(s.peak[name], m.RSSKB)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// finish stops sampling and records the peaks and each process's VmHWM.
func (s *rssSampler) finish(r *run) error {
	close(s.stop)
	<-s.done
	if s.err != nil {
		return s.err
	}
	for name, p := range map[string]*process{"agent": r.st.agent, "aggregator": r.st.agg} {
		r.set(name+"_rss_mb_load", mib(s.peak[name]))
		m, err := ReadMemory(p.pid())
		if err != nil {
			return err
		}
		r.set(name+"_rss_mb_hwm", mib(m.HWMKB))
	}
	return nil
}

func mib(kib int64) float64 { return float64(kib) / 1024 }
