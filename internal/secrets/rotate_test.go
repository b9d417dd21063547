package secrets

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/testkit"
)

func TestRotate(t *testing.T) {
	ctx := context.Background()
	mk1, mk2, mk3 := mustMasterKey(t, "mk1"), mustMasterKey(t, "mk2"), mustMasterKey(t, "mk3")
	tests := []struct {
		name     string
		empty    bool
		old, new *MasterKey
		wantErr  error
	}{
		{name: "ok/rewrap", old: mk1, new: mk2},
		{name: "fail/wrong-old-key", old: mk3, new: mk2, wantErr: ErrWrongMasterKey},
		{name: "fail/same-key", old: mk1, new: mk1},
		{name: "fail/empty-store", empty: true, old: mk1, new: mk2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			var kr *Keyring
			var ct []byte
			if !tt.empty {
				kr = mustKeyring(t, store, mk1, "r")
				ct = mustSeal(t, kr, []byte("before"), nil)
			}
			before, writes := store.snapshot()
			err := Rotate(ctx, store, tt.old, tt.new, testkit.NewRand("rot"), testkit.NewClock(epoch).Now)
			after, w := store.snapshot()
			if !strings.HasPrefix(tt.name, "ok/") {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("Rotate: %v, want %v", err, tt.wantErr)
				}
				if w != writes || !reflect.DeepEqual(before, after) {
					t.Fatal("a refused rotation changed the store")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != 2 {
				t.Fatalf("%d keys after rotation, want 2", len(after))
			}
			for _, k := range after {
				if k.KEKID != mk2.ID() {
					t.Fatalf("key %s still wrapped by %s", k.ID, k.KEKID)
				}
				if k.ID == before[0].ID && (k.Active || !k.CreatedAt.Equal(before[0].CreatedAt)) {
					t.Fatalf("old key after rotation: %+v", k)
				}
			}
			if _, err := OpenKeyring(ctx, store, mk1, testkit.NewRand("x"), testkit.NewClock(epoch).Now); !errors.Is(err, ErrWrongMasterKey) {
				t.Fatalf("old master key after rotation: %v, want ErrWrongMasterKey", err)
			}
			kr2 := mustKeyring(t, store, mk2, "r2")
			if got, err := kr2.Open(ct, nil); err != nil || string(got) != "before" {
				t.Fatalf("new keyring opens old ciphertext: %q, %v", got, err)
			}
			if kr2.ActiveKeyID() == kr.ActiveKeyID() {
				t.Fatal("no fresh active data key")
			}
			// The keyring opened before the rotation still works both ways.
			ct2 := mustSeal(t, kr, []byte("during"), nil)
			if got, err := kr2.Open(ct2, nil); err != nil || string(got) != "during" {
				t.Fatalf("%q, %v", got, err)
			}
		})
	}
}

func TestRotateKeyFile(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	path := filepath.Join(t.TempDir(), "master.key")
	old, err := CreateKeyFile(path, testkit.NewRand("old"))
	if err != nil {
		t.Fatal(err)
	}
	kr := mustKeyring(t, store, old, "r")
	ct := mustSeal(t, kr, []byte("v"), nil)

	newID, err := RotateKeyFile(ctx, store, path, testkit.NewRand("new"), testkit.NewClock(epoch).Now)
	if err != nil {
		t.Fatal(err)
	}
	if newID == old.ID() {
		t.Fatal("the key did not change")
	}
	if _, err := os.Stat(path + ".next"); !os.IsNotExist(err) {
		t.Fatalf("PATH.next left behind: %v", err)
	}
	loaded, err := OpenKeyFile(ctx, store, path)
	if err != nil || loaded.ID() != newID {
		t.Fatalf("OpenKeyFile = %v, %v; want %s", loaded, err, newID)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("rotated key file mode %04o", fi.Mode().Perm())
	}
	kr2 := mustKeyring(t, store, loaded, "r2")
	if got, err := kr2.Open(ct, nil); err != nil || string(got) != "v" {
		t.Fatalf("%q, %v", got, err)
	}
}

var errCrash = errors.New("simulated crash")

