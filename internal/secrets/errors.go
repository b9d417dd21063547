package secrets

import "errors"

// Sentinel errors; test for them with errors.Is.
var (
	// ErrWrongMasterKey: the master key given is not the one that wrapped
	// this data folder's data keys. Nothing was written.
	ErrWrongMasterKey = errors.New("wrong master key")

	// ErrDecrypt: a ciphertext is malformed, was altered, was moved to
	// another record, or names a data key this keyring does not hold. No
	// plaintext is returned with it.
	ErrDecrypt = errors.New("decryption failed")

	// ErrKeyringDamaged: the stored keyring is inconsistent (a data key
	// wrapped by this master key fails to unwrap, or the rows contradict
	// each other). It was edited outside rampart or the disk is failing.
	ErrKeyringDamaged = errors.New("keyring damaged")

	// ErrNotFound: no sealed secret has that name. Adapters return it
	// (wrapped or not) from SealedStore.GetSealed.
	ErrNotFound = errors.New("secret not found")

	// ErrInsecureKeyFile: a master key file may be read or written by group
	// or others.
	ErrInsecureKeyFile = errors.New("insecure master key file")

	// ErrWeakPassphrase: the passphrase is too short (or absurdly long).
	ErrWeakPassphrase = errors.New("unacceptable passphrase")

	// ErrRotationPending: PATH.next is left from a rotation that did not
	// commit, or another rotation is running.
	ErrRotationPending = errors.New("master key rotation pending")
)
