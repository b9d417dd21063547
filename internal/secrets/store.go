package secrets

import (
	"context"
	"time"
)

// WrappedKey is one data key as stored: wrapped (encrypted) by the master key
// whose ID is KEKID. Stores keep it verbatim; only this package unwraps it.
type WrappedKey struct {
	ID        string // 16 hex characters
	KEKID     string // MasterKey.ID() of the key that wrapped it
	Wrapped   []byte // version | nonce | AES-256-GCM(data key)
	CreatedAt time.Time
	Active    bool // the one key new ciphertexts are sealed with
}

// KeyReader reads the stored data keys without changing anything.
// CheckMasterKey needs only this.
type KeyReader interface {
	// DataKeys returns every stored data key (none on a new data folder).
	DataKeys(ctx context.Context) ([]WrappedKey, error)
}

// KeyStore is what a Keyring needs from storage.
type KeyStore interface {
	KeyReader

	// UpdateKeys runs update in ONE write transaction: it passes the data
	// keys stored at that moment and, if update returns no error, replaces
	// all of them with what it returned; if update fails nothing changes and
	// its error is returned. Implementations must refuse to replace the keys
	// with an empty set.
	UpdateKeys(ctx context.Context, update func(current []WrappedKey) ([]WrappedKey, error)) error
}

// SealedStore keeps sealed secrets by name. It only ever sees ciphertext.
type SealedStore interface {
	// GetSealed returns the ciphertext stored under name, or an error
	// matching ErrNotFound.
	GetSealed(ctx context.Context, name string) ([]byte, error)
	// PutSealed stores (inserts or replaces) the ciphertext under name.
	PutSealed(ctx context.Context, name string, ciphertext []byte, updatedAt time.Time) error
}
