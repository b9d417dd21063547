package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFirmwareCLI drives the offline signing flow: two keys, a root signed
// by its root key, a manifest signed by the firmware key, verification of
// the manifest and image; a changed image, a world-readable passphrase
// file and a wrong passphrase are refused; the private key file is 0600
// and holds no plaintext key.
func TestFirmwareCLI(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	if err := os.WriteFile(p("pass"), []byte("correct horse firmware staple\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(stdin string, args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := runFirmware(args, strings.NewReader(stdin), &out, &errb)
		return out.String() + errb.String(), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run("", args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return out
	}
	must("keygen", "--out", p("root.key"), "--vendor", "acme", "--passphrase-file", p("pass"))
	// Passphrase on standard input works too.
	if out, err := run("another long passphrase\n", "keygen", "--out", p("fw.key"), "--vendor", "acme"); err != nil {
		t.Fatalf("keygen from stdin: %v %s", err, out)
	}
	if fi, _ := os.Stat(p("fw.key")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode())
	}
	must("root", "--out", p("root.json"), "--version", "1", "--root-keys", p("root.key.pub"), "--firmware-keys", p("fw.key.pub"))
	if _, err := run("", "verify", "--root", p("root.json"), "--manifest", p("root.json")); err == nil {
		t.Fatal("unsigned root accepted")
	}
	must("cosign", "--key", p("root.key"), "--in", p("root.json"), "--passphrase-file", p("pass"))
	img := bytes.Repeat([]byte{0x42}, 4096)
	if err := os.WriteFile(p("image.bin"), img, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run("wrong passphrase here\n", "sign", "--key", p("fw.key"), "--model", "thermo", "--version", "2.0", "--in", p("image.bin")); err == nil {
		t.Fatal("wrong passphrase signed")
	}
	if out, err := run("another long passphrase\n", "sign", "--key", p("fw.key"), "--model", "thermo", "--version", "2.0", "--in", p("image.bin"), "--sequence", "7"); err != nil {
		t.Fatalf("sign: %v %s", err, out)
	}
	if out := must("verify", "--root", p("root.json"), "--manifest", p("image.bin.manifest"), "--in", p("image.bin")); !strings.Contains(out, "ok: acme thermo 2.0 sequence 7") {
		t.Fatalf("verify: %s", out)
	}
	img[10] ^= 1
	_ = os.WriteFile(p("image.bin"), img, 0o644)
	if _, err := run("", "verify", "--root", p("root.json"), "--manifest", p("image.bin.manifest"), "--in", p("image.bin")); err == nil {
		t.Fatal("changed image verified")
	}
	_ = os.Chmod(p("pass"), 0o644)
	if out, err := run("", "cosign", "--key", p("root.key"), "--in", p("root.json"), "--passphrase-file", p("pass")); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable passphrase file: %v %s", err, out)
	}
	raw, _ := os.ReadFile(p("root.key"))
	if strings.Contains(string(raw), "PRIVATE") || !strings.Contains(string(raw), "argon") && !strings.Contains(string(raw), "kdf") {
		t.Fatalf("key file: %s", raw)
	}
}
