package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/crypto/argon2"
)

// Domain-separation labels. Each use of the master key gets its own.
const (
	masterKeyIDLabel = "rampart/master-key/id/v1\x00"
	masterKeyKEKInfo = "rampart/master-key/wrap/v1"
	keyFileMagic     = "rampart-master-key-v1"
	saltFileMagic    = "rampart-master-salt-v1"
)

// kdf holds the argon2id parameters from defaults.go. It is a variable only
// so that tests of rotation logic can run with cheap ones; nothing else
// changes it.
var kdf = struct {
	time, memKiB uint32
	threads      uint8
}{argonTime, argonMemKiB, argonThreads}

// MasterKey is the key-encryption key. Its bytes never leave the package:
// String, GoString, Format, LogValue and MarshalJSON show only its ID. The
// methods have value receivers so that printing a copy is as safe as
// printing the pointer.
type MasterKey struct {
	id   string
	raw  *[masterKeySize]byte
	wrap cipher.AEAD
}

func newMasterKey(raw []byte) (*MasterKey, error) {
	if len(raw) != masterKeySize {
		return nil, fmt.Errorf("master key is %d bytes, want %d", len(raw), masterKeySize)
	}
	k := new([masterKeySize]byte)
	copy(k[:], raw)
	sum := sha256.Sum256(append([]byte(masterKeyIDLabel), raw...))
	kek, err := hkdf.Key(sha256.New, raw, nil, masterKeyKEKInfo, masterKeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving wrapping key: %w", err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &MasterKey{id: hex.EncodeToString(sum[:])[:masterKeyIDHexLen], raw: k, wrap: aead}, nil
}

// NewMasterKey makes a fresh random master key from rand.
func NewMasterKey(rand io.Reader) (*MasterKey, error) {
	raw := make([]byte, masterKeySize)
	if _, err := io.ReadFull(rand, raw); err != nil {
		return nil, fmt.Errorf("generating master key: %w", err)
	}
	return newMasterKey(raw)
}

// ID is a non-secret fingerprint of the key (16 hex characters of SHA-256
// over a domain label and the key), stored beside every wrapped data key and
// shown in error messages.
func (k MasterKey) ID() string { return k.id }

// String shows the ID only.
func (k MasterKey) String() string { return "master-key:" + k.id }

// GoString shows the ID only.
func (k MasterKey) GoString() string { return "secrets.MasterKey(" + k.id + ")" }

// Format prints String for every verb, so %x or %#v cannot reach the bytes.
func (k MasterKey) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	io.WriteString(f, k.String())
}

// LogValue shows the ID only.
func (k MasterKey) LogValue() slog.Value { return slog.StringValue(k.String()) }

// MarshalJSON shows the ID only.
func (k MasterKey) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(k.String())), nil }

// FromPassphrase derives a master key from pass and salt with argon2id (the
// parameters are in defaults.go). pass must be at least 16 bytes; salt must be
// the 16 bytes from the salt file ([LoadOrCreateSalt]).
func FromPassphrase(pass, salt []byte) (*MasterKey, error) {
	if len(pass) < minPassphraseLen {
		return nil, fmt.Errorf("%w: the passphrase is %d bytes; use at least %d (four or more random words)", ErrWeakPassphrase, len(pass), minPassphraseLen)
	}
	if len(pass) > maxPassphraseLen {
		return nil, fmt.Errorf("%w: the passphrase is %d bytes; the limit is %d", ErrWeakPassphrase, len(pass), maxPassphraseLen)
	}
	if len(salt) != saltSize {
		return nil, fmt.Errorf("passphrase salt is %d bytes, want %d", len(salt), saltSize)
	}
	raw := argon2.IDKey(pass, salt, kdf.time, kdf.memKiB, kdf.threads, masterKeySize)
	return newMasterKey(raw)
}

// CreateKeyFile makes a new random master key and writes it to path, which
// must not exist yet, with mode 0600, then syncs the file and its directory.
// The file is one line, "rampart-master-key-v1 BASE64", so a person who finds
// it knows what it is.
func CreateKeyFile(path string, rand io.Reader) (*MasterKey, error) {
	mk, err := NewMasterKey(rand)
	if err != nil {
		return nil, err
	}
	if err := writeKeyFile(path, mk); err != nil {
		return nil, err
	}
	return mk, nil
}

func keyFileBytes(mk *MasterKey) []byte {
	return []byte(keyFileMagic + " " + base64.StdEncoding.EncodeToString(mk.raw[:]) + "\n")
}

func writeKeyFile(path string, mk *MasterKey) error {
	if err := writeNewFileSync(path, keyFileBytes(mk)); err != nil {
		return fmt.Errorf("writing master key file: %w", err)
	}
	return nil
}

