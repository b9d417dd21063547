// Package journal is Rampart's append-only, tamper-evident event journal and
// its verifier.
//
// Every security-relevant event is recorded as an Entry whose Hash covers its
// fields and the previous entry's hash (a hash chain starting from
// GenesisHash), and whose MAC is HMAC-SHA256 of that hash under a secret key
// the hub keeps encrypted. Every CheckpointEvery entries, every
// CheckpointInterval and on Close the journal signs its head with Ed25519.
// Verify walks the chain and names the first entry that was modified,
// removed, inserted or reordered, and any checkpoint that is forged or
// points past the end of a truncated journal. An attacker who can write the
// database file, but holds neither key, cannot rewrite history unnoticed.
//
// The package declares the Store it needs; internal/store/sqlite provides
// it.
package journal

import (
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Options configure a Journal. Store, Signer and MACKey are required.
type Options struct {
	Store  Store
	Signer ed25519.PrivateKey // signs checkpoints
	MACKey []byte             // 32 secret bytes; authenticates every entry

	Now                func() time.Time // default time.Now
	CheckpointEvery    int              // default defaultCheckpointEvery
	CheckpointInterval time.Duration    // default defaultCheckpointInterval
	Logger             *slog.Logger     // default discards
}

// Journal records events. It is safe for concurrent use.
type Journal struct {
	store    Store
	signer   ed25519.PrivateKey
	keyID    string
	macKey   []byte
	now      func() time.Time
	every    int
	interval time.Duration
	log      *slog.Logger
	tick     func(time.Duration) (<-chan time.Time, func()) // tests replace it
	tickDone chan<- struct{}                                // tests: signalled after each tick's checkpoint

	hashers sync.Pool // *hasher, each with its own HMAC state

	ckptMu sync.Mutex // serialises checkpoints

	life   sync.RWMutex // appends hold it shared; Close exclusively
	closed bool         // guarded by life

	mu        sync.Mutex
	pending   int       // entries this journal appended since its last checkpoint
	lastCkpt  int64     // seq of the last checkpoint this journal wrote
	lastCkptT time.Time // when it was written
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("journal: closed")

// New checks opts, fills defaults and returns a Journal.
func New(opts Options) (*Journal, error) {
	if opts.Store == nil {
		return nil, errors.New("journal: Options.Store is nil")
	}
	if len(opts.Signer) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("journal: Options.Signer is %d bytes, want an Ed25519 private key (%d bytes)", len(opts.Signer), ed25519.PrivateKeySize)
	}
	if len(opts.MACKey) != macKeySize {
		return nil, fmt.Errorf("journal: Options.MACKey is %d bytes, want %d", len(opts.MACKey), macKeySize)
	}
	if subtle.ConstantTimeCompare(opts.MACKey, make([]byte, macKeySize)) == 1 {
		return nil, errors.New("journal: Options.MACKey is all zero; generate a random key")
	}
	if opts.CheckpointEvery < 0 || opts.CheckpointInterval < 0 {
		return nil, errors.New("journal: checkpoint cadence must not be negative")
	}
	j := &Journal{
		store:    opts.Store,
		signer:   opts.Signer,
		keyID:    KeyID(opts.Signer.Public().(ed25519.PublicKey)),
		macKey:   append([]byte(nil), opts.MACKey...),
		now:      opts.Now,
		every:    opts.CheckpointEvery,
		interval: opts.CheckpointInterval,
		log:      opts.Logger,
		tick: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		},
	}
	if j.now == nil {
		j.now = time.Now
	}
	if j.every == 0 {
		j.every = defaultCheckpointEvery
	}
	if j.interval == 0 {
		j.interval = defaultCheckpointInterval
	}
	if j.log == nil {
		j.log = slog.New(slog.DiscardHandler)
	}
	j.hashers.New = func() any { return newHasher(j.macKey) }
	j.lastCkptT = j.now()
	return j, nil
}

// KeyID names the key that signs this journal's checkpoints.
func (j *Journal) KeyID() string { return j.keyID }

// Record appends one event.
func (j *Journal) Record(ctx context.Context, ev Event) error {
	return j.RecordBatch(ctx, []Event{ev})
}

