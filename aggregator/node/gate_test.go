package node

import (
	"context"
	"testing"
	"time"

	"github.com/avila-analytics/avila/protocol"
)

// blockingHandler holds each batch until release is closed.
type blockingHandler struct {
	entered chan struct{}
	release chan struct{}
}

func (h *blockingHandler) HandleBatch(context.Context, []byte, protocol.Peer) protocol.Ack {
	h.entered <- struct{}{}
	<-h.release
	return protocol.Ack{Status: protocol.AckOK, Stored: 1}
}

func (h *blockingHandler) HandleConfig(context.Context, protocol.ConfigRequest, protocol.Peer) (*protocol.Config, error) {
	return &protocol.Config{Version: protocol.Version}, nil
}

func TestGateDrainsInFlightAndRefusesNew(t *testing.T) {
	h := &blockingHandler{entered: make(chan struct{}, 1), release: make(chan struct{})}
	draining := false
	g := newGate(h, func() []protocol.Member {
		return []protocol.Member{{Name: "self", QUICAddr: "127.0.0.1:1", Draining: draining}, {Name: "other", QUICAddr: "127.0.0.1:2"}}
	})
	acks := make(chan protocol.Ack, 1)
	go func() { acks <- g.HandleBatch(context.Background(), nil, protocol.Peer{}) }()
	<-h.entered

	idle := g.drain()
	draining = true // as the cluster metadata would now say
	g.invalidate()
	ack := g.HandleBatch(context.Background(), nil, protocol.Peer{})
	if ack.Status != protocol.AckRetry || ack.Reason != drainReason {
		t.Fatalf("batch while draining: %+v, want Retry %q", ack, drainReason)
	}
	if len(ack.Members) != 2 || !ack.Members[0].Draining || ack.Members[1].Draining {
		t.Errorf("draining ack members %+v: agents need the other node and this one marked draining", ack.Members)
	}
	select {
	case <-idle:
		t.Fatal("drain finished with a batch in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(h.release)
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Fatal("drain did not finish after the in-flight batch")
	}
	if ack := <-acks; ack.Status != protocol.AckOK || len(ack.Members) != 2 {
		t.Errorf("in-flight batch: %+v, want OK with members", ack)
	}
	cfg, err := g.HandleConfig(context.Background(), protocol.ConfigRequest{}, protocol.Peer{})
	if err != nil || len(cfg.Members) != 2 {
		t.Errorf("config while draining: %+v, %v; want members", cfg, err)
	}
}

func TestActivity(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	a := newActivity(func() time.Time { return now })
	for i := range 30 {
		a.stored([]string{"a", "b", "c"}[i%3], 10)
	}
	if load, agents := a.snapshot(); load != 3 || agents != 3 {
		t.Errorf("load %v agents %d, want 3 and 3", load, agents)
	}
	now = now.Add(30 * time.Second)
	a.stored("a", 1)
	if load, agents := a.snapshot(); load != 0.1 || agents != 3 {
		t.Errorf("30s later: load %v agents %d, want 0.1 (old seconds gone) and 3", load, agents)
	}
	if seen := a.seen(); len(seen) != 3 || seen[0].Agent != "a" || !seen[0].LastBatch.Equal(now) || seen[1].LastBatch.Equal(now) {
		t.Errorf("seen %+v, want a (just now), b and c (30s ago)", seen)
	}
	now = now.Add(45 * time.Second)
	if load, agents := a.snapshot(); load != 0 || agents != 1 {
		t.Errorf("75s later: load %v agents %d, want 0 and 1", load, agents)
	}
	if seen := a.seen(); len(seen) != 1 || seen[0].Agent != "a" {
		t.Errorf("75s later seen %+v, want a alone", seen)
	}
}