// LoadKeyFile reads the master key at path. Before reading a byte it refuses
// a file that group or others may read or write, and it refuses a missing,
// truncated or garbled file with a message saying what to do.
//
// LoadKeyFile does not look at PATH.next; the hub opens its key with
// [OpenKeyFile], which also finishes an interrupted rotation.
func LoadKeyFile(path string) (*MasterKey, error) {
	data, err := readPrivateFile(path, "master key file")
	if err != nil {
		return nil, err
	}
	raw, err := parseMagicFile(data, keyFileMagic, masterKeySize)
	if err != nil {
		return nil, fmt.Errorf("master key file %s %w", path, err)
	}
	return newMasterKey(raw)
}

// ParseKeyFile parses the contents of a key file (exposed for fuzzing and
// for tools that read the key from somewhere other than a file).
func ParseKeyFile(data []byte) (*MasterKey, error) {
	raw, err := parseMagicFile(data, keyFileMagic, masterKeySize)
	if err != nil {
		return nil, fmt.Errorf("master key %w", err)
	}
	return newMasterKey(raw)
}

// parseMagicFile parses "MAGIC BASE64\n". Errors read after "<what> <path> ".
func parseMagicFile(data []byte, magic string, size int) ([]byte, error) {
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("is %d bytes, larger than any %s file (limit %d); check the path", len(data), magic, maxKeyFileSize)
	}
	line := bytes.TrimSuffix(data, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, fmt.Errorf("is empty (truncated?); restore it from your backup")
	}
	name, enc, ok := bytes.Cut(line, []byte(" "))
	if !ok || string(name) != magic {
		return nil, fmt.Errorf("is not a %s file (it should be one line starting %q); check the path", magic, magic+" ")
	}
	if want := base64.StdEncoding.EncodedLen(size); len(enc) != want {
		return nil, fmt.Errorf("is truncated or damaged (%d base64 characters, want %d); restore it from your backup", len(enc), want)
	}
	raw := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
	n, err := base64.StdEncoding.Strict().Decode(raw, enc)
	if err != nil {
		return nil, fmt.Errorf("is damaged (bad base64: %v); restore it from your backup", err)
	}
	if n != size {
		return nil, fmt.Errorf("is truncated or damaged (%d key bytes, want %d); restore it from your backup", n, size)
	}
	return raw[:n], nil
}

// readPrivateFile opens path, checks it is a regular file that only its owner
// may read or write, and only then reads it (at most maxKeyFileSize+1 bytes).
func readPrivateFile(path, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s %s does not exist; create it with the same key that set up this data folder, or point RAMPART_MASTER_KEY_FILE at it: %w", what, path, err)
		}
		return nil, fmt.Errorf("opening %s: %w", what, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking %s %s: %w", what, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file (mode %s)", what, path, fi.Mode())
	}
	if err := checkPrivateMode(path, what, fi.Mode()); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, path, err)
	}
	return data, nil
}

func checkPrivateMode(path, what string, mode fs.FileMode) error {
	perm := mode.Perm()
	if perm&0o077 == 0 {
		return nil
	}
	how := "readable"
	if perm&0o044 == 0 {
		how = "writable"
	}
	return fmt.Errorf("%w: %s %s is %s by others (mode %04o); run chmod 600 %s", ErrInsecureKeyFile, what, path, how, perm, path)
}

// LoadOrCreateSalt returns the passphrase salt stored at path, creating the
// file with 16 bytes from rand if it does not exist. The salt is not secret;
// it makes the same passphrase give a different key on every installation.
func LoadOrCreateSalt(path string, rand io.Reader) ([]byte, error) {
	salt, err := LoadSalt(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return salt, err
	}
	salt = make([]byte, saltSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, fmt.Errorf("generating salt: %w", err)
	}
	err = writeNewFileSync(path, saltFileBytes(salt))
	if errors.Is(err, fs.ErrExist) {
		return LoadSalt(path) // another process created it first
	}
	if err != nil {
		return nil, fmt.Errorf("writing salt file: %w", err)
	}
	return salt, nil
}

// LoadSalt reads the salt file at path ("rampart-master-salt-v1 BASE64").
func LoadSalt(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening passphrase salt file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading passphrase salt file %s: %w", path, err)
	}
	salt, err := parseMagicFile(data, saltFileMagic, saltSize)
	if err != nil {
		return nil, fmt.Errorf("passphrase salt file %s %w", path, err)
	}
	return salt, nil
}

func saltFileBytes(salt []byte) []byte {
	return []byte(saltFileMagic + " " + base64.StdEncoding.EncodeToString(salt) + "\n")
}

// writeNewFileSync creates path (O_EXCL, 0600), writes data, syncs the file
// and then its directory so the new name survives a crash.
func writeNewFileSync(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyFileMode)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a create, rename or remove in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
