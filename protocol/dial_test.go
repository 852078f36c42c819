package protocol

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"testing"
	"time"
)

// blackHole is a UDP socket that reads every packet and answers none, as a
// killed aggregator's address does; it records the senders.
type blackHole struct {
	conn *net.UDPConn

	mu      sync.Mutex
	senders map[string]bool
	first   chan struct{} // closed at the first packet
}

func newBlackHole(t *testing.T) *blackHole {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{conn: conn, senders: map[string]bool{}, first: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			b.mu.Lock()
			if len(b.senders) == 0 {
				close(b.first)
			}
			b.senders[from.String()] = true
			b.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	return b
}

func (b *blackHole) sources() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.senders)
}

// Requests that need a connection while none is up share one dial, which
// does not hold the client's lock: to a node that does not answer, four
// requests cost one handshake timeout together (one dial, from one source
// port), not four in turn, and the client answers meanwhile.
func TestConcurrentRequestsShareOneDialOutsideTheLock(t *testing.T) {
	hole := newBlackHole(t)
	c := NewClientOptions(hole.conn.LocalAddr().String(), &tls.Config{InsecureSkipVerify: true},
		ClientOptions{IdleTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 4
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.SendBatch(ctx, []byte("batch"))
			errs <- err
		}()
	}
	select {
	case <-hole.first:
	case <-ctx.Done():
		t.Fatal("no dial reached the address")
	}
	// The dial is under way (it gives up after 1 s of silence); the client
	// is not locked meanwhile.
	if c.Connected() {
		t.Fatal("connected to a black hole")
	}
	select {
	case err := <-errs:
		t.Fatalf("a request ended (%v) while Connected ran: the dial did not outlast it", err)
	default:
	}
	for range n {
		if err := <-errs; err == nil {
			t.Fatal("a request to a black hole succeeded")
		}
	}
	if got := hole.sources(); got != 1 {
		t.Errorf("%d requests dialed from %d source ports, want one shared dial", n, got)
	}
	// The next request dials afresh.
	if err := c.Connect(ctx); err == nil {
		t.Fatal("connected to a black hole")
	}
	if got := hole.sources(); got != 2 {
		t.Errorf("after a failed dial, the next dial came from %d source ports in all, want 2", got)
	}
}
