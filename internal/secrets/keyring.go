package secrets

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"
)

// Formats. Every byte of a header is authenticated.
const (
	// cipherV1: version(1) | data-key ID(8) | nonce(12) | GCM(plaintext).
	// The GCM additional data is the 21-byte header followed by the caller's
	// aad, so the key ID, the version and the record a ciphertext belongs to
	// are all authenticated.
	cipherV1   = 1
	headerSize = 1 + dataKeyIDSize + nonceSize
	tagSize    = 16

	// wrapV1: version(1) | nonce(12) | GCM(data key). Its additional data is
	// dataKeyAADLabel | data-key ID (hex) | 0 | master key ID, binding the
	// wrapped key to its row and to the master key recorded beside it.
	wrapV1          = 1
	wrappedSize     = 1 + nonceSize + dataKeySize + tagSize
	dataKeyAADLabel = "rampart/data-key/v1\x00"
)

type keyID [dataKeyIDSize]byte

func (id keyID) String() string { return hex.EncodeToString(id[:]) }

func parseKeyID(s string) (keyID, error) {
	var id keyID
	if len(s) != 2*dataKeyIDSize || strings.ToLower(s) != s {
		return id, fmt.Errorf("data key ID %q is not %d lowercase hex characters", s, 2*dataKeyIDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("data key ID %q: %v", s, err)
	}
	return id, nil
}

// Keyring holds the unwrapped data keys of one data folder and seals and
// opens secrets with them. It never changes after OpenKeyring returns and is
// safe for concurrent use if its rand is (crypto/rand.Reader is).
type Keyring struct {
	keys   map[keyID]cipher.AEAD
	active keyID
	rand   io.Reader
}

// plainKey is an unwrapped data key with its row.
type plainKey struct {
	id        keyID
	key       []byte
	createdAt time.Time
	active    bool
}

var errKeyringExists = errors.New("keyring already exists")

// OpenKeyring unwraps the data keys in store with mk. On a new data folder
// (no data keys yet) it creates one active data key wrapped by mk. If mk is
// not the master key that wrapped the stored keys it returns an error
// matching ErrWrongMasterKey, naming both key IDs, and writes nothing.
//
// rand supplies data keys and nonces; now stamps new data keys.
func OpenKeyring(ctx context.Context, store KeyStore, mk *MasterKey, rand io.Reader, now func() time.Time) (*Keyring, error) {
	if mk == nil {
		return nil, errors.New("opening keyring: no master key")
	}
	for range 2 {
		stored, err := store.DataKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading data keys: %w", err)
		}
		if len(stored) == 0 {
			var created []WrappedKey
			err = store.UpdateKeys(ctx, func(current []WrappedKey) ([]WrappedKey, error) {
				if len(current) > 0 {
					return nil, errKeyringExists
				}
				wk, err := newWrappedKey(mk, nil, rand, now())
				if err != nil {
					return nil, err
				}
				created = []WrappedKey{wk}
				return created, nil
			})
			if errors.Is(err, errKeyringExists) {
				continue // another process created it; read theirs
			}
			if err != nil {
				return nil, fmt.Errorf("creating the first data key: %w", err)
			}
			stored = created
		}
		plain, err := unwrapAll(stored, mk)
		if err != nil {
			return nil, err
		}
		return newKeyring(plain, rand)
	}
	return nil, errors.New("opening keyring: the data keys changed while reading them; try again")
}

// CheckMasterKey reports whether mk unwraps every data key in store, without
// writing anything. A store with no data keys yet accepts any key. The error
// matches ErrWrongMasterKey for a different master key.
func CheckMasterKey(ctx context.Context, store KeyReader, mk *MasterKey) error {
	if mk == nil {
		return errors.New("checking master key: no master key")
	}
	stored, err := store.DataKeys(ctx)
	if err != nil {
		return fmt.Errorf("reading data keys: %w", err)
	}
	if len(stored) == 0 {
		return nil
	}
	_, err = unwrapAll(stored, mk)
	return err
}

func newKeyring(plain []plainKey, rand io.Reader) (*Keyring, error) {
	kr := &Keyring{keys: make(map[keyID]cipher.AEAD, len(plain)), rand: rand}
	for _, p := range plain {
		aead, err := newGCM(p.key)
		if err != nil {
			return nil, err
		}
		kr.keys[p.id] = aead
		if p.active {
			kr.active = p.id
		}
	}
	return kr, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// unwrapAll checks the stored rows and unwraps every key with mk.
func unwrapAll(stored []WrappedKey, mk *MasterKey) ([]plainKey, error) {
	var others []string
	for _, wk := range stored {
		if wk.KEKID != mk.ID() && !slices.Contains(others, wk.KEKID) {
			others = append(others, wk.KEKID)
		}
	}
	switch {
	case len(others) == 0:
	case len(others) == len(stored) || !slices.ContainsFunc(stored, func(wk WrappedKey) bool { return wk.KEKID == mk.ID() }):
		sort.Strings(others)
		return nil, fmt.Errorf("%w: master key %s does not match this data folder (its data keys are wrapped by master key %s); start with the key file or passphrase that created it",
			ErrWrongMasterKey, mk.ID(), strings.Join(others, ", "))
	default:
		return nil, fmt.Errorf("%w: data keys are wrapped by master keys %s and %s; restore the data folder from a backup",
			ErrKeyringDamaged, mk.ID(), strings.Join(others, ", "))
	}
	seen := make(map[keyID]bool, len(stored))
	actives := 0
	plain := make([]plainKey, 0, len(stored))
	for _, wk := range stored {
		id, err := parseKeyID(wk.ID)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrKeyringDamaged, err)
		}
		if seen[id] {
			return nil, fmt.Errorf("%w: data key %s is stored twice", ErrKeyringDamaged, wk.ID)
		}
		seen[id] = true
		key, err := unwrapKey(mk, id, wk.Wrapped)
		if err != nil {
			return nil, fmt.Errorf("%w: data key %s does not unwrap with master key %s, which it is recorded under; the data folder was altered or the disk is failing: %v",
				ErrKeyringDamaged, wk.ID, mk.ID(), err)
		}
		if wk.Active {
			actives++
		}
		plain = append(plain, plainKey{id: id, key: key, createdAt: wk.CreatedAt, active: wk.Active})
	}
	if actives != 1 {
		return nil, fmt.Errorf("%w: %d data keys are marked active, want exactly 1", ErrKeyringDamaged, actives)
	}
	return plain, nil
}

