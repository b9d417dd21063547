package secrets

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/testkit"
)

func TestCreateAndLoadKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	mk, err := CreateKeyFile(path, testkit.NewRand("k"))
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "rampart-master-key-v1 ") || !strings.HasSuffix(string(data), "\n") {
		t.Fatalf("key file = %q, want one line starting rampart-master-key-v1", data)
	}
	got, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID() != mk.ID() || len(mk.ID()) != 16 {
		t.Fatalf("loaded ID %s, created %s", got.ID(), mk.ID())
	}
	if _, err := CreateKeyFile(path, testkit.NewRand("k2")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("CreateKeyFile over an existing file: %v, want fs.ErrExist", err)
	}
	if again, _ := LoadKeyFile(path); again.ID() != mk.ID() {
		t.Fatal("CreateKeyFile replaced an existing key")
	}
}

func TestLoadKeyFile(t *testing.T) {
	valid := "rampart-master-key-v1 " + base64.StdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		name    string
		content string // "" with noFile: do not create
		noFile  bool
		mode    os.FileMode
		wantErr string // substring; "" for ok
	}{
		{name: "ok/0600", content: valid + "\n", mode: 0o600},
		{name: "ok/0400", content: valid + "\n", mode: 0o400},
		{name: "ok/no-newline", content: valid, mode: 0o600},
		{name: "ok/crlf", content: valid + "\r\n", mode: 0o600},
		{name: "fail/0644", content: valid, mode: 0o644, wantErr: "is readable by others (mode 0644); run chmod 600 "},
		{name: "fail/0640", content: valid, mode: 0o640, wantErr: "is readable by others (mode 0640); run chmod 600 "},
		{name: "fail/0604", content: valid, mode: 0o604, wantErr: "(mode 0604)"},
		{name: "fail/0620", content: valid, mode: 0o620, wantErr: "is writable by others (mode 0620); run chmod 600 "},
		{name: "fail/missing", noFile: true, wantErr: "does not exist"},
		{name: "fail/empty", content: "", mode: 0o600, wantErr: "is empty"},
		{name: "fail/truncated", content: valid[:40], mode: 0o600, wantErr: "is truncated or damaged"},
		{name: "fail/short-key", content: "rampart-master-key-v1 " + base64.StdEncoding.EncodeToString(make([]byte, 31)), mode: 0o600, wantErr: "is truncated or damaged (31 key bytes, want 32)"},
		{name: "fail/garbled", content: "-----BEGIN PRIVATE KEY-----\n", mode: 0o600, wantErr: "is not a rampart-master-key-v1 file"},
		{name: "fail/bad-base64", content: "rampart-master-key-v1 " + strings.Repeat("!", 44), mode: 0o600, wantErr: "bad base64"},
		{name: "fail/two-lines", content: valid + "\n" + valid + "\n", mode: 0o600, wantErr: "is truncated or damaged"},
		{name: "fail/huge", content: strings.Repeat("x", 5000), mode: 0o600, wantErr: "larger than any"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "master.key")
			if !tt.noFile {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.mode); err != nil {
					t.Fatal(err)
				}
			}
			mk, err := LoadKeyFile(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("LoadKeyFile: %v", err)
				}
				return
			}
			if err == nil || mk != nil {
				t.Fatalf("LoadKeyFile accepted it; want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %q\nwant it to contain %q and the path", err, tt.wantErr)
			}
			if strings.HasPrefix(tt.name, "fail/06") && !errors.Is(err, ErrInsecureKeyFile) {
				t.Fatalf("error %v does not match ErrInsecureKeyFile", err)
			}
		})
	}
}

func TestLoadKeyFileChecksModeBeforeReading(t *testing.T) {
	// A 0644 file with garbage: the mode error, not a parse error, proves
	// the mode is checked first.
	path := filepath.Join(t.TempDir(), "master.key")
	os.WriteFile(path, []byte("garbage"), 0o600)
	os.Chmod(path, 0o644)
	_, err := LoadKeyFile(path)
	want := fmt.Sprintf("master key file %s is readable by others (mode 0644); run chmod 600 %s", path, path)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v\nwant %q", err, want)
	}
}

