package node

import (
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// agentWindow is how long an agent counts as seen after its last batch.
	agentWindow = time.Minute
	// loadWindow is the span the load (batches per second) averages over.
	loadWindow = 10 * time.Second
)

// activity counts what the cluster status shows of a node: batches per
// second and the agents heard from lately. Fed by ingest's Stored hook.
type activity struct {
	now func() time.Time

	mu      sync.Mutex
	agents  map[string]time.Time          // agent key → last batch
	pruned  time.Time                     // last forget
	buckets [loadWindow / time.Second]int // batches per second, ring indexed by Unix second
	stamps  [loadWindow / time.Second]int64
}

func newActivity(now func() time.Time) *activity {
	return &activity{now: now, agents: map[string]time.Time{}}
}

// stored records one batch answered OK.
func (a *activity) stored(agent string, _ int) {
	now := a.now()
	sec := now.Unix()
	i := sec % int64(len(a.buckets))
	a.mu.Lock()
	defer a.mu.Unlock()
	a.agents[agent] = now
	if now.Sub(a.pruned) > agentWindow {
		// Forget agents gone quiet even if no one asks for a snapshot.
		a.forget(now)
	}
	if a.stamps[i] != sec {
		a.stamps[i], a.buckets[i] = sec, 0
	}
	a.buckets[i]++
}

// AgentSeen is an agent this node stored a batch of lately.
type AgentSeen struct {
	Agent     string    `json:"agent"`      // certificate name/queue id, or queue id without mTLS
	LastBatch time.Time `json:"last_batch"` // when its last batch was answered OK here
}

// seen lists the agents heard from within agentWindow, by name.
func (a *activity) seen() []AgentSeen {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AgentSeen, 0, len(a.agents))
	for id, at := range a.agents {
		if now.Sub(at) <= agentWindow {
			out = append(out, AgentSeen{Agent: id, LastBatch: at})
		}
	}
	slices.SortFunc(out, func(x, y AgentSeen) int { return strings.Compare(x.Agent, y.Agent) })
	return out
}

// snapshot returns batches per second over the last loadWindow and the
// number of agents seen within agentWindow; it forgets older agents.
func (a *activity) snapshot() (load float64, agents int) {
	now := a.now()
	sec := now.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	total := 0
	for i, st := range a.stamps {
		if st > sec-int64(len(a.buckets)) && st <= sec {
			total += a.buckets[i]
		}
	}
	a.forget(now)
	return float64(total) / loadWindow.Seconds(), len(a.agents)
}

// forget drops agents not heard from within agentWindow. a.mu is held.
func (a *activity) forget(now time.Time) {
	for id, at := range a.agents {
		if now.Sub(at) > agentWindow {
			delete(a.agents, id)
		}
	}
	a.pruned = now
}
