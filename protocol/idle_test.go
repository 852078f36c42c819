package protocol

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

// udpRelay forwards datagrams between one client and a server until
// blackhole is set, then drops them all, as a frozen or killed peer would.
type udpRelay struct {
	front     *net.UDPConn
	back      *net.UDPConn
	blackhole atomic.Bool
	mu        sync.Mutex
	client    *net.UDPAddr
}

func newRelay(t *testing.T, server string) *udpRelay {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	saddr, _ := net.ResolveUDPAddr("udp", server)
	back, err := net.DialUDP("udp", nil, saddr)
	if err != nil {
		t.Fatal(err)
	}
	r := &udpRelay{front: front, back: back}
	t.Cleanup(func() { front.Close(); back.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.client = from
			r.mu.Unlock()
			if !r.blackhole.Load() {
				_, _ = back.Write(buf[:n])
			}
		}
	}()
	go func() {
		buf := make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			to := r.client
			r.mu.Unlock()
			if to != nil && !r.blackhole.Load() {
				_, _ = front.WriteToUDP(buf[:n], to)
			}
		}
	}()
	return r
}

// A client with a short IdleTimeout gives up on a silent aggregator by
// itself, long before the request's own deadline; one with the default
// waits for that deadline.
func TestClientIdleTimeoutDetectsSilentPeer(t *testing.T) {
	srv, cliTLS := startServer(t, &recordingHandler{})
	wire, _ := EncodeBatch(&Batch{Version: Version, AgentID: "a", Seq: 1, Events: []Event{{Site: 1, Name: "x"}}})
	f := func(opts ClientOptions) error {
		t.Helper()
		relay := newRelay(t, srv.Addr().String())
		c := NewClientOptions(relay.front.LocalAddr().String(), cliTLS, opts)
		defer c.Close()
		if ack, err := c.SendBatch(context.Background(), wire); err != nil || ack.Status != AckOK {
			t.Fatalf("before the silence: %+v, %v", ack, err)
		}
		relay.blackhole.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		defer cancel()
		_, err := c.SendBatch(ctx, wire)
		return err
	}
	var idle *quic.IdleTimeoutError
	if err := f(ClientOptions{IdleTimeout: time.Second}); !errors.As(err, &idle) {
		t.Errorf("short idle timeout: %v, want an idle timeout error", err)
	}
	if err := f(ClientOptions{}); errors.As(err, &idle) || err == nil {
		t.Errorf("default idle timeout: %v, want the request's deadline first", err)
	}
}

// gateHandler answers batches only once open is closed, after saying on
// entered that one arrived.
type gateHandler struct {
	recordingHandler
	entered chan struct{}
	open    chan struct{}
}

func (h *gateHandler) HandleBatch(ctx context.Context, wire []byte, p Peer) Ack {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.open
	return h.recordingHandler.HandleBatch(ctx, wire, p)
}

// A client with CloseIdle closes its connection once it has carried no
// request for that long, and the next request dials again; a request that
// lasts longer than CloseIdle keeps the connection, and so do Touches.
func TestClientClosesIdleConnection(t *testing.T) {
	const closeIdle = 100 * time.Millisecond
	h := &gateHandler{entered: make(chan struct{}, 1), open: make(chan struct{})}
	srv, cliTLS := startServer(t, h)
	c := NewClientOptions(srv.Addr().String(), cliTLS, ClientOptions{CloseIdle: closeIdle})
	t.Cleanup(func() { _ = c.Close() })
	wire, _ := EncodeBatch(&Batch{Version: Version, AgentID: "a", Seq: 1, Events: []Event{{Site: 1, Name: "x"}}})
	ctx := context.Background()

	// Connected ahead (the idle close is armed), then a request held by
	// the aggregator for many times CloseIdle.
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		ack, err := c.SendBatch(ctx, wire)
		if err == nil && ack.Status != AckOK {
			err = errors.New("ack " + ack.Status.String())
		}
		sent <- err
	}()
	<-h.entered
	held := time.Now()
	for time.Since(held) < 5*closeIdle {
		if !c.Connected() {
			t.Fatal("the connection was closed while a request was in progress")
		}
		time.Sleep(closeIdle / 4)
	}
	close(h.open)
	if err := <-sent; err != nil {
		t.Fatalf("request longer than CloseIdle: %v", err)
	}

	waitDisconnected := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); c.Connected(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the connection is still up 10 s later", what)
			}
		}
	}
	waitDisconnected("after the last request")
	if ack, err := c.SendBatch(ctx, wire); err != nil || ack.Status != AckOK {
		t.Fatalf("request after the idle close: %v %v", ack.Status, err)
	}
	if n := h.batches.Load(); n != 2 {
		t.Fatalf("aggregator stored %d batches, want 2", n)
	}

	// Touches keep it up as requests do.
	touched := time.Now()
	for time.Since(touched) < 5*closeIdle {
		c.Touch()
		if !c.Connected() {
			t.Fatal("the connection was closed although touched")
		}
		time.Sleep(closeIdle / 4)
	}
	waitDisconnected("after the last touch")
}
