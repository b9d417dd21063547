package journal

import (
	"context"
	"testing"
)

// TestVerifyRanges tampers at and around the boundaries of Verify's
// parallel ranges (4 ranges of 10,000 over 40,000 entries) and checks the
// first problem is still named exactly.
func TestVerifyRanges(t *testing.T) {
	old := verifyWorkers
	verifyWorkers = func() int { return 4 }
	t.Cleanup(func() { verifyWorkers = old })

	const n = 40_000
	base := newFixture(t)
	j := base.journal(t, nil)
	ctx := context.Background()
	batch := make([]Event, 1000)
	for i := range batch {
		batch[i] = login(i)
	}
	for range n / len(batch) {
		if err := j.RecordBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := j.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if r, err := splitRanges(ctx, base.store, n, verifyWorkers()); err != nil || len(r) != 4 || r[1].from != 10_001 {
		t.Fatalf("ranges = %+v, %v; want 4 starting at 1, 10001, ...", r, err)
	}

	idx := func(seq int64) int { return int(seq - 1) }
	tests := []struct {
		name     string
		tamper   func(es []Entry) []Entry
		wantSeq  int64
		wantKind string
	}{
		{"ok/untouched", func(es []Entry) []Entry { return es }, 0, ""},
		{"fail/modified-last-of-range", func(es []Entry) []Entry { es[idx(10_000)].Actor = "x"; return es }, 10_000, KindModified},
		{"fail/modified-first-of-range", func(es []Entry) []Entry { es[idx(10_001)].Actor = "x"; return es }, 10_001, KindModified},
		{"fail/removed-last-of-range", func(es []Entry) []Entry { return append(es[:idx(20_000)], es[idx(20_001):]...) }, 20_000, KindRemoved},
		{"fail/removed-first-of-range", func(es []Entry) []Entry { return append(es[:idx(20_001)], es[idx(20_002):]...) }, 20_001, KindRemoved},
		{"fail/reordered-across-boundary", func(es []Entry) []Entry {
			a, b := idx(30_000), idx(30_001)
			es[a], es[b] = es[b], es[a]
			es[a].Seq, es[b].Seq = 30_000, 30_001
			return es
		}, 30_000, KindReordered},
		{"fail/first-of-two-ranges-wins", func(es []Entry) []Entry {
			es[idx(35_000)].Target = "x"
			es[idx(15_000)].Target = "x"
			return es
		}, 15_000, KindModified},
		{"fail/truncated", func(es []Entry) []Entry { return es[:idx(25_000)] }, 25_000, KindRemoved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			es := make([]Entry, len(base.store.entries))
			copy(es, base.store.entries)
			st := &memStore{entries: tc.tamper(es), ckpts: base.store.ckpts}
			rep, err := Verify(ctx, st, base.keys)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantKind == "" {
				if !rep.OK() || rep.Entries != n || rep.LastSeq != n || rep.CheckpointedSeq != n {
					t.Fatalf("report = %+v, problem %v", rep, rep.Problem)
				}
				return
			}
			if p := rep.Problem; p == nil || p.Seq != tc.wantSeq || p.Kind != tc.wantKind {
				t.Fatalf("problem = %v, want seq %d %s", p, tc.wantSeq, tc.wantKind)
			}
			if rep.Entries != tc.wantSeq-1 || rep.LastSeq != tc.wantSeq-1 {
				t.Fatalf("report counts %d entries up to %d, want %d intact", rep.Entries, rep.LastSeq, tc.wantSeq-1)
			}
		})
	}
}
