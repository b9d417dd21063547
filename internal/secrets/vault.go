package secrets

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// sealedSecretAAD prefixes a sealed secret's name in its additional data, so
// a ciphertext copied to another name does not open.
const sealedSecretAAD = "rampart/sealed-secret/v1/"

// Vault keeps named secrets sealed by a Keyring in a SealedStore. The store
// only ever sees ciphertext.
type Vault struct {
	kr    *Keyring
	store SealedStore
	now   func() time.Time
}

// NewVault returns a vault over store sealing with kr; now stamps updates.
func NewVault(kr *Keyring, store SealedStore, now func() time.Time) *Vault {
	return &Vault{kr: kr, store: store, now: now}
}

func checkSecretName(name string) error {
	if name == "" || len(name) > maxSecretNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("secret name must be 1 to %d bytes of UTF-8", maxSecretNameLen)
	}
	return nil
}

// Get returns the secret stored under name, or an error matching
// ErrNotFound. A ciphertext that was altered or moved from another name
// fails with ErrDecrypt.
func (v *Vault) Get(ctx context.Context, name string) ([]byte, error) {
	if err := checkSecretName(name); err != nil {
		return nil, err
	}
	ct, err := v.store.GetSealed(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("secret %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading secret %q: %w", name, err)
	}
	pt, err := v.kr.Open(ct, []byte(sealedSecretAAD+name))
	if err != nil {
		return nil, fmt.Errorf("opening secret %q: %w", name, err)
	}
	return pt, nil
}

// Put seals plaintext and stores it under name, replacing any earlier value.
func (v *Vault) Put(ctx context.Context, name string, plaintext []byte) error {
	if err := checkSecretName(name); err != nil {
		return err
	}
	if len(plaintext) > maxSecretSize {
		return fmt.Errorf("secret %q is %d bytes; the limit is %d", name, len(plaintext), maxSecretSize)
	}
	ct, err := v.kr.Seal(plaintext, []byte(sealedSecretAAD+name))
	if err != nil {
		return fmt.Errorf("sealing secret %q: %w", name, err)
	}
	if err := v.store.PutSealed(ctx, name, ct, v.now()); err != nil {
		return fmt.Errorf("storing secret %q: %w", name, err)
	}
	return nil
}
