// Package keystore keeps a device's private keys and credentials encrypted
// at rest.
//
// A keystore is one file, mode 0600, written atomically (a temporary file in
// the same folder, fsync, rename, fsync of the folder), so a power cut leaves
// either the old or the new file, never half of one. Its contents are sealed
// with AES-256-GCM under a data key that a KeyProtector wraps: a passphrase
// through argon2id (Passphrase), a key file (KeyFile), or a TPM, secure
// element or PKCS#11 token implementing the three-method interface.
//
// Private keys never leave the store as bytes: GenerateKey makes a key
// inside it and Signer returns a crypto.Signer that signs with it (for a
// CSR, a TLS handshake). A file that was modified, truncated or had a single
// bit flipped is refused with ErrTampered; a wrong passphrase or key file is
// refused with ErrWrongKey. Neither is ever silently used.
//
// File format (version 1):
//
//	"RKS1" | uint32 header length | header (JSON: v, kind, wrapped data key)
//	       | nonce(12) + AES-256-GCM(contents, aad = everything before)
//	       | SHA-256 of everything before
//
// The trailing checksum tells accidental damage (ErrTampered, with no key
// needed) from a wrong key; GCM's tag catches deliberate changes even when
// the checksum is recomputed.
package keystore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// Limits, each with its reason.
const (
	// maxFileBytes: a device keystore holds a few keys and certificate
	// chains; refusing more keeps a corrupted length from allocating.
	maxFileBytes = 1 << 20
	// minPassphraseLen: argon2id slows guessing, it cannot save "1234".
	minPassphraseLen = 12
	// maxArgonTime / maxArgonMemoryKiB bound what a tampered header can
	// make Open spend before the tag check fails.
	maxArgonTime      = 64
	maxArgonMemoryKiB = 1 << 20
	magic             = "RKS1"
	formatVersion     = 1
)

// Sentinel errors; test with errors.Is.
var (
	// ErrTampered: the file is not what this package wrote (a flipped
	// bit, truncation, an edited header or ciphertext).
	ErrTampered = errors.New("keystore is corrupted or was modified")
	// ErrWrongKey: the protector (passphrase, key file, TPM) does not open
	// this keystore.
	ErrWrongKey = errors.New("keystore does not open with this key")
	// ErrNotFound: no key, item or secret of that name.
	ErrNotFound = errors.New("keystore has no entry of that name")
	// ErrExists: Create found a file already there.
	ErrExists = errors.New("keystore already exists")
)

// Algorithm is a device key type the hub accepts.
type Algorithm string

// Key algorithms.
const (
	P256    Algorithm = "P-256"
	P384    Algorithm = "P-384"
	Ed25519 Algorithm = "Ed25519"
)

// Secret is a credential (an MQTT password, a token) kept in the store.
// It prints as [REDACTED] through fmt, JSON and slog; Reveal gives the
// value to the code that must send it.
type Secret struct{ b []byte }

// NewSecret wraps s.
func NewSecret(s string) Secret { return Secret{b: []byte(s)} }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s.b) }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return len(s.b) == 0 }

// Equal compares in constant time.
func (s Secret) Equal(o Secret) bool { return subtle.ConstantTimeCompare(s.b, o.b) == 1 }

