package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one HTTP request a load generator sends over and over.
type Request struct {
	Method string
	URL    string // absolute http:// URL, loopback only
	Header http.Header
	Body   []byte
}

// Load bounds a load run: it stops at Duration or after MaxRequests
// requests (0: no count bound), whichever comes first.
type Load struct {
	Connections int // keep-alive connections, one request in flight on each
	Duration    time.Duration
	MaxRequests int64
}

// LoadResult counts what a load run did.
type LoadResult struct {
	Requests int64         // requests answered with any status
	OK       int64         // answered 2xx
	Errors   int64         // requests that got no answer (connect, read, write errors, timeouts)
	Elapsed  time.Duration // from the first request sent to the last answer
	// Statuses counts answers by status; the Go generator fills it, wrk
	// only tells 2xx/3xx from the rest.
	Statuses map[int]int64
}

// Generator is a load generator. Two implement it: wrk when installed, and
// GoLoad.
type Generator interface {
	Name() string
	// Run sends reqs (round robin; wrk sends only the first) until l's bound.
	Run(ctx context.Context, reqs []Request, l Load) (LoadResult, error)
}

// requestTimeout bounds one request of the Go generator, so a stuck server
// cannot stall a run past its duration by more than this.
const requestTimeout = 10 * time.Second

// GoLoad is the harness's own load generator: Connections goroutines, each
// holding one keep-alive connection and sending the next request as soon as
// the previous answer is read, like wrk does.
type GoLoad struct{}

// Name implements Generator.
func (GoLoad) Name() string { return "go" }

// Run implements Generator.
func (GoLoad) Run(ctx context.Context, reqs []Request, l Load) (LoadResult, error) {
	if len(reqs) == 0 || l.Connections <= 0 || l.Duration <= 0 {
		return LoadResult{}, errors.New("bench: load: want at least one request, connection and a duration")
	}
	tr := &http.Transport{
		MaxIdleConnsPerHost: l.Connections,
		MaxConnsPerHost:     l.Connections,
		DisableCompression:  true,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: requestTimeout}

	ctx, cancel := context.WithTimeout(ctx, l.Duration)
	defer cancel()
	var (
		tickets atomic.Int64 // requests claimed; each worker claims one before sending
		mu      sync.Mutex
		total   = LoadResult{Statuses: make(map[int]int64)}
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range l.Connections {
		wg.Go(func() {
			local := LoadResult{Statuses: make(map[int]int64)}
			for ctx.Err() == nil {
				n := tickets.Add(1)
				if l.MaxRequests > 0 && n > l.MaxRequests {
					break
				}
				status, err := send(ctx, client, &reqs[(n-1)%int64(len(reqs))])
				switch {
				case err != nil && ctx.Err() != nil:
					// Cut off by the end of the run: neither answered nor failed.
				case err != nil:
					local.Errors++
				default:
					local.Requests++
					local.Statuses[status]++
					if status >= 200 && status < 300 {
						local.OK++
					}
				}
			}
			mu.Lock()
			total.Requests += local.Requests
			total.OK += local.OK
			total.Errors += local.Errors
			for s, c := range local.Statuses {
				total.Statuses[s] += c
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	total.Elapsed = time.Since(start)
	return total, nil
}

// send does one request and reads its answer to the end, so the
// connection is reused.
func send(ctx context.Context, c *http.Client, r *Request) (int, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return 0, fmt.Errorf("bench: load: %w", err)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// RequestBytes is the size of r as an HTTP/1.1 client writes it: request
// line, headers (Host, User-Agent, Content-Length and r's own) and body.
func RequestBytes(r Request) (int, error) {
	req, err := http.NewRequest(r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return 0, fmt.Errorf("bench: request size: %w", err)
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	var cw countWriter
	if err := req.Write(&cw); err != nil {
		return 0, fmt.Errorf("bench: request size: %w", err)
	}
	return int(cw), nil
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
