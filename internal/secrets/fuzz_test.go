package secrets

import (
	"bytes"
	"testing"
)

// FuzzOpen: Keyring.Open on arbitrary bytes never panics and never succeeds
// unless given exactly a ciphertext the keyring sealed for that aad.
func FuzzOpen(f *testing.F) {
	kr := mustKeyring(f, newMemStore(), mustMasterKey(f, "fuzz"), "r")
	aad := []byte("rampart/fuzz")
	valid := map[string]string{}
	for _, p := range []string{"", "a", "a longer plaintext value"} {
		ct := mustSeal(f, kr, []byte(p), aad)
		valid[string(ct)] = p
		f.Add(ct, aad)
		f.Add(ct, []byte("other"))
		f.Add(ct[:len(ct)-1], aad)
	}
	f.Add([]byte{}, []byte{})
	f.Add([]byte{cipherV1}, aad)
	f.Add(bytes.Repeat([]byte{cipherV1}, headerSize+tagSize), aad)
	f.Fuzz(func(t *testing.T, ct, ad []byte) {
		got, err := kr.Open(ct, ad)
		if err != nil {
			if got != nil {
				t.Fatalf("Open returned data with an error: %q", got)
			}
			return
		}
		p, ok := valid[string(ct)]
		if !ok || !bytes.Equal(ad, aad) || string(got) != p {
			t.Fatalf("Open succeeded on input it did not seal: ct=%x aad=%q -> %q", ct, ad, got)
		}
	})
}

// FuzzParseKeyFile: the key file parser never panics, and accepts only the
// canonical line (with an optional line ending).
func FuzzParseKeyFile(f *testing.F) {
	mk := mustMasterKey(f, "fuzz")
	good := keyFileBytes(mk)
	f.Add(good)
	f.Add(bytes.TrimSuffix(good, []byte("\n")))
	f.Add(good[:30])
	f.Add([]byte("rampart-master-key-v1 "))
	f.Add([]byte("rampart-master-key-v1 ===="))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseKeyFile(data)
		if err != nil {
			if k != nil {
				t.Fatal("key returned with an error")
			}
			return
		}
		canon := keyFileBytes(k)
		line := bytes.TrimSuffix(bytes.TrimSuffix(data, []byte("\n")), []byte("\r"))
		if !bytes.Equal(append(line, '\n'), canon) {
			t.Fatalf("accepted non-canonical key file %q", data)
		}
	})
}
