package journal

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"maps"
	"testing"
	"time"
)

func sampleEntry() Entry {
	return Entry{Seq: 42, Time: t0, Actor: "user:alice", Tenant: "t1", Action: "device.revoke",
		Target: "dev-1", Outcome: OutcomeSuccess, Detail: map[string]string{"reason": "lost", "ip": "192.0.2.1"},
		PrevHash: bytes.Repeat([]byte{7}, 32)}
}

// TestEntryHashGolden pins the canonical encoding: changing it breaks every
// stored journal, so it must be a deliberate, versioned change.
func TestEntryHashGolden(t *testing.T) {
	e := sampleEntry()
	const want = "ab5f0c480e61eceb79e9221fb9a7b0f2cd74a8a8816cf2ffbddeba379d29102e"
	if got := hex.EncodeToString(EntryHash(&e)); got != want {
		t.Fatalf("EntryHash = %s, want %s", got, want)
	}
}

// TestCanonicalUnambiguous: entries that naive concatenation would confuse
// hash differently.
func TestCanonicalUnambiguous(t *testing.T) {
	base := Entry{Seq: 1, Time: t0, PrevHash: GenesisHash}
	with := func(f func(*Entry)) Entry { e := base; f(&e); return e }
	pairs := []struct {
		name string
		a, b Entry
	}{
		{"ok/field-boundary", with(func(e *Entry) { e.Actor, e.Tenant = "ab", "c" }), with(func(e *Entry) { e.Actor, e.Tenant = "a", "bc" })},
		{"ok/field-swap", with(func(e *Entry) { e.Action = "x" }), with(func(e *Entry) { e.Target = "x" })},
		{"ok/detail-boundary", with(func(e *Entry) { e.Detail = map[string]string{"ab": "c"} }), with(func(e *Entry) { e.Detail = map[string]string{"a": "bc"} })},
		{"ok/detail-vs-field", with(func(e *Entry) { e.Outcome = "k" }), with(func(e *Entry) { e.Detail = map[string]string{"k": ""} })},
		{"ok/detail-split", with(func(e *Entry) { e.Detail = map[string]string{"a": "", "b": ""} }), with(func(e *Entry) { e.Detail = map[string]string{"a": "\x00\x00\x00\x01b"} })},
		{"ok/seq", with(func(e *Entry) { e.Seq = 2 }), base},
		{"ok/time", with(func(e *Entry) { e.Time = t0.Add(time.Nanosecond) }), base},
		{"ok/prev", with(func(e *Entry) { e.PrevHash = bytes.Repeat([]byte{1}, 32) }), base},
	}
	for _, p := range pairs {
		t.Run(p.name, func(t *testing.T) {
			if bytes.Equal(EntryHash(&p.a), EntryHash(&p.b)) {
				t.Fatal("distinct entries hash the same")
			}
		})
	}
}

// decodeCanonical inverts appendCanonical. That it exists and round-trips
// proves the encoding unambiguous (injective).
func decodeCanonical(b []byte) (Entry, error) {
	var e Entry
	if !bytes.HasPrefix(b, []byte(entryDomain)) {
		return e, errors.New("no domain prefix")
	}
	b = b[len(entryDomain):]
	u64 := func() (uint64, bool) {
		if len(b) < 8 {
			return 0, false
		}
		v := binary.BigEndian.Uint64(b)
		b = b[8:]
		return v, true
	}
	u32 := func() (uint32, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v := binary.BigEndian.Uint32(b)
		b = b[4:]
		return v, true
	}
	str := func() (string, bool) {
		n, ok := u32()
		if !ok || uint32(len(b)) < n {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	seq, ok1 := u64()
	ns, ok2 := u64()
	if !ok1 || !ok2 {
		return e, errors.New("short")
	}
	e.Seq, e.Time = int64(seq), time.Unix(0, int64(ns)).UTC()
	for _, p := range []*string{&e.Actor, &e.Tenant, &e.Action, &e.Target, &e.Outcome} {
		s, ok := str()
		if !ok {
			return e, errors.New("short field")
		}
		*p = s
	}
	n, ok := u32()
	if !ok {
		return e, errors.New("short detail")
	}
	if n > 0 {
		e.Detail = map[string]string{}
	}
	for range n {
		k, ok1 := str()
		v, ok2 := str()
		if !ok1 || !ok2 {
			return e, errors.New("short detail pair")
		}
		e.Detail[k] = v
	}
	prev, ok := str()
	if !ok {
		return e, errors.New("short prev")
	}
	e.PrevHash = []byte(prev)
	if len(b) != 0 {
		return e, errors.New("trailing bytes")
	}
	return e, nil
}

func FuzzCanonicalRoundTrip(f *testing.F) {
	f.Add(int64(1), int64(0), "a", "b", "c", "d", "e", "k", "v", "k2", "v2", []byte{1, 2})
	f.Add(int64(1<<40), int64(-5), "", "", "", "", "", "", "", "", "", []byte{})
	f.Fuzz(func(t *testing.T, seq, ns int64, actor, tenant, action, target, outcome, k1, v1, k2, v2 string, prev []byte) {
		e := Entry{Seq: seq, Time: time.Unix(0, ns).UTC(), Actor: actor, Tenant: tenant, Action: action,
			Target: target, Outcome: outcome, Detail: map[string]string{k1: v1, k2: v2}, PrevHash: prev}
		got, err := decodeCanonical(appendCanonical(nil, &e))
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != e.Seq || !got.Time.Equal(e.Time) || got.Actor != actor || got.Tenant != tenant ||
			got.Action != action || got.Target != target || got.Outcome != outcome ||
			!maps.Equal(got.Detail, e.Detail) || !bytes.Equal(got.PrevHash, prev) {
			t.Fatalf("round trip changed the entry:\n got %+v\nwant %+v", got, e)
		}
	})
}
