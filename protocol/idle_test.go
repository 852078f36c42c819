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
