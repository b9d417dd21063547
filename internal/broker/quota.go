package broker

import (
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens per second up to burst.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newBucket(rate, burst float64, now func() time.Time) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst, last: now(), now: now}
}

// take removes n tokens if there are enough.
func (b *bucket) take(n float64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	b.tokens += t.Sub(b.last).Seconds() * b.rate
	if b.tokens > b.burst {
		b.tokens = b.burst
	}
	b.last = t
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// flapTracker bans identities and addresses that connect too often.
type flapTracker struct {
	mu     sync.Mutex
	max    int
	now    func() time.Time
	seen   map[string][]time.Time
	bans   map[string]time.Time     // key -> banned until
	strike map[string]time.Duration // key -> last ban length
}

func newFlapTracker(now func() time.Time, max int) *flapTracker {
	return &flapTracker{now: now, max: max, seen: map[string][]time.Time{}, bans: map[string]time.Time{}, strike: map[string]time.Duration{}}
}

func (f *flapTracker) banned(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.bans[key]
	if ok && f.now().After(until) {
		delete(f.bans, key)
		return false
	}
	return ok
}

// connect notes a CONNECT by identity key from address ipKey; when the
// identity flaps it bans both, for a doubling period, and returns the ban.
func (f *flapTracker) connect(key, ipKey string) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	times := f.seen[key]
	kept := times[:0]
	for _, t := range times {
		if now.Sub(t) < flapWindow {
			kept = append(kept, t)
		}
	}
	kept = append(kept, now)
	f.seen[key] = kept
	if len(kept) <= f.max {
		return 0
	}
	ban := f.strike[key] * 2
	if ban == 0 {
		ban = flapBaseBan
	}
	if ban > flapMaxBan {
		ban = flapMaxBan
	}
	f.strike[key] = ban
	f.bans[key] = now.Add(ban)
	f.bans[ipKey] = now.Add(ban)
	delete(f.seen, key)
	return ban
}

// sweep drops stale entries so the maps stay bounded.
func (f *flapTracker) sweep() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	for k, ts := range f.seen {
		if len(ts) == 0 || now.Sub(ts[len(ts)-1]) > flapWindow {
			delete(f.seen, k)
		}
	}
	for k, until := range f.bans {
		if now.After(until) {
			delete(f.bans, k)
		}
	}
	for k := range f.strike {
		if _, banned := f.bans[k]; !banned {
			if _, active := f.seen[k]; !active {
				delete(f.strike, k)
			}
		}
	}
}
