package journal

import (
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/testkit"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

type fixture struct {
	store *memStore
	clock *testkit.Clock
	keys  VerifyKeys
	opts  Options
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	priv := ed25519.NewKeyFromSeed(make32("signer"))
	mac := make32("mac")
	f := &fixture{store: &memStore{}, clock: testkit.NewClock(t0)}
	f.keys = VerifyKeys{Public: priv.Public().(ed25519.PublicKey), MACKey: mac}
	f.opts = Options{Store: f.store, Signer: priv, MACKey: mac, Now: f.clock.Now}
	return f
}

func make32(seed string) []byte {
	b := make([]byte, 32)
	testkit.NewRand(seed).Read(b)
	return b
}

func (f *fixture) journal(t testing.TB, mod func(*Options)) *Journal {
	t.Helper()
	o := f.opts
	if mod != nil {
		mod(&o)
	}
	j, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func (f *fixture) verify(t testing.TB) *Report {
	t.Helper()
	rep, err := Verify(context.Background(), f.store, f.keys)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func login(i int) Event {
	return Event{Actor: "user:alice", Tenant: "t1", Action: "login", Target: "session", Outcome: OutcomeSuccess,
		Detail: map[string]string{"ip": "192.0.2.1", "n": strings.Repeat("x", i%7)}}
}

func TestNew(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"ok/defaults", func(*Options) {}, ""},
		{"fail/no-store", func(o *Options) { o.Store = nil }, "Store is nil"},
		{"fail/no-signer", func(o *Options) { o.Signer = nil }, "Signer is 0 bytes"},
		{"fail/short-mac-key", func(o *Options) { o.MACKey = o.MACKey[:16] }, "MACKey is 16 bytes"},
		{"fail/zero-mac-key", func(o *Options) { o.MACKey = make([]byte, 32) }, "all zero"},
		{"fail/negative-every", func(o *Options) { o.CheckpointEvery = -1 }, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := f.opts
			tc.mod(&o)
			j, err := New(o)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if j.every != defaultCheckpointEvery || j.interval != defaultCheckpointInterval {
					t.Fatalf("defaults not applied: every=%d interval=%v", j.every, j.interval)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRecordValidation(t *testing.T) {
	long := strings.Repeat("a", maxFieldBytes+1)
	atLimit := strings.Repeat("a", maxFieldBytes)
	manyKeys := map[string]string{}
	for i := range maxDetailKeys + 1 {
		manyKeys[strings.Repeat("k", i+1)] = "v"
	}
	bigDetail := map[string]string{}
	for i := range 20 {
		bigDetail[string(rune('a'+i))] = atLimit // 20*257 > 4096
	}
	tests := []struct {
		name string
		ev   Event
		ok   bool
	}{
		{"ok/action-only", Event{Action: "x"}, true},
		{"ok/fields-at-limit", Event{Actor: atLimit, Tenant: atLimit, Action: atLimit, Target: atLimit, Outcome: atLimit,
			Detail: map[string]string{atLimit: atLimit}}, true},
		{"ok/unicode", Event{Action: "löschen", Target: "gerät ✓", Detail: map[string]string{"<k>": "\"&\n"}}, true},
		{"fail/empty-action", Event{Actor: "a"}, false},
		{"fail/long-actor", Event{Action: "x", Actor: long}, false},
		{"fail/long-target", Event{Action: "x", Target: long}, false},
		{"fail/long-detail-value", Event{Action: "x", Detail: map[string]string{"k": long}}, false},
		{"fail/long-detail-key", Event{Action: "x", Detail: map[string]string{long: "v"}}, false},
		{"fail/empty-detail-key", Event{Action: "x", Detail: map[string]string{"": "v"}}, false},
		{"fail/too-many-keys", Event{Action: "x", Detail: manyKeys}, false},
		{"fail/detail-too-big", Event{Action: "x", Detail: bigDetail}, false},
		{"fail/invalid-utf8", Event{Action: "x", Actor: "\xff"}, false},
		{"fail/nul", Event{Action: "x", Tenant: "a\x00b"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			j := f.journal(t, nil)
			// The event rides last in a batch: a bad one must reject the whole batch.
			err := j.RecordBatch(context.Background(), []Event{{Action: "before"}, tc.ev})
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if n := f.store.len(); n != 2 {
					t.Fatalf("stored %d entries, want 2", n)
				}
				if rep := f.verify(t); !rep.OK() {
					t.Fatalf("verify: %v", rep.Problem)
				}
				return
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("RecordBatch() error = %v, want ErrInvalidEvent", err)
			}
			if n := f.store.len(); n != 0 {
				t.Fatalf("a rejected batch stored %d entries", n)
			}
		})
	}
}

func TestRecordBatchTooLarge(t *testing.T) {
	f := newFixture(t)
	j := f.journal(t, nil)
	err := j.RecordBatch(context.Background(), make([]Event, maxBatch+1))
	if !errors.Is(err, ErrInvalidEvent) || f.store.len() != 0 {
		t.Fatalf("err = %v, stored %d; want ErrInvalidEvent and nothing stored", err, f.store.len())
	}
}

func TestRecordChainsEntries(t *testing.T) {
	f := newFixture(t)
	j := f.journal(t, nil)
	ctx := context.Background()
	if err := j.Record(ctx, login(1)); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := j.RecordBatch(ctx, []Event{login(2), login(3)}); err != nil {
		t.Fatal(err)
	}
	es := f.store.entries
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3", len(es))
	}
	if string(es[0].PrevHash) != string(GenesisHash) {
		t.Errorf("entry 1 prev_hash = %x, want genesis", es[0].PrevHash)
	}
	for i, e := range es {
		if e.Seq != int64(i+1) {
			t.Errorf("entry %d has seq %d", i+1, e.Seq)
		}
		if i > 0 && string(e.PrevHash) != string(es[i-1].Hash) {
			t.Errorf("entry %d does not chain to %d", e.Seq, e.Seq-1)
		}
		if string(EntryHash(&e)) != string(e.Hash) {
			t.Errorf("entry %d hash mismatch", e.Seq)
		}
	}
	if !es[0].Time.Equal(t0) || !es[2].Time.Equal(t0.Add(time.Second)) {
		t.Errorf("times = %v, %v; want the injected clock", es[0].Time, es[2].Time)
	}
	// The caller's map is copied, not aliased.
	ev := login(4)
	if err := j.Record(ctx, ev); err != nil {
		t.Fatal(err)
	}
	ev.Detail["ip"] = "changed"
	if rep := f.verify(t); !rep.OK() {
		t.Fatalf("changing the caller's map after Record changed the journal: %v", rep.Problem)
	}
}

func TestCheckpointCadence(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	j := f.journal(t, func(o *Options) { o.CheckpointEvery = 10; o.CheckpointInterval = time.Minute })
	for i := range 25 {
		if err := j.Record(ctx, login(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := f.store.checkpointSeqs(), []int64{10, 20}; !slices.Equal(got, want) {
		t.Fatalf("checkpoints after 25 entries = %v, want %v", got, want)
	}
	// Time-based: a minute later, the next entry triggers a checkpoint.
	f.clock.Advance(time.Minute)
	if err := j.Record(ctx, login(26)); err != nil {
		t.Fatal(err)
	}
	if got, want := f.store.checkpointSeqs(), []int64{10, 20, 26}; !slices.Equal(got, want) {
		t.Fatalf("checkpoints after a minute = %v, want %v", got, want)
	}
	if err := j.Record(ctx, login(27)); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(ctx); err != nil { // nothing new: no second checkpoint
		t.Fatal(err)
	}
	if got, want := f.store.checkpointSeqs(), []int64{10, 20, 26, 27}; !slices.Equal(got, want) {
		t.Fatalf("checkpoints after Close = %v, want %v", got, want)
	}
	if err := j.Record(ctx, login(28)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Close = %v, want ErrClosed", err)
	}
	rep := f.verify(t)
	if !rep.OK() || rep.Entries != 27 || rep.Checkpoints != 4 || rep.CheckpointedSeq != 27 {
		t.Fatalf("report = %+v", rep)
	}
}

func TestCheckpointAlreadyStoredByAnotherWriter(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.journal(t, nil)
	b := f.journal(t, nil) // a second process over the same store
	if err := a.Record(ctx, login(1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpointing a head another writer already signed: %v", err)
	}
	if got := f.store.checkpointSeqs(); !slices.Equal(got, []int64{1}) {
		t.Fatalf("checkpoints = %v, want [1]", got)
	}
}

func TestRunCheckpointsOnTick(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := newFixture(t)
	j := f.journal(t, nil)
	ticks := make(chan time.Time)
	done := make(chan struct{})
	j.tick = func(time.Duration) (<-chan time.Time, func()) { return ticks, func() {} }
	j.tickDone = done
	tick := func() { ticks <- t0; <-done } // one tick, and its checkpoint finished
	stopped := make(chan struct{})
	go func() { j.Run(ctx); close(stopped) }()

	tick() // nothing recorded: no checkpoint
	for i := range 3 {
		if err := j.Record(ctx, login(i)); err != nil {
			t.Fatal(err)
		}
	}
	tick() // checkpoints seq 3
	tick() // nothing new: no second checkpoint
	if got := f.store.checkpointSeqs(); !slices.Equal(got, []int64{3}) {
		t.Fatalf("checkpoints = %v, want [3]", got)
	}
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func TestConcurrentRecord(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	j := f.journal(t, func(o *Options) { o.CheckpointEvery = 7 })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				var err error
				if i%2 == 0 {
					err = j.Record(ctx, login(g*100+i))
				} else {
					err = j.RecordBatch(ctx, []Event{login(i), login(i + 1)})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rep := f.verify(t)
	if !rep.OK() || rep.Entries != 8*(25+50) || rep.CheckpointedSeq != rep.LastSeq {
		t.Fatalf("report = %+v problem=%v", rep, rep.Problem)
	}
}

func TestVerifyKeys(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	j := f.journal(t, nil)
	for i := range 5 {
		if err := j.Record(ctx, login(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	other := ed25519.NewKeyFromSeed(make32("other")).Public().(ed25519.PublicKey)
	tests := []struct {
		name     string
		keys     VerifyKeys
		wantErr  bool
		wantSeq  int64
		wantKind string
	}{
		{"ok/right-keys", f.keys, false, 0, ""},
		{"fail/wrong-mac-key", VerifyKeys{Public: f.keys.Public, MACKey: make32("wrong")}, false, 1, KindModified},
		{"fail/wrong-public-key", VerifyKeys{Public: other, MACKey: f.keys.MACKey}, false, 5, KindCheckpoint},
		{"fail/short-mac-key", VerifyKeys{Public: f.keys.Public, MACKey: []byte("short")}, true, 0, ""},
		{"fail/no-public-key", VerifyKeys{MACKey: f.keys.MACKey}, true, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Verify(ctx, f.store, tc.keys)
			if tc.wantErr {
				if err == nil {
					t.Fatal("Verify accepted malformed keys")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantKind == "" {
				if !rep.OK() {
					t.Fatalf("problem: %v", rep.Problem)
				}
				return
			}
			if rep.Problem == nil || rep.Problem.Seq != tc.wantSeq || rep.Problem.Kind != tc.wantKind {
				t.Fatalf("problem = %v, want seq %d %s", rep.Problem, tc.wantSeq, tc.wantKind)
			}
		})
	}
}