func wrapAAD(id keyID, kekID string) []byte {
	return []byte(dataKeyAADLabel + id.String() + "\x00" + kekID)
}

func wrapKey(mk *MasterKey, id keyID, key []byte, rand io.Reader) ([]byte, error) {
	out := make([]byte, 1+nonceSize, wrappedSize)
	out[0] = wrapV1
	if _, err := io.ReadFull(rand, out[1:]); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	return mk.wrap.Seal(out, out[1:], key, wrapAAD(id, mk.ID())), nil
}

func unwrapKey(mk *MasterKey, id keyID, wrapped []byte) ([]byte, error) {
	if len(wrapped) != wrappedSize {
		return nil, fmt.Errorf("wrapped key is %d bytes, want %d", len(wrapped), wrappedSize)
	}
	if wrapped[0] != wrapV1 {
		return nil, fmt.Errorf("unknown wrapped key version %d", wrapped[0])
	}
	key, err := mk.wrap.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], wrapAAD(id, mk.ID()))
	if err != nil {
		return nil, errors.New("authentication failed")
	}
	return key, nil
}

// newWrappedKey makes a fresh active data key wrapped by mk with an ID not in
// taken.
func newWrappedKey(mk *MasterKey, taken []plainKey, rand io.Reader, now time.Time) (WrappedKey, error) {
	var id keyID
	for {
		if _, err := io.ReadFull(rand, id[:]); err != nil {
			return WrappedKey{}, fmt.Errorf("generating data key ID: %w", err)
		}
		if !slices.ContainsFunc(taken, func(p plainKey) bool { return p.id == id }) {
			break
		}
	}
	key := make([]byte, dataKeySize)
	if _, err := io.ReadFull(rand, key); err != nil {
		return WrappedKey{}, fmt.Errorf("generating data key: %w", err)
	}
	wrapped, err := wrapKey(mk, id, key, rand)
	if err != nil {
		return WrappedKey{}, err
	}
	return WrappedKey{ID: id.String(), KEKID: mk.ID(), Wrapped: wrapped, CreatedAt: now, Active: true}, nil
}

// ActiveKeyID is the ID of the data key new ciphertexts are sealed with.
func (kr *Keyring) ActiveKeyID() string { return kr.active.String() }

// Seal encrypts plaintext with the active data key. aad names the record the
// ciphertext belongs to (for example a table and row); Open must be given
// the same aad. The result is version | data-key ID | nonce | GCM output.
func (kr *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	aead := kr.keys[kr.active]
	out := make([]byte, headerSize, headerSize+len(plaintext)+tagSize)
	out[0] = cipherV1
	copy(out[1:], kr.active[:])
	nonce := out[1+dataKeyIDSize : headerSize]
	if _, err := io.ReadFull(kr.rand, nonce); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, additionalData(out[:headerSize], aad)), nil
}

// Open decrypts a ciphertext from Seal. Anything malformed, altered, sealed
// for another aad, or under a data key this keyring does not hold fails with
// an error matching ErrDecrypt, and no plaintext is returned.
func (kr *Keyring) Open(ciphertext, aad []byte) ([]byte, error) {
	if len(ciphertext) < headerSize+tagSize {
		return nil, fmt.Errorf("%w: ciphertext is %d bytes, shorter than any sealed value", ErrDecrypt, len(ciphertext))
	}
	if ciphertext[0] != cipherV1 {
		return nil, fmt.Errorf("%w: unknown ciphertext version %d", ErrDecrypt, ciphertext[0])
	}
	var id keyID
	copy(id[:], ciphertext[1:])
	aead, ok := kr.keys[id]
	if !ok {
		return nil, fmt.Errorf("%w: sealed with data key %s, which this keyring does not hold", ErrDecrypt, id)
	}
	header := ciphertext[:headerSize]
	plain, err := aead.Open(nil, header[1+dataKeyIDSize:], ciphertext[headerSize:], additionalData(header, aad))
	if err != nil {
		return nil, fmt.Errorf("%w: the ciphertext was altered or belongs to another record", ErrDecrypt)
	}
	return plain, nil
}

func additionalData(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	return append(append(ad, header...), aad...)
}
