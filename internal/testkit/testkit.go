// Package testkit holds helpers for tests only: a fake clock and a
// deterministic randomness source. Production code never imports it.
package testkit

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"
)

// Clock is a manual clock safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the current fake time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Rand is a deterministic io.Reader (SHA-256 in counter mode over a seed),
// for tests that need repeatable "random" bytes. Never use it outside tests.
type Rand struct {
	mu   sync.Mutex
	seed [32]byte
	ctr  uint64
	buf  []byte
}

// NewRand returns a deterministic reader for seed.
func NewRand(seed string) *Rand { return &Rand{seed: sha256.Sum256([]byte(seed))} }

// Read fills p.
func (r *Rand) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			var b [40]byte
			copy(b[:], r.seed[:])
			binary.BigEndian.PutUint64(b[32:], r.ctr)
			r.ctr++
			s := sha256.Sum256(b[:])
			r.buf = s[:]
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}