func TestRotateKeyFileCrashRecovery(t *testing.T) {
	tests := []struct {
		name      string
		crashAt   string // crash hook step; "" = see garbleNext
		garble    bool   // crash while writing PATH.next: it is empty
		wantNewer bool   // the store ends up under the new key
	}{
		{name: "ok/crash-after-next-written", crashAt: "next-written"},
		{name: "ok/crash-while-writing-next", garble: true},
		{name: "ok/crash-after-commit-before-rename", crashAt: "committed", wantNewer: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			store := newMemStore()
			path := filepath.Join(t.TempDir(), "master.key")
			old, err := CreateKeyFile(path, testkit.NewRand("old"))
			if err != nil {
				t.Fatal(err)
			}
			kr := mustKeyring(t, store, old, "r")
			ct := mustSeal(t, kr, []byte("v"), nil)

			if tt.garble {
				os.WriteFile(path+".next", nil, 0o600)
			} else {
				crashHook = func(step string) error {
					if step == tt.crashAt {
						return errCrash
					}
					return nil
				}
				_, err = RotateKeyFile(ctx, store, path, testkit.NewRand("new"), testkit.NewClock(epoch).Now)
				crashHook = nil
				if !errors.Is(err, errCrash) {
					t.Fatalf("RotateKeyFile: %v, want the simulated crash", err)
				}
			}
			if _, err := os.Stat(path + ".next"); err != nil {
				t.Fatalf("PATH.next should exist after the crash: %v", err)
			}

			// Start: OpenKeyFile picks the key that unwraps the store.
			mk, err := OpenKeyFile(ctx, store, path)
			if err != nil {
				t.Fatal(err)
			}
			if (mk.ID() != old.ID()) != tt.wantNewer {
				t.Fatalf("OpenKeyFile chose %s (old %s), want newer=%v", mk.ID(), old.ID(), tt.wantNewer)
			}
			kr2 := mustKeyring(t, store, mk, "r2")
			if got, err := kr2.Open(ct, nil); err != nil || string(got) != "v" {
				t.Fatalf("%q, %v", got, err)
			}
			_, nextErr := os.Stat(path + ".next")
			onDisk, err := LoadKeyFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNewer {
				if !os.IsNotExist(nextErr) || onDisk.ID() != mk.ID() {
					t.Fatalf("rename not finished: next=%v, PATH holds %s, want %s", nextErr, onDisk.ID(), mk.ID())
				}
				return
			}
			// Uncommitted: PATH.next stays, and a new rotation refuses until
			// a person removes it.
			if nextErr != nil || onDisk.ID() != old.ID() {
				t.Fatalf("next=%v, PATH holds %s", nextErr, onDisk.ID())
			}
			_, err = RotateKeyFile(ctx, store, path, testkit.NewRand("new2"), testkit.NewClock(epoch).Now)
			if !errors.Is(err, ErrRotationPending) || !strings.Contains(err.Error(), "delete "+path+".next") {
				t.Fatalf("RotateKeyFile with a stale PATH.next: %v, want ErrRotationPending", err)
			}
			os.Remove(path + ".next")
			if _, err := RotateKeyFile(ctx, store, path, testkit.NewRand("new2"), testkit.NewClock(epoch).Now); err != nil {
				t.Fatalf("RotateKeyFile after removing PATH.next: %v", err)
			}
		})
	}
}

func TestRotateKeyFileWrongKeyWritesNothing(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	dir := t.TempDir()
	mustKeyring(t, store, mustMasterKey(t, "real"), "r")
	path := filepath.Join(dir, "master.key")
	if _, err := CreateKeyFile(path, testkit.NewRand("imposter")); err != nil {
		t.Fatal(err)
	}
	before, writes := store.snapshot()
	_, err := RotateKeyFile(ctx, store, path, testkit.NewRand("new"), testkit.NewClock(epoch).Now)
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("%v, want ErrWrongMasterKey", err)
	}
	after, w := store.snapshot()
	if w != writes || !reflect.DeepEqual(before, after) {
		t.Fatal("store changed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("files left: %v", entries)
	}
}

func TestRotatePassphrase(t *testing.T) {
	ctx := context.Background()
	oldPass := []byte("correct horse battery staple")
	newPass := []byte("tremble quiet orbit lantern")
	// Cheap argon2 parameters: this tests the rotation steps, and
	// TestFromPassphrase covers the real ones.
	saved := kdf
	kdf.time, kdf.memKiB, kdf.threads = 1, 64, 1
	t.Cleanup(func() { kdf = saved })
	tests := []struct {
		name      string
		crashAt   string
		wantNewer bool
	}{
		{name: "ok/complete", wantNewer: true},
		{name: "ok/crash-after-commit-before-rename", crashAt: "committed", wantNewer: true},
		{name: "ok/crash-after-next-written", crashAt: "next-written"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			salt := filepath.Join(t.TempDir(), "master.salt")
			old, err := OpenPassphrase(ctx, store, oldPass, salt, testkit.NewRand("salt"))
			if err != nil {
				t.Fatal(err)
			}
			kr := mustKeyring(t, store, old, "r")
			ct := mustSeal(t, kr, []byte("v"), nil)
			crashHook = func(step string) error {
				if step == tt.crashAt {
					return errCrash
				}
				return nil
			}
			newID, err := RotatePassphrase(ctx, store, oldPass, newPass, salt, testkit.NewRand("rot"), testkit.NewClock(epoch).Now)
			crashHook = nil
			if tt.crashAt == "" && err != nil {
				t.Fatal(err)
			}
			if tt.crashAt != "" && !errors.Is(err, errCrash) {
				t.Fatalf("RotatePassphrase: %v, want the simulated crash", err)
			}
			pass := oldPass
			if tt.wantNewer {
				pass = newPass
			}
			mk, err := OpenPassphrase(ctx, store, pass, salt, testkit.NewRand("unused"))
			if err != nil {
				t.Fatal(err)
			}
			if (mk.ID() != old.ID()) != tt.wantNewer || (tt.crashAt == "" && mk.ID() != newID) {
				t.Fatalf("OpenPassphrase chose %s (old %s new %s)", mk.ID(), old.ID(), newID)
			}
			kr2 := mustKeyring(t, store, mk, "r2")
			if got, err := kr2.Open(ct, nil); err != nil || string(got) != "v" {
				t.Fatalf("%q, %v", got, err)
			}
			if tt.wantNewer {
				if _, err := os.Stat(salt + ".next"); !os.IsNotExist(err) {
					t.Fatalf("salt.next not renamed: %v", err)
				}
			}
		})
	}
}