func TestMasterKeyNeverPrintsKeyBytes(t *testing.T) {
	mk := mustMasterKey(t, "print")
	raw := mk.raw[:]
	forms := map[string]string{
		"%v": fmt.Sprintf("%v", mk), "%+v": fmt.Sprintf("%+v", mk), "%#v": fmt.Sprintf("%#v", mk),
		"%s": fmt.Sprintf("%s", mk), "%x": fmt.Sprintf("%x", mk), "%X": fmt.Sprintf("%X", mk),
		"%q": fmt.Sprintf("%q", mk), "%d": fmt.Sprintf("%d", mk),
		"value %v": fmt.Sprintf("%v", *mk), "value %#v": fmt.Sprintf("%#v", *mk), "value %x": fmt.Sprintf("%x", *mk),
		"in struct": fmt.Sprintf("%+v", struct{ K *MasterKey }{mk}),
	}
	j, _ := json.Marshal(struct{ K *MasterKey }{mk})
	forms["json"] = string(j)
	var sb strings.Builder
	slog.New(slog.NewTextHandler(&sb, nil)).Info("m", "key", mk)
	slog.New(slog.NewJSONHandler(&sb, nil)).Info("m", "key", mk)
	forms["slog"] = sb.String()
	secretForms := []string{
		fmt.Sprintf("%x", raw), fmt.Sprintf("%X", raw), base64.StdEncoding.EncodeToString(raw),
		fmt.Sprint(raw), string(raw),
	}
	for name, out := range forms {
		if !strings.Contains(out, mk.ID()) {
			t.Errorf("%s: %q does not show the key ID", name, out)
		}
		for _, s := range secretForms {
			if strings.Contains(out, s) {
				t.Errorf("%s: %q shows the key bytes", name, out)
			}
		}
	}
}

func TestFromPassphrase(t *testing.T) {
	salt := []byte("0123456789abcdef")
	tests := []struct {
		name string
		pass string
		salt []byte
	}{
		{"ok/16-bytes", "correct horse ba", salt},
		{"fail/15-bytes", "correct horse b", salt},
		{"fail/empty", "", salt},
		{"fail/too-long", strings.Repeat("a", maxPassphraseLen+1), salt},
		{"fail/short-salt", "correct horse battery staple", salt[:15]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mk, err := FromPassphrase([]byte(tt.pass), tt.salt)
			if strings.HasPrefix(tt.name, "ok/") {
				if err != nil {
					t.Fatal(err)
				}
				again, _ := FromPassphrase([]byte(tt.pass), tt.salt)
				other, _ := FromPassphrase([]byte(tt.pass), []byte("fedcba9876543210"))
				if again.ID() != mk.ID() || other.ID() == mk.ID() {
					t.Fatal("passphrase derivation is not a function of passphrase and salt")
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(tt.name, "bytes") && !errors.Is(err, ErrWeakPassphrase) {
				t.Fatalf("%v does not match ErrWeakPassphrase", err)
			}
		})
	}
}

func TestLoadOrCreateSalt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.salt")
	s1, err := LoadOrCreateSalt(path, testkit.NewRand("s1"))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := LoadOrCreateSalt(path, testkit.NewRand("s2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s1) != 16 || string(s1) != string(s2) {
		t.Fatalf("salt %x then %x; want the same 16 bytes", s1, s2)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(data), "rampart-master-salt-v1 ") {
		t.Fatalf("salt file = %q", data)
	}
	os.WriteFile(path, []byte("rampart-master-salt-v1 AAAA\n"), 0o600)
	if _, err := LoadOrCreateSalt(path, testkit.NewRand("s3")); err == nil {
		t.Fatal("a damaged salt file was accepted (or replaced)")
	}
}
