package secrets

import (
	"context"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/testkit"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustMasterKey(t testing.TB, seed string) *MasterKey {
	t.Helper()
	mk, err := NewMasterKey(testkit.NewRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return mk
}

func mustKeyring(t testing.TB, store KeyStore, mk *MasterKey, seed string) *Keyring {
	t.Helper()
	kr, err := OpenKeyring(context.Background(), store, mk, testkit.NewRand(seed), testkit.NewClock(epoch).Now)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