func (Secret) String() string               { return "[REDACTED]" }
func (Secret) GoString() string             { return "[REDACTED]" }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"[REDACTED]"`), nil }
func (Secret) LogValue() slog.Value         { return slog.StringValue("[REDACTED]") }
func (s Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[REDACTED]") }
func (Secret) MarshalText() ([]byte, error) { return []byte("[REDACTED]"), nil }

type keyEntry struct {
	Alg   Algorithm `json:"alg"`
	PKCS8 []byte    `json:"pkcs8"`
}

// contents is the sealed plaintext.
type contents struct {
	Generation uint64              `json:"generation"`
	Keys       map[string]keyEntry `json:"keys"`
	Items      map[string][]byte   `json:"items"`
	Secrets    map[string][]byte   `json:"secrets"`
}

type header struct {
	V       int    `json:"v"`
	Kind    string `json:"kind"`
	Wrapped []byte `json:"wrapped"`
}

// Store is an open keystore. Changes stay in memory until Commit writes
// them. A Store is safe for concurrent use.
type Store struct {
	mu      sync.Mutex
	path    string
	prot    KeyProtector
	rand    io.Reader
	dek     []byte
	hdr     []byte // magic | len | header JSON, the payload's aad
	c       contents
	signers map[string]*signer
}

// Option configures Create and Open.
type Option func(*Store)

// WithRand sets the randomness source for keys, nonces and the data key
// (tests use a deterministic one); the default is crypto/rand.
func WithRand(r io.Reader) Option { return func(s *Store) { s.rand = r } }

// Create makes a new, empty keystore at path, protected by p. It refuses
// to overwrite an existing file (ErrExists).
func Create(path string, p KeyProtector, opts ...Option) (*Store, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, path)
	}
	s := newStore(path, p, opts)
	if err := s.rekey(p); err != nil {
		return nil, err
	}
	if err := s.commitLocked(); err != nil {
		return nil, err
	}
	return s, nil
}

func newStore(path string, p KeyProtector, opts []Option) *Store {
	s := &Store{path: path, prot: p, signers: map[string]*signer{},
		c: contents{Keys: map[string]keyEntry{}, Items: map[string][]byte{}, Secrets: map[string][]byte{}}}
	for _, o := range opts {
		o(s)
	}
	s.rand = randOr(s.rand)
	return s
}

// rekey makes a fresh data key and wraps it under p.
func (s *Store) rekey(p KeyProtector) error {
	dek := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, dek); err != nil {
		return err
	}
	wrapped, err := p.WrapKey(dek, []byte(magic+p.Kind()))
	if err != nil {
		return fmt.Errorf("wrapping the keystore key: %w", err)
	}
	h, err := json.Marshal(header{V: formatVersion, Kind: p.Kind(), Wrapped: wrapped})
	if err != nil {
		return err
	}
	hdr := make([]byte, 8, 8+len(h))
	copy(hdr, magic)
	binary.BigEndian.PutUint32(hdr[4:], uint32(len(h)))
	s.prot, s.dek, s.hdr = p, dek, append(hdr, h...)
	return nil
}

// Open reads and authenticates the keystore at path. A modified file
// gives ErrTampered; a protector that does not open it gives ErrWrongKey.
func Open(path string, p KeyProtector, opts ...Option) (*Store, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening keystore: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading keystore %s: %w", path, err)
	}
	s := newStore(path, p, opts)
	if err := s.decode(raw); err != nil {
		return nil, fmt.Errorf("keystore %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) decode(raw []byte) error {
	if len(raw) > maxFileBytes {
		return fmt.Errorf("%w: larger than %d bytes", ErrTampered, maxFileBytes)
	}
	if len(raw) < 8+sha256.Size || string(raw[:4]) != magic {
		return fmt.Errorf("%w: not a keystore file (bad magic or truncated)", ErrTampered)
	}
	body, sum := raw[:len(raw)-sha256.Size], raw[len(raw)-sha256.Size:]
	if want := sha256.Sum256(body); subtle.ConstantTimeCompare(want[:], sum) != 1 {
		return fmt.Errorf("%w: checksum mismatch", ErrTampered)
	}
	hl := int(binary.BigEndian.Uint32(body[4:8]))
	if hl > len(body)-8 {
		return fmt.Errorf("%w: header length out of range", ErrTampered)
	}
	var h header
	dec := json.NewDecoder(bytes.NewReader(body[8 : 8+hl]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil || h.V != formatVersion {
		return fmt.Errorf("%w: bad header", ErrTampered)
	}
	if h.Kind != s.prot.Kind() {
		return fmt.Errorf("%w: the keystore is protected by %q, not %q", ErrWrongKey, h.Kind, s.prot.Kind())
	}
	dek, err := s.prot.UnwrapKey(h.Wrapped, []byte(magic+h.Kind))
	if err != nil {
		return err
	}
	plain, err := open(dek, body[8+hl:], body[:8+hl])
	if err != nil {
		return fmt.Errorf("%w: contents do not authenticate", ErrTampered)
	}
	var c contents
	if err := json.Unmarshal(plain, &c); err != nil {
		return fmt.Errorf("%w: contents: %v", ErrTampered, err)
	}
	if c.Keys == nil {
		c.Keys = map[string]keyEntry{}
	}
	if c.Items == nil {
		c.Items = map[string][]byte{}
	}
	if c.Secrets == nil {
		c.Secrets = map[string][]byte{}
	}
	for name, k := range c.Keys {
		priv, err := x509.ParsePKCS8PrivateKey(k.PKCS8)
		if err != nil {
			return fmt.Errorf("%w: key %q: %v", ErrTampered, name, err)
		}
		cs, ok := priv.(crypto.Signer)
		if !ok {
			return fmt.Errorf("%w: key %q is not a signing key", ErrTampered, name)
		}
		s.signers[name] = &signer{priv: cs}
	}
	s.dek, s.hdr, s.c = dek, append([]byte(nil), body[:8+hl]...), c
	return nil
}

// Path returns the keystore's file.
func (s *Store) Path() string { return s.path }

// Generation counts commits since the keystore was created.
func (s *Store) Generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c.Generation
}

// Commit writes the keystore atomically.
func (s *Store) Commit() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitLocked()
}

func (s *Store) commitLocked() error {
	c := s.c
	c.Generation++
	plain, err := json.Marshal(c)
	if err != nil {
		return err
	}
	sealed, err := seal(s.dek, plain, s.hdr, s.rand)
	if err != nil {
		return err
	}
	out := make([]byte, 0, len(s.hdr)+len(sealed)+sha256.Size)
	out = append(append(out, s.hdr...), sealed...)
	sum := sha256.Sum256(out)
	if err := writeAtomic(s.path, append(out, sum[:]...)); err != nil {
		return fmt.Errorf("writing keystore %s: %w", s.path, err)
	}
	s.c.Generation = c.Generation
	return nil
}

// Rekey re-wraps the keystore under a new protector (a new passphrase, a
// move to a TPM) with a fresh data key, and commits.
func (s *Store) Rekey(p KeyProtector) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.rekey(p); err != nil {
		return err
	}
	return s.commitLocked()
}

// GenerateKey makes a new private key named name inside the store
// (replacing one of that name) and returns its signer. Commit to keep it.
func (s *Store) GenerateKey(name string, alg Algorithm) (crypto.Signer, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case P256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), s.rand)
	case P384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), s.rand)
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(s.rand)
	default:
		return nil, fmt.Errorf("unsupported key algorithm %q (use P-256, P-384 or Ed25519)", alg)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sg := &signer{priv: priv}
	s.c.Keys[name] = keyEntry{Alg: alg, PKCS8: der}
	s.signers[name] = sg
	return sg, nil
}

// Signer returns a signer for the key named name (ErrNotFound if none).
// The signer does not expose the private key.
func (s *Store) Signer(name string) (crypto.Signer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sg, ok := s.signers[name]
	if !ok {
		return nil, fmt.Errorf("%w: key %q", ErrNotFound, name)
	}
	return sg, nil
}

// RenameKey moves the key from to the name to (replacing it). Commit to
// keep the change.
func (s *Store) RenameKey(from, to string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.c.Keys[from]
	if !ok {
		return fmt.Errorf("%w: key %q", ErrNotFound, from)
	}
	s.c.Keys[to], s.signers[to] = k, s.signers[from]
	delete(s.c.Keys, from)
	delete(s.signers, from)
	return nil
}

// Put stores a non-secret item (a certificate chain, a device ID, a trust
// bundle); sealing it still protects its integrity. Commit to keep it.
func (s *Store) Put(name string, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Items[name] = append([]byte(nil), v...)
}

// Get returns an item stored with Put.
func (s *Store) Get(name string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.c.Items[name]
	return append([]byte(nil), v...), ok
}

// PutSecret stores a credential. Commit to keep it.
func (s *Store) PutSecret(name string, v Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Secrets[name] = append([]byte(nil), v.b...)
}

// Secret returns a credential stored with PutSecret.
func (s *Store) Secret(name string) (Secret, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.c.Secrets[name]
	return Secret{b: append([]byte(nil), v...)}, ok
}

// Delete removes the key, item and secret named name. Commit to keep it.
func (s *Store) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.c.Keys, name)
	delete(s.signers, name)
	delete(s.c.Items, name)
	delete(s.c.Secrets, name)
}

// Names lists the entries (keys, items, secrets), sorted, without values.
func (s *Store) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for n := range s.c.Keys {
		seen[n] = true
	}
	for n := range s.c.Items {
		seen[n] = true
	}
	for n := range s.c.Secrets {
		seen[n] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Close forgets the data key held in memory. The Store is unusable after.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.dek)
	s.dek = nil
	return nil
}

// signer signs with a key held in the store; it has no method or exported
// field that yields the key.
type signer struct{ priv crypto.Signer }

func (s *signer) Public() crypto.PublicKey { return s.priv.Public() }

func (s *signer) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.priv.Sign(r, digest, opts)
}

func (*signer) String() string { return "keystore signer [REDACTED]" }

// writeAtomic writes data to path with mode 0600: a temporary file in the
// same folder, fsync, rename over path, fsync of the folder.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
