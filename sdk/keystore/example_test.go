package keystore_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/rampart-iot/rampart/sdk/keystore"
)

// Make a key inside a passphrase-protected keystore, sign with it, reopen
// it after a "reboot", and see a flipped byte refused.
func Example() {
	dir, _ := os.MkdirTemp("", "keystore-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "device.keystore")
	prot := &keystore.Passphrase{Secret: []byte("a long device passphrase"),
		Params: keystore.Argon2Params{Time: 1, MemoryKiB: 8 << 10, Threads: 1}} // cheap for the example; the default is RFC 9106's
	ks, err := keystore.Create(path, prot)
	if err != nil {
		log.Fatal(err)
	}
	signer, _ := ks.GenerateKey("device.key", keystore.P256)
	if err := ks.Commit(); err != nil {
		log.Fatal(err)
	}
	digest := sha256.Sum256([]byte("hello hub"))
	sig, _ := signer.Sign(rand.Reader, digest[:], crypto.SHA256)

	again, err := keystore.Open(path, prot)
	if err != nil {
		log.Fatal(err)
	}
	s2, _ := again.Signer("device.key")
	fmt.Println("signature verifies after reopen:", ecdsa.VerifyASN1(s2.Public().(*ecdsa.PublicKey), digest[:], sig))

	raw, _ := os.ReadFile(path)
	raw[len(raw)/2] ^= 1
	_ = os.WriteFile(path, raw, 0o600)
	_, err = keystore.Open(path, prot)
	fmt.Println("flipped byte detected:", errors.Is(err, keystore.ErrTampered))

	_, err = keystore.Open(path, &keystore.Passphrase{Secret: []byte("not the passphrase")})
	fmt.Println("refused:", err != nil)
	// Output:
	// signature verifies after reopen: true
	// flipped byte detected: true
	// refused: true
}
