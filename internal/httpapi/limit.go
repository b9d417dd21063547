package httpapi

import (
	"net/http"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/api"
)

// sourceLimiter bounds how fast one source address may call the public
// routes (setup, login, enrollment, renewal, ...): each refusal on them is
// journaled, so an unbounded flood would flood the journal and burn CPU on
// hashing and signature checks. Beyond the rate: 429 with Retry-After.
type sourceLimiter struct {
	mu      sync.Mutex
	rate    float64
	burst   float64
	now     func() time.Time
	buckets map[string]*srcBucket
}

type srcBucket struct {
	tokens float64
	last   time.Time
}

func newSourceLimiter(rate, burst float64, now func() time.Time) *sourceLimiter {
	return &sourceLimiter{rate: rate, burst: burst, now: now, buckets: map[string]*srcBucket{}}
}

func (l *sourceLimiter) allow(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) >= maxLimitedSources {
			// Drop full buckets first: they carry no state worth keeping.
			for k, v := range l.buckets {
				if v.tokens+t.Sub(v.last).Seconds()*l.rate >= l.burst {
					delete(l.buckets, k)
				}
			}
			if len(l.buckets) >= maxLimitedSources {
				return false // fail closed under an address-spraying flood
			}
		}
		b = &srcBucket{tokens: l.burst, last: t}
		l.buckets[src] = b
	}
	b.tokens += t.Sub(b.last).Seconds() * l.rate
	if b.tokens > l.burst {
		b.tokens = l.burst
	}
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (h *Handler) limitPublic(w http.ResponseWriter, r *http.Request) bool {
	if h.public.allow(source(r)) {
		return true
	}
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusTooManyRequests, api.CodeRateLimited, "too many requests from this address to the public routes; slow down")
	return false
}
