package keystore

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/crypto/argon2"
)

// A KeyProtector wraps and unwraps the keystore's data key (32 random
// bytes, fresh for every keystore). The wrapped form is stored in the
// file's header and is opaque to the keystore; aad binds it to that header.
//
// A TPM (TPM2_Create/Unseal under a storage key), a secure element or a
// PKCS#11 token (C_WrapKey/C_UnwrapKey with a non-extractable key)
// satisfies this interface without the data key ever leaving the chip in
// wrapped form; the two implementations here are for devices without one.
type KeyProtector interface {
	// Kind names the protector in the file ("argon2id", "keyfile",
	// "tpm2", ...); Open refuses a file written under another kind.
	Kind() string
	// WrapKey returns an opaque blob that only UnwrapKey (with the same
	// aad) turns back into dek.
	WrapKey(dek, aad []byte) ([]byte, error)
	// UnwrapKey returns the data key, or an error wrapping ErrWrongKey when
	// the blob does not open.
	UnwrapKey(wrapped, aad []byte) ([]byte, error)
}

// Argon2Params are argon2id's costs.
type Argon2Params struct {
	Time      uint32
	MemoryKiB uint32
	Threads   uint8
}

// DefaultArgon2 is RFC 9106's second recommended option (64 MiB, t=3, p=4).
var DefaultArgon2 = Argon2Params{Time: 3, MemoryKiB: 64 << 10, Threads: 4}

// Passphrase protects the keystore with a key derived from a passphrase
// by argon2id. Params zero means DefaultArgon2. The derived key is
// computed once per Wrap/Unwrap; a keystore keeps its data key in memory
// after Open, so saving does not pay the cost again.
type Passphrase struct {
	Secret []byte
	Params Argon2Params
	Rand   io.Reader // nil: crypto/rand
}

// Kind implements KeyProtector.
func (p *Passphrase) Kind() string { return "argon2id" }

// String never prints the passphrase.
func (p *Passphrase) String() string { return "argon2id passphrase [REDACTED]" }

func (p *Passphrase) derive(salt []byte, prm Argon2Params) []byte {
	return argon2.IDKey(p.Secret, salt, prm.Time, prm.MemoryKiB, prm.Threads, 32)
}

// wrapped form: time(4) memory(4) threads(1) salt(16) nonce(12) sealed(48)
const argonHeader = 4 + 4 + 1 + 16

// WrapKey implements KeyProtector.
func (p *Passphrase) WrapKey(dek, aad []byte) ([]byte, error) {
	if len(p.Secret) < minPassphraseLen {
		return nil, fmt.Errorf("keystore passphrase is %d bytes; use at least %d", len(p.Secret), minPassphraseLen)
	}
	prm := p.Params
	if prm == (Argon2Params{}) {
		prm = DefaultArgon2
	}
	out := make([]byte, argonHeader)
	binary.BigEndian.PutUint32(out[0:], prm.Time)
	binary.BigEndian.PutUint32(out[4:], prm.MemoryKiB)
	out[8] = prm.Threads
	if _, err := io.ReadFull(randOr(p.Rand), out[9:argonHeader]); err != nil {
		return nil, err
	}
	sealed, err := seal(p.derive(out[9:argonHeader], prm), dek, append(out[:argonHeader:argonHeader], aad...), p.Rand)
	if err != nil {
		return nil, err
	}
	return append(out, sealed...), nil
}

// UnwrapKey implements KeyProtector.
func (p *Passphrase) UnwrapKey(wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < argonHeader {
		return nil, ErrTampered
	}
	prm := Argon2Params{Time: binary.BigEndian.Uint32(wrapped[0:]), MemoryKiB: binary.BigEndian.Uint32(wrapped[4:]), Threads: wrapped[8]}
	if prm.Time == 0 || prm.Time > maxArgonTime || prm.MemoryKiB < 8 || prm.MemoryKiB > maxArgonMemoryKiB || prm.Threads == 0 {
		return nil, fmt.Errorf("%w: argon2id parameters out of range", ErrTampered)
	}
	dek, err := open(p.derive(wrapped[9:argonHeader], prm), wrapped[argonHeader:], append(wrapped[:argonHeader:argonHeader], aad...))
	if err != nil {
		return nil, fmt.Errorf("%w (passphrase)", ErrWrongKey)
	}
	return dek, nil
}

// KeyFile protects the keystore with a 32-byte key (raw, or 64 hex digits)
// read from a file that
// only its owner may read (mode 0600 or stricter; anything looser is
// refused). Keep it on another medium than the keystore (a separate
// partition, an eFuse-backed blob, a mounted secret).
type KeyFile struct {
	Path string
	Rand io.Reader // nil: crypto/rand
}

// Kind implements KeyProtector.
func (k *KeyFile) Kind() string { return "keyfile" }

func (k *KeyFile) key() ([]byte, error) {
	st, err := os.Stat(k.Path)
	if err != nil {
		return nil, fmt.Errorf("reading keystore key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keystore key file %s is readable by others (mode %#o); run chmod 600 %s", k.Path, st.Mode().Perm(), k.Path)
	}
	b, err := os.ReadFile(k.Path)
	if err != nil {
		return nil, fmt.Errorf("reading keystore key file: %w", err)
	}
	if len(b) == 32 { // raw bytes (an eFuse or secure-storage blob)
		return b, nil
	}
	key, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("keystore key file %s must hold 32 raw bytes or 64 hex digits (make one with keystore.NewKeyFile)", k.Path)
	}
	return key, nil
}

// WrapKey implements KeyProtector.
func (k *KeyFile) WrapKey(dek, aad []byte) ([]byte, error) {
	key, err := k.key()
	if err != nil {
		return nil, err
	}
	return seal(key, dek, aad, k.Rand)
}

// UnwrapKey implements KeyProtector.
func (k *KeyFile) UnwrapKey(wrapped, aad []byte) ([]byte, error) {
	key, err := k.key()
	if err != nil {
		return nil, err
	}
	dek, err := open(key, wrapped, aad)
	if err != nil {
		return nil, fmt.Errorf("%w (key file %s)", ErrWrongKey, k.Path)
	}
	return dek, nil
}

// NewKeyFile writes 32 random bytes to path (mode 0600, atomically) for
// use with KeyFile. It refuses to overwrite an existing file.
func NewKeyFile(path string, rnd io.Reader) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("keystore key file %s already exists; refusing to overwrite it", path)
	}
	key := make([]byte, 32)
	if _, err := io.ReadFull(randOr(rnd), key); err != nil {
		return err
	}
	return writeAtomic(path, []byte(hex.EncodeToString(key)+"\n"))
}

func randOr(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// seal is AES-256-GCM with a random nonce prepended.
func seal(key, plain, aad []byte, rnd io.Reader) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, g.NonceSize(), g.NonceSize()+len(plain)+g.Overhead())
	if _, err := io.ReadFull(randOr(rnd), nonce); err != nil {
		return nil, err
	}
	return g.Seal(nonce, nonce, plain, aad), nil
}

var errOpen = errors.New("message authentication failed")

func open(key, sealed, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if len(sealed) < g.NonceSize()+g.Overhead() {
		return nil, errOpen
	}
	p, err := g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], aad)
	if err != nil {
		return nil, errOpen
	}
	return p, nil
}
