package journal

import (
	"context"
	"fmt"
	"sync"
)

// memStore is an in-memory Store for this package's tests; the SQLite store
// has its own tests against a real file.
type memStore struct {
	mu      sync.Mutex
	entries []Entry
	ckpts   []Checkpoint
}

var _ Store = (*memStore)(nil)

func (m *memStore) headLocked() Head {
	if len(m.entries) == 0 {
		return Head{}
	}
	e := m.entries[len(m.entries)-1]
	return Head{Seq: e.Seq, Hash: e.Hash}
}

func (m *memStore) Head(context.Context) (Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.headLocked(), nil
}

func (m *memStore) Append(_ context.Context, build func(Head) ([]Entry, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	head := m.headLocked()
	es, err := build(head)
	if err != nil {
		return err
	}
	for i, e := range es {
		if e.Seq != head.Seq+1+int64(i) {
			return fmt.Errorf("seq %d does not continue head %d", e.Seq, head.Seq)
		}
	}
	m.entries = append(m.entries, es...)
	return nil
}

func (m *memStore) Scan(_ context.Context, from int64, fn func(Entry) error) error {
	m.mu.Lock()
	es := append([]Entry(nil), m.entries...)
	m.mu.Unlock()
	for _, e := range es {
		if e.Seq < from {
			continue
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) AddCheckpoint(_ context.Context, c Checkpoint) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, x := range m.ckpts {
		if x.Seq == c.Seq {
			return ErrCheckpointExists
		}
	}
	m.ckpts = append(m.ckpts, c)
	return nil
}

func (m *memStore) Checkpoints(context.Context) ([]Checkpoint, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Checkpoint(nil), m.ckpts...), nil
}

func (m *memStore) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}

func (m *memStore) checkpointSeqs() []int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s []int64
	for _, c := range m.ckpts {
		s = append(s, c.Seq)
	}
	return s
}
