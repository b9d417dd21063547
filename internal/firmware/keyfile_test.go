package firmware_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/rampart-iot/rampart/internal/firmware"
	"github.com/rampart-iot/rampart/internal/testkit"
)

func TestSealedKey(t *testing.T) {
	cheap := firmware.KDF{Time: 1, MemKiB: 64, Threads: 1}
	k := key("signer")
	pass := []byte("a long offline passphrase")
	sealed, err := firmware.SealKey(k, "acme", pass, cheap, testkit.NewRand("seal"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, k.Seed()) || bytes.Contains(sealed, []byte(string(k))) {
		t.Fatal("sealed file holds the key in plaintext")
	}
	got, vendor, err := firmware.OpenKey(sealed, pass)
	if err != nil || !got.Equal(k) || vendor != "acme" {
		t.Fatalf("open: %v %q", err, vendor)
	}
	if _, _, err := firmware.OpenKey(sealed, []byte("the wrong passphrase!")); !errors.Is(err, firmware.ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	// Changing the vendor (authenticated data) breaks the seal.
	if _, _, err := firmware.OpenKey(bytes.Replace(sealed, []byte(`"acme"`), []byte(`"evil"`), 1), pass); !errors.Is(err, firmware.ErrPassphrase) {
		t.Fatalf("altered vendor: %v", err)
	}
	if _, err := firmware.SealKey(k, "acme", []byte("short"), cheap, testkit.NewRand("x")); err == nil {
		t.Fatal("short passphrase accepted")
	}
	_ = ed25519.PublicKeySize
}
