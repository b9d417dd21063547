package secrets

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-iot/rampart/internal/testkit"
)

func TestOpenKeyringCreatesOneActiveKeyOnce(t *testing.T) {
	store := newMemStore()
	mk := mustMasterKey(t, "mk")
	kr := mustKeyring(t, store, mk, "r1")
	keys, writes := store.snapshot()
	if len(keys) != 1 || !keys[0].Active || keys[0].KEKID != mk.ID() || writes != 1 {
		t.Fatalf("after first open: keys=%+v writes=%d; want one active key wrapped by %s", keys, writes, mk.ID())
	}
	if keys[0].ID != kr.ActiveKeyID() || !keys[0].CreatedAt.Equal(epoch) {
		t.Fatalf("stored key %s at %v, keyring active %s", keys[0].ID, keys[0].CreatedAt, kr.ActiveKeyID())
	}
	mustKeyring(t, store, mk, "r2")
	if _, w := store.snapshot(); w != 1 {
		t.Fatalf("second open wrote to the store (%d writes)", w)
	}
}

func TestOpenKeyringConcurrentFirstRunCreatesOneKey(t *testing.T) {
	store := newMemStore()
	mk := mustMasterKey(t, "mk")
	var wg sync.WaitGroup
	krs := make([]*Keyring, 8)
	for i := range krs {
		wg.Go(func() {
			kr, err := OpenKeyring(context.Background(), store, mk, testkit.NewRand(string(rune('a'+i))), testkit.NewClock(epoch).Now)
			if err != nil {
				t.Error(err)
			}
			krs[i] = kr
		})
	}
	wg.Wait()
	keys, _ := store.snapshot()
	if len(keys) != 1 {
		t.Fatalf("%d data keys after concurrent first opens, want 1", len(keys))
	}
	ct, err := krs[0].Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, kr := range krs {
		if _, err := kr.Open(ct, nil); err != nil {
			t.Fatalf("keyring %d cannot open keyring 0's ciphertext: %v", i, err)
		}
	}
}

func TestOpenKeyringWrongMasterKeyWritesNothing(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	right := mustMasterKey(t, "right")
	wrong := mustMasterKey(t, "wrong")
	mustKeyring(t, store, right, "r")
	before, writes := store.snapshot()

	_, err := OpenKeyring(ctx, store, wrong, testkit.NewRand("x"), testkit.NewClock(epoch).Now)
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("OpenKeyring with the wrong key: %v, want ErrWrongMasterKey", err)
	}
	want := "master key " + wrong.ID() + " does not match this data folder (its data keys are wrapped by master key " + right.ID() + "); start with the key file or passphrase that created it"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q\nwant it to contain %q", err, want)
	}
	if err := CheckMasterKey(ctx, store, wrong); !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("CheckMasterKey with the wrong key: %v", err)
	}
	if err := CheckMasterKey(ctx, store, right); err != nil {
		t.Fatalf("CheckMasterKey with the right key: %v", err)
	}
	after, w := store.snapshot()
	if w != writes || !reflect.DeepEqual(before, after) {
		t.Fatal("the store changed after a refused master key")
	}
}

