package collect

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rate is a token bucket's shape: PerSecond tokens flow in, at most Burst
// are kept. The zero Rate means no limit.
type Rate struct {
	PerSecond float64
	Burst     int
}

func (r Rate) off() bool { return r.PerSecond <= 0 }

// maxBuckets bounds a limiter's memory: past it, buckets that have filled
// up again (their key has been quiet) are dropped, and if none has, the
// oldest half goes. A dropped bucket comes back full, which only ever
// errs toward letting a request through.
const maxBuckets = 100_000

type bucket struct {
	tokens float64
	last   time.Time
}

// limiter is a set of token buckets keyed by K (client address, site).
// Safe for concurrent use.
type limiter[K comparable] struct {
	rate Rate
	now  func() time.Time

	mu      sync.Mutex
	buckets map[K]*bucket
}

func newLimiter[K comparable](rate Rate, now func() time.Time) *limiter[K] {
	return &limiter[K]{rate: rate, now: now, buckets: map[K]*bucket{}}
}

// take spends one token of key's bucket. When there is none it returns
// false and how long until one is there.
func (l *limiter[K]) take(key K) (bool, time.Duration) {
	if l == nil || l.rate.off() {
		return true, 0
	}
	burst := float64(max(l.rate.Burst, 1))
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.prune(now, burst)
		}
		b = &bucket{tokens: burst, last: now}
		l.buckets[key] = b
	}
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = math.Min(burst, b.tokens+el*l.rate.PerSecond)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate.PerSecond * float64(time.Second))
	return false, wait
}

// prune drops buckets that are full again; l.mu is held.
func (l *limiter[K]) prune(now time.Time, burst float64) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate.PerSecond >= burst {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < maxBuckets {
		return
	}
	// Every key is busy: drop about half (map order is random).
	n := 0
	for k := range l.buckets {
		delete(l.buckets, k)
		if n++; n >= maxBuckets/2 {
			break
		}
	}
}

// retryAfterSeconds rounds a wait up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// ParseRate reads a rate limit flag: "" or "0" is no limit, "N" is N per
// second with bursts of N (at least 1), "N:B" is N per second with bursts
// of B.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return Rate{}, nil
	}
	per, burst, hasBurst := strings.Cut(s, ":")
	n, err := strconv.ParseFloat(per, 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return Rate{}, fmt.Errorf("collect: rate %q: want N (per second) or N:BURST, N >= 0", s)
	}
	r := Rate{PerSecond: n, Burst: max(1, int(math.Ceil(n)))}
	if hasBurst {
		b, err := strconv.Atoi(burst)
		if err != nil || b < 1 {
			return Rate{}, fmt.Errorf("collect: rate %q: burst must be a whole number >= 1", s)
		}
		r.Burst = b
	}
	if n == 0 {
		return Rate{}, nil
	}
	return r, nil
}
