package e2e

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// browserUA is the user agent of the harness's hits: a browser's, since
// the agent keeps bots out of the counts.
const browserUA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

// browserGet sends a GET as a browser would, with browserUA.
func browserGet(client *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", browserUA)
	return client.Do(req)
}

// loadResult is the client's tally: which hits got a 204 and which failed
// (error or any other status).
type loadResult struct {
	acked   map[int]bool
	failed  map[int]bool
	status  map[int]int // HTTP status → count; 0 for transport errors
	elapsed time.Duration
}

func (r *loadResult) hitsPerSecond() float64 {
	return float64(len(r.acked)) / r.elapsed.Seconds()
}

// sendHits sends hits numbered [0, total) from `senders` concurrent clients,
// each hit exactly once (no retries: a failed hit stays failed). acked is
// incremented per 204 so a test can act in the middle of the load. The loop
// ends when every number is sent or ctx is done.
func sendHits(ctx context.Context, s *stack, total, senders int, acked *atomic.Int64) *loadResult {
	return sendHitsPaced(ctx, s, total, senders, acked, 0)
}

// sendHitsPaced is sendHits with each sender waiting pace between hits, so a
// load can span an outage that a test stages in its middle.
func sendHitsPaced(ctx context.Context, s *stack, total, senders int, acked *atomic.Int64, pace time.Duration) *loadResult {
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: senders, MaxConnsPerHost: senders, DisableCompression: true},
	}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	res := &loadResult{acked: map[int]bool{}, failed: map[int]bool{}, status: map[int]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	begin := time.Now()
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			okIDs, badIDs, status := []int{}, []int{}, map[int]int{}
			for ctx.Err() == nil {
				n := int(next.Add(1) - 1)
				if n >= total {
					break
				}
				code := 0
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.hitURL(n), nil)
				req.Header.Set("User-Agent", browserUA) // Go's own would be filtered as a bot
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				status[code]++
				if pace > 0 {
					time.Sleep(pace) // load shape, not a synchronization
				}
				if code == http.StatusNoContent {
					okIDs = append(okIDs, n)
					if acked != nil {
						acked.Add(1)
					}
					continue
				}
				badIDs = append(badIDs, n)
				// The agent is down or refusing: back off a little instead of spinning.
				time.Sleep(20 * time.Millisecond)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range okIDs {
				res.acked[id] = true
			}
			for _, id := range badIDs {
				res.failed[id] = true
			}
			for k, v := range status {
				res.status[k] += v
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(begin)
	return res
}

// whenAcked runs fn once acked reaches n (or the load ends first).
func whenAcked(acked *atomic.Int64, n int64, done <-chan struct{}, fn func()) {
	for acked.Load() < n {
		select {
		case <-done:
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	fn()
}