func TestOpenKeyringDamaged(t *testing.T) {
	mk := mustMasterKey(t, "mk")
	other := mustMasterKey(t, "other")
	tests := []struct {
		name   string
		mutate func(keys []WrappedKey) []WrappedKey
	}{
		{"fail/flipped-wrapped-byte", func(k []WrappedKey) []WrappedKey { k[0].Wrapped[20] ^= 1; return k }},
		{"fail/truncated-wrapped", func(k []WrappedKey) []WrappedKey { k[0].Wrapped = k[0].Wrapped[:30]; return k }},
		{"fail/renamed-key-id", func(k []WrappedKey) []WrappedKey { k[0].ID = "00112233445566ff"; return k }},
		{"fail/bad-key-id", func(k []WrappedKey) []WrappedKey { k[0].ID = "nothex"; return k }},
		{"fail/no-active-key", func(k []WrappedKey) []WrappedKey { k[0].Active = false; return k }},
		{"fail/two-active-keys", func(k []WrappedKey) []WrappedKey {
			d := k[0]
			d.ID = "0000000000000001"
			return append(k, d)
		}},
		{"fail/mixed-master-keys", func(k []WrappedKey) []WrappedKey {
			d := k[0]
			d.ID, d.KEKID, d.Active = "0000000000000001", other.ID(), false
			return append(k, d)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			mustKeyring(t, store, mk, "r")
			store.keys = tt.mutate(store.keys)
			_, err := OpenKeyring(context.Background(), store, mk, testkit.NewRand("x"), testkit.NewClock(epoch).Now)
			if !errors.Is(err, ErrKeyringDamaged) {
				t.Fatalf("got %v, want ErrKeyringDamaged", err)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	store := newMemStore()
	mk := mustMasterKey(t, "mk")
	kr := mustKeyring(t, store, mk, "r")
	aad := []byte("rampart/test/row-1")
	plain := []byte("the device enrollment secret")
	ct, err := kr.Seal(plain, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, plain) {
		t.Fatal("ciphertext contains the plaintext")
	}
	ct2, _ := kr.Seal(plain, aad)
	if bytes.Equal(ct, ct2) {
		t.Fatal("two seals of the same plaintext are equal (nonce reuse)")
	}
	otherKR := mustKeyring(t, newMemStore(), mk, "r2") // same master key, other data keys

	tests := []struct {
		name string
		kr   *Keyring
		ct   []byte
		aad  []byte
	}{
		{"ok/same-aad", kr, ct, aad},
		{"ok/empty-plaintext", kr, mustSeal(t, kr, nil, aad), aad},
		{"fail/moved-to-other-record", kr, ct, []byte("rampart/test/row-2")},
		{"fail/nil-aad", kr, ct, nil},
		{"fail/other-keyring", otherKR, ct, aad},
		{"fail/truncated-tag", kr, ct[:len(ct)-1], aad},
		{"fail/header-only", kr, ct[:headerSize], aad},
		{"fail/empty", kr, nil, aad},
		{"fail/bad-version", kr, withByte(ct, 0, 2), aad},
		{"fail/extra-byte", kr, append(bytes.Clone(ct), 0), aad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.kr.Open(tt.ct, tt.aad)
			if strings.HasPrefix(tt.name, "ok/") {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrDecrypt", got, err)
			}
		})
	}
	if got, _ := kr.Open(ct, aad); !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, want %q", got, plain)
	}
}

func TestOpenFailsOnEveryFlippedBit(t *testing.T) {
	kr := mustKeyring(t, newMemStore(), mustMasterKey(t, "mk"), "r")
	aad := []byte("row")
	ct := mustSeal(t, kr, []byte("secret value"), aad)
	for i := range ct {
		for bit := range 8 {
			bad := withByte(ct, i, ct[i]^(1<<bit))
			if got, err := kr.Open(bad, aad); !errors.Is(err, ErrDecrypt) || got != nil {
				t.Fatalf("byte %d bit %d flipped: Open = %q, %v; want ErrDecrypt", i, bit, got, err)
			}
		}
	}
}

func TestOpenFailsOnSwappedKeyID(t *testing.T) {
	// A keyring with two data keys (after a rotation): a ciphertext whose
	// key ID is swapped for the other key's ID must not open.
	ctx := context.Background()
	store := newMemStore()
	mk1, mk2 := mustMasterKey(t, "mk1"), mustMasterKey(t, "mk2")
	kr1 := mustKeyring(t, store, mk1, "r")
	if err := Rotate(ctx, store, mk1, mk2, testkit.NewRand("rot"), testkit.NewClock(epoch).Now); err != nil {
		t.Fatal(err)
	}
	kr2 := mustKeyring(t, store, mk2, "r2")
	if kr1.ActiveKeyID() == kr2.ActiveKeyID() {
		t.Fatal("rotation did not add a new active data key")
	}
	ct := mustSeal(t, kr2, []byte("v"), nil)
	swapped := bytes.Clone(ct)
	copy(swapped[1:1+dataKeyIDSize], kr1.active[:])
	if _, err := kr2.Open(ct, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := kr2.Open(swapped, nil); !errors.Is(err, ErrDecrypt) || got != nil {
		t.Fatalf("swapped key ID: Open = %q, %v; want ErrDecrypt", got, err)
	}
}

func TestSealConcurrent(t *testing.T) {
	kr := mustKeyring(t, newMemStore(), mustMasterKey(t, "mk"), "r")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 50 {
				p := []byte{byte(i)}
				ct, err := kr.Seal(p, p)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := kr.Open(ct, p); err != nil || !bytes.Equal(got, p) {
					t.Errorf("Open = %v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestVault(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	kr := mustKeyring(t, store, mustMasterKey(t, "mk"), "r")
	v := NewVault(kr, store, testkit.NewClock(epoch).Now)
	if err := v.Put(ctx, "journal/hmac", []byte("k1")); err != nil {
		t.Fatal(err)
	}
	if err := v.Put(ctx, "mqtt/bridge", []byte("k2")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		setup   func()
		get     string
		want    string
		wantErr error
	}{
		{"ok/get", nil, "journal/hmac", "k1", nil},
		{"fail/not-found", nil, "nope", "", ErrNotFound},
		{"fail/empty-name", nil, "", "", nil},
		{"fail/moved-ciphertext", func() { store.sealed["journal/hmac"] = store.sealed["mqtt/bridge"] }, "journal/hmac", "", ErrDecrypt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			got, err := v.Get(ctx, tt.get)
			if strings.HasPrefix(tt.name, "ok/") {
				if err != nil || string(got) != tt.want {
					t.Fatalf("Get = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || got != nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("Get = %q, %v; want error %v", got, err, tt.wantErr)
			}
		})
	}
	if err := v.Put(ctx, "big", make([]byte, maxSecretSize+1)); err == nil {
		t.Fatal("Put accepted a secret over the size limit")
	}
}

func mustSeal(t testing.TB, kr *Keyring, p, aad []byte) []byte {
	t.Helper()
	ct, err := kr.Seal(p, aad)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func withByte(b []byte, i int, v byte) []byte {
	c := bytes.Clone(b)
	c[i] = v
	return c
}
