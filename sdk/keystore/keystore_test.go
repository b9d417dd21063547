package keystore

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var cheap = Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

func testStore(t *testing.T) (*Store, KeyProtector) {
	t.Helper()
	p := &Passphrase{Secret: []byte("correct horse battery"), Params: cheap}
	s, err := Create(filepath.Join(t.TempDir(), "device.keystore"), p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GenerateKey("device", P256); err != nil {
		t.Fatal(err)
	}
	s.Put("chain", []byte("-----BEGIN CERTIFICATE-----"))
	s.PutSecret("mqtt", NewSecret("s3cr3t-value"))
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	return s, p
}

func TestRoundTrip(t *testing.T) {
	s, p := testStore(t)
	st, err := os.Stat(s.Path())
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keystore mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	raw, _ := os.ReadFile(s.Path())
	if bytes.Contains(raw, []byte("s3cr3t")) || bytes.Contains(raw, []byte("CERTIFICATE")) {
		t.Fatal("the file holds plaintext")
	}
	sg, _ := s.Signer("device")
	o, err := Open(s.Path(), p)
	if err != nil {
		t.Fatal(err)
	}
	sg2, err := o.Signer("device")
	if err != nil || !sg2.Public().(*ecdsa.PublicKey).Equal(sg.Public()) {
		t.Fatalf("reopened key differs: %v", err)
	}
	if v, _ := o.Get("chain"); string(v) != "-----BEGIN CERTIFICATE-----" {
		t.Fatalf("item: %q", v)
	}
	if v, _ := o.Secret("mqtt"); v.Reveal() != "s3cr3t-value" {
		t.Fatal("secret lost")
	}
	if o.Generation() != 2 {
		t.Fatalf("generation %d, want 2", o.Generation())
	}
	entries, _ := os.ReadDir(filepath.Dir(s.Path()))
	if len(entries) != 1 {
		t.Fatalf("leftover files: %v", entries)
	}
}

// TestTamper flips every bit position of a byte in turn (each byte of the
// file) and recomputes nothing: every one is refused as tampered. Then it
// flips bytes and recomputes the checksum (a deliberate edit): still
// refused, as tampered or as the wrong key, never opened.
func TestTamper(t *testing.T) {
	s, p := testStore(t)
	good, _ := os.ReadFile(s.Path())
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x01
		if err := os.WriteFile(s.Path(), bad, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(s.Path(), p)
		if !errors.Is(err, ErrTampered) {
			t.Fatalf("byte %d flipped: %v, want ErrTampered", i, err)
		}
	}
	body := len(good) - sha256.Size
	for i := 0; i < body; i++ {
		bad := bytes.Clone(good[:body])
		bad[i] ^= 0x80
		sum := sha256.Sum256(bad)
		if err := os.WriteFile(s.Path(), append(bad, sum[:]...), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(s.Path(), p)
		if !errors.Is(err, ErrTampered) && !errors.Is(err, ErrWrongKey) {
			t.Fatalf("byte %d edited with a fixed checksum: %v", i, err)
		}
	}
	if err := os.WriteFile(s.Path(), good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s.Path(), p); !errors.Is(err, ErrTampered) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestWrongKey(t *testing.T) {
	s, _ := testStore(t)
	_, err := Open(s.Path(), &Passphrase{Secret: []byte("a wrong passphrase"), Params: cheap})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	dir := t.TempDir()
	kf := filepath.Join(dir, "ks.key")
	if err := NewKeyFile(kf, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s.Path(), &KeyFile{Path: kf}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("another protector kind: %v", err)
	}
}

func TestKeyFileAndRekey(t *testing.T) {
	dir := t.TempDir()
	kf := filepath.Join(dir, "ks.key")
	if err := NewKeyFile(kf, nil); err != nil {
		t.Fatal(err)
	}
	if err := NewKeyFile(kf, nil); err == nil {
		t.Fatal("NewKeyFile overwrote a key file")
	}
	s, err := Create(filepath.Join(dir, "a.keystore"), &KeyFile{Path: kf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(s.Path(), &KeyFile{Path: kf}); !errors.Is(err, ErrExists) {
		t.Fatalf("Create over an existing keystore: %v", err)
	}
	if _, err := s.GenerateKey("k", Ed25519); err != nil {
		t.Fatal(err)
	}
	pp := &Passphrase{Secret: []byte("moved to a passphrase"), Params: cheap}
	if err := s.Rekey(pp); err != nil {
		t.Fatal(err)
	}
	o, err := Open(s.Path(), pp)
	if err != nil {
		t.Fatal(err)
	}
	if sg, err := o.Signer("k"); err != nil || len(sg.Public().(ed25519.PublicKey)) != ed25519.PublicKeySize {
		t.Fatalf("rekeyed store: %v", err)
	}
	if err := os.Chmod(kf, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(filepath.Join(dir, "b.keystore"), &KeyFile{Path: kf}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file was used: %v", err)
	}
}

// TestNoKeyBytesEscape: the signer is not the private key, and no printing
// of the store's values shows a secret.
func TestNoKeyBytesEscape(t *testing.T) {
	s, _ := testStore(t)
	sg, _ := s.Signer("device")
	if _, ok := sg.(*ecdsa.PrivateKey); ok {
		t.Fatal("Signer returned the private key itself")
	}
	if _, err := x509.MarshalPKCS8PrivateKey(sg); err == nil {
		t.Fatal("the signer marshals as a private key")
	}
	sec, _ := s.Secret("mqtt")
	j, _ := json.Marshal(map[string]any{"s": sec})
	for _, out := range []string{fmt.Sprint(sec), fmt.Sprintf("%v %+v %#v %s", sec, sec, sec, sec), string(j), fmt.Sprint(sg)} {
		if strings.Contains(out, "s3cr3t") || strings.Contains(out, "D:") {
			t.Fatalf("printed a secret: %s", out)
		}
	}
}

func TestShortPassphraseRefused(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "k"), &Passphrase{Secret: []byte("1234")}); err == nil {
		t.Fatal("a 4-byte passphrase was accepted")
	}
}