// RecordBatch appends events atomically, in order, in one transaction. If
// any event is invalid nothing is written.
func (j *Journal) RecordBatch(ctx context.Context, events []Event) error {
	if len(events) == 0 {
		return nil
	}
	if len(events) > maxBatch {
		return fmt.Errorf("%w: batch of %d events, at most %d allowed", ErrInvalidEvent, len(events), maxBatch)
	}
	for i := range events {
		if err := validateEvent(&events[i]); err != nil {
			return fmt.Errorf("event %d (%q): %w", i, events[i].Action, err)
		}
	}
	j.life.RLock()
	defer j.life.RUnlock()
	if j.closed {
		return ErrClosed
	}

	h := j.hashers.Get().(*hasher)
	defer j.hashers.Put(h)
	t := j.now().UTC().Round(0)
	err := j.store.Append(ctx, func(head Head) ([]Entry, error) {
		prev := head.Hash
		if head.Seq == 0 {
			prev = GenesisHash
		}
		out := make([]Entry, len(events))
		// One backing array for every hash and MAC of the batch.
		sums := make([]byte, 0, 2*32*len(events))
		for i := range events {
			ev := &events[i]
			e := &out[i]
			*e = Entry{
				Seq: head.Seq + 1 + int64(i), Time: t,
				Actor: ev.Actor, Tenant: ev.Tenant, Action: ev.Action,
				Target: ev.Target, Outcome: ev.Outcome, Detail: cloneDetail(ev.Detail),
				PrevHash: prev,
			}
			n := len(sums)
			sums = h.hash(e, sums)
			e.Hash = sums[n:len(sums):len(sums)]
			sums = h.macOf(e.Hash, sums)
			e.MAC = sums[n+32 : len(sums) : len(sums)]
			prev = e.Hash
		}
		return out, nil
	})
	if err != nil {
		return fmt.Errorf("appending %d journal entries: %w", len(events), err)
	}

	j.mu.Lock()
	j.pending += len(events)
	due := j.pending >= j.every || (j.pending > 0 && j.now().Sub(j.lastCkptT) >= j.interval)
	j.mu.Unlock()
	if due {
		if err := j.Checkpoint(ctx); err != nil {
			// The entries are stored; a missed checkpoint is retried on the
			// next append, tick or Close.
			j.log.Error("journal checkpoint failed", "err", err)
		}
	}
	return nil
}

func cloneDetail(d map[string]string) map[string]string {
	if len(d) == 0 {
		return nil
	}
	c := make(map[string]string, len(d))
	for k, v := range d {
		c[k] = v
	}
	return c
}

// Checkpoint signs the journal's current head, unless it is empty or
// already checkpointed.
func (j *Journal) Checkpoint(ctx context.Context) error {
	j.ckptMu.Lock()
	defer j.ckptMu.Unlock()
	head, err := j.store.Head(ctx)
	if err != nil {
		return fmt.Errorf("reading journal head: %w", err)
	}
	j.mu.Lock()
	last := j.lastCkpt
	j.mu.Unlock()
	if head.Seq == 0 || head.Seq == last {
		return nil
	}
	now := j.now().UTC().Round(0)
	c := Checkpoint{
		Seq:       head.Seq,
		Hash:      head.Hash,
		Time:      now,
		KeyID:     j.keyID,
		Signature: ed25519.Sign(j.signer, checkpointMessage(head.Seq, head.Hash, now)),
	}
	if err := j.store.AddCheckpoint(ctx, c); err != nil && !errors.Is(err, ErrCheckpointExists) {
		return fmt.Errorf("storing journal checkpoint at seq %d: %w", head.Seq, err)
	}
	j.mu.Lock()
	j.lastCkpt = head.Seq
	j.lastCkptT = now
	j.pending = 0
	j.mu.Unlock()
	j.log.Debug("journal checkpoint", "seq", head.Seq, "key_id", j.keyID)
	return nil
}

// Run writes a checkpoint every CheckpointInterval while there are new
// entries, until ctx is done.
func (j *Journal) Run(ctx context.Context) {
	c, stop := j.tick(j.interval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c:
			if err := j.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				j.log.Error("journal checkpoint failed", "err", err)
			}
			if j.tickDone != nil {
				j.tickDone <- struct{}{}
			}
		}
	}
}

// Close writes a final checkpoint; Record fails with ErrClosed afterwards.
func (j *Journal) Close(ctx context.Context) error {
	j.life.Lock() // waits for appends in flight
	j.closed = true
	j.life.Unlock()
	return j.Checkpoint(ctx)
}
