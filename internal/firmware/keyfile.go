package firmware

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/argon2"

	sdkfw "github.com/rampart-iot/rampart/sdk/firmware"
)

// KDF is the argon2id cost of a sealed signing key.
type KDF struct {
	Time    uint32 `json:"time"`
	MemKiB  uint32 `json:"memory_kib"`
	Threads uint8  `json:"threads"`
}

// DefaultKDF is RFC 9106's second recommended argon2id setting (64 MiB,
// 3 passes): an offline key is unsealed rarely, so the cost is cheap for
// its owner and expensive for whoever steals the file.
var DefaultKDF = KDF{Time: 3, MemKiB: 64 << 10, Threads: 4}

const (
	keyFormat = "rampart-firmware-key-1"
	// MinPassphrase is the shortest passphrase that seals a signing key.
	MinPassphrase = 12
)

// keyFile is a signing key sealed with a passphrase: the Ed25519 seed is
// encrypted with AES-256-GCM under an argon2id key; format, key ID,
// public key and vendor are authenticated as additional data.
type keyFile struct {
	Format string `json:"format"`
	KeyID  string `json:"key_id"`
	Public string `json:"public"` // base64
	Vendor string `json:"vendor"`
	KDF    KDF    `json:"kdf"`
	Salt   string `json:"salt"`
	Nonce  string `json:"nonce"`
	Sealed string `json:"sealed"`
}

func (k *keyFile) aad() []byte {
	return []byte(k.Format + "\x00" + k.KeyID + "\x00" + k.Public + "\x00" + k.Vendor)
}

func kek(pass, salt []byte, p KDF) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(argon2.IDKey(pass, salt, p.Time, p.MemKiB, p.Threads, 32))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// SealKey encrypts key (for vendor) under pass.
func SealKey(key ed25519.PrivateKey, vendor string, pass []byte, p KDF, rand io.Reader) ([]byte, error) {
	if len(pass) < MinPassphrase {
		return nil, fmt.Errorf("the passphrase must be at least %d characters", MinPassphrase)
	}
	pub := key.Public().(ed25519.PublicKey)
	salt, nonce := make([]byte, 16), make([]byte, 12)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rand, nonce); err != nil {
		return nil, err
	}
	f := keyFile{Format: keyFormat, KeyID: sdkfw.KeyID(pub), Public: base64.StdEncoding.EncodeToString(pub), Vendor: vendor, KDF: p,
		Salt: base64.StdEncoding.EncodeToString(salt), Nonce: base64.StdEncoding.EncodeToString(nonce)}
	aead, err := kek(pass, salt, p)
	if err != nil {
		return nil, err
	}
	f.Sealed = base64.StdEncoding.EncodeToString(aead.Seal(nil, nonce, key.Seed(), f.aad()))
	out, err := json.MarshalIndent(f, "", "  ")
	return append(out, '\n'), err
}

// ErrPassphrase is returned for a wrong passphrase (or a altered file).
var ErrPassphrase = errors.New("wrong passphrase, or the key file was altered")

// OpenKey decrypts a sealed key; it returns the key and its vendor.
func OpenKey(data, pass []byte) (ed25519.PrivateKey, string, error) {
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil || f.Format != keyFormat {
		return nil, "", fmt.Errorf("not a Rampart firmware signing key (%s)", keyFormat)
	}
	if f.KDF.Time == 0 || f.KDF.Time > 64 || f.KDF.MemKiB < 8 || f.KDF.MemKiB > 4<<20 || f.KDF.Threads == 0 {
		return nil, "", errors.New("key file has unreasonable argon2id parameters")
	}
	salt, err1 := base64.StdEncoding.DecodeString(f.Salt)
	nonce, err2 := base64.StdEncoding.DecodeString(f.Nonce)
	sealed, err3 := base64.StdEncoding.DecodeString(f.Sealed)
	if err := errors.Join(err1, err2, err3); err != nil || len(nonce) != 12 {
		return nil, "", errors.New("key file is damaged")
	}
	aead, err := kek(pass, salt, f.KDF)
	if err != nil {
		return nil, "", err
	}
	seed, err := aead.Open(nil, nonce, sealed, f.aad())
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, "", ErrPassphrase
	}
	key := ed25519.NewKeyFromSeed(seed)
	if sdkfw.KeyID(key.Public().(ed25519.PublicKey)) != f.KeyID {
		return nil, "", ErrPassphrase
	}
	return key, f.Vendor, nil
}
