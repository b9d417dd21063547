package secrets

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// memStore is an in-memory KeyStore and SealedStore with the same contract
// as the SQLite adapter (tested against the real file in
// internal/store/sqlite/keys_test.go).
type memStore struct {
	mu     sync.Mutex
	keys   []WrappedKey
	sealed map[string][]byte
	writes int
}

func newMemStore() *memStore { return &memStore{sealed: map[string][]byte{}} }

func cloneKeys(in []WrappedKey) []WrappedKey {
	out := make([]WrappedKey, len(in))
	for i, k := range in {
		k.Wrapped = slices.Clone(k.Wrapped)
		out[i] = k
	}
	return out
}

func (m *memStore) DataKeys(context.Context) ([]WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneKeys(m.keys), nil
}

func (m *memStore) UpdateKeys(_ context.Context, update func([]WrappedKey) ([]WrappedKey, error)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	next, err := update(cloneKeys(m.keys))
	if err != nil {
		return err
	}
	if len(next) == 0 {
		return errors.New("refusing to delete every data key")
	}
	m.keys = cloneKeys(next)
	m.writes++
	return nil
}

func (m *memStore) GetSealed(_ context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ct, ok := m.sealed[name]
	if !ok {
		return nil, ErrNotFound
	}
	return slices.Clone(ct), nil
}

func (m *memStore) PutSealed(_ context.Context, name string, ct []byte, _ time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sealed[name] = slices.Clone(ct)
	m.writes++
	return nil
}

func (m *memStore) snapshot() ([]WrappedKey, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return cloneKeys(m.keys), m.writes
}
