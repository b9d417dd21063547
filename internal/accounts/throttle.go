package accounts

import (
	"sync"
	"time"
)

// throttle counts login failures per key (a source address, or an account
// at a source address) and imposes a lock that doubles with each failure
// past the free ones. It lives in memory: a restart forgets it, which the
// persistent per-account hard lock (100 failures) does not.
type throttle struct {
	mu      sync.Mutex
	now     func() time.Time
	entries map[string]*throttleEntry
}

type throttleEntry struct {
	failures int
	last     time.Time
	until    time.Time
}

func newThrottle(now func() time.Time) *throttle {
	return &throttle{now: now, entries: map[string]*throttleEntry{}}
}

// wait returns how long key must still wait (0: may try now).
func (t *throttle) wait(key string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.entries[key]
	if e == nil {
		return 0
	}
	now := t.now()
	if now.Sub(e.last) > throttleWindow && !now.Before(e.until) {
		delete(t.entries, key)
		return 0
	}
	if d := e.until.Sub(now); d > 0 {
		return d
	}
	return 0
}

// fail counts a failure; past free failures it locks key for a delay that
// doubles each time, and returns that delay (0 when still free).
func (t *throttle) fail(key string, free int) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	e := t.entries[key]
	if e != nil && now.Sub(e.last) > throttleWindow && !now.Before(e.until) {
		e = nil
	}
	if e == nil {
		if len(t.entries) >= throttleMaxEntries {
			t.sweep(now)
		}
		e = &throttleEntry{}
		t.entries[key] = e
	}
	e.failures++
	e.last = now
	over := e.failures - free
	if over <= 0 {
		return 0
	}
	d := throttleBaseDelay
	for i := 1; i < over && d < throttleMaxDelay; i++ {
		d *= 2
	}
	d = min(d, throttleMaxDelay)
	e.until = now.Add(d)
	return d
}

// reset forgets key (a successful login from that source for that account).
func (t *throttle) reset(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.entries, key)
}

// sweep drops stale entries; if every entry is live, it drops unlocked
// ones, so the table stays bounded while locks in force survive.
func (t *throttle) sweep(now time.Time) {
	for k, e := range t.entries {
		if now.Sub(e.last) > throttleWindow && !now.Before(e.until) {
			delete(t.entries, k)
		}
	}
	for k, e := range t.entries {
		if len(t.entries) < throttleMaxEntries*9/10 {
			return
		}
		if !now.Before(e.until) {
			delete(t.entries, k)
		}
	}
}
