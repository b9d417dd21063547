package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/testkit"
)

var keysEpoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func openTestDB(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestKeyStoreUpdateKeys(t *testing.T) {
	ctx := context.Background()
	k1 := secrets.WrappedKey{ID: "0000000000000001", KEKID: "aaaaaaaaaaaaaaaa", Wrapped: []byte{1, 2, 3}, CreatedAt: keysEpoch, Active: true}
	k2 := secrets.WrappedKey{ID: "0000000000000002", KEKID: "aaaaaaaaaaaaaaaa", Wrapped: []byte{4}, CreatedAt: keysEpoch.Add(time.Second)}
	boom := errors.New("boom")
	tests := []struct {
		name    string
		update  func([]secrets.WrappedKey) ([]secrets.WrappedKey, error)
		want    []secrets.WrappedKey
		wantErr error
	}{
		{"ok/replace", func(cur []secrets.WrappedKey) ([]secrets.WrappedKey, error) {
			if len(cur) != 1 || cur[0].ID != k1.ID {
				return nil, errors.New("update did not see the current keys")
			}
			a := cur[0]
			a.Active = false
			k := k2
			k.Active = true
			return []secrets.WrappedKey{a, k}, nil
		}, nil, nil},
		{"fail/update-error-changes-nothing", func([]secrets.WrappedKey) ([]secrets.WrappedKey, error) { return nil, boom }, []secrets.WrappedKey{k1}, boom},
		{"fail/empty-set-refused", func([]secrets.WrappedKey) ([]secrets.WrappedKey, error) { return nil, nil }, []secrets.WrappedKey{k1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTestDB(t, filepath.Join(t.TempDir(), "r.db"))
			ks := db.Keys()
			if err := ks.UpdateKeys(ctx, func([]secrets.WrappedKey) ([]secrets.WrappedKey, error) { return []secrets.WrappedKey{k1}, nil }); err != nil {
				t.Fatal(err)
			}
			err := ks.UpdateKeys(ctx, tt.update)
			got, rerr := ks.DataKeys(ctx)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if strings.HasPrefix(tt.name, "ok/") {
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 2 || got[0].Active || !got[1].Active || !got[1].CreatedAt.Equal(k2.CreatedAt) || !bytes.Equal(got[1].Wrapped, k2.Wrapped) {
					t.Fatalf("after replace: %+v", got)
				}
				return
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("UpdateKeys: %v, want %v", err, tt.wantErr)
			}
			if len(got) != 1 || got[0].ID != k1.ID || !got[0].Active || got[0].KEKID != k1.KEKID || !got[0].CreatedAt.Equal(k1.CreatedAt) {
				t.Fatalf("keys changed after a failed update: %+v", got)
			}
		})
	}
}

func TestSealedSecretsStore(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t, filepath.Join(t.TempDir(), "r.db"))
	s := db.Sealed()
	if _, err := s.GetSealed(ctx, "x"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("GetSealed of a missing name: %v, want ErrNotFound", err)
	}
	for _, v := range []string{"one", "two"} {
		if err := s.PutSealed(ctx, "x", []byte(v), keysEpoch); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetSealed(ctx, "x")
		if err != nil || string(got) != v {
			t.Fatalf("GetSealed = %q, %v; want %q", got, err, v)
		}
	}
}

// fileHashes hashes the database and its WAL (absent files hash as "").
func fileHashes(t *testing.T, path string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	for _, p := range []string{path, path + "-wal"} {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = sha256.Sum256(data)
	}
	return out
}

func sameHashes(a, b map[string][32]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Attack: start the hub on a data folder with another master key. It must be
// refused and the database must not change by a byte.
func TestWrongMasterKeyLeavesDatabaseUnchanged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "rampart.db")
	right, err := secrets.CreateKeyFile(filepath.Join(dir, "master.key"), testkit.NewRand("right"))
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := secrets.CreateKeyFile(filepath.Join(dir, "other.key"), testkit.NewRand("wrong"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.OpenKeyring(ctx, db.Keys(), right, testkit.NewRand("r"), testkit.NewClock(keysEpoch).Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := secrets.NewVault(kr, db.Sealed(), testkit.NewClock(keysEpoch).Now).Put(ctx, "s", []byte("v")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	closed := fileHashes(t, dbPath)

	tests := []struct {
		name string
		try  func(db *DB) error
	}{
		{"fail/open-keyring", func(db *DB) error {
			_, err := secrets.OpenKeyring(ctx, db.Keys(), wrong, testkit.NewRand("x"), testkit.NewClock(keysEpoch).Now)
			return err
		}},
		{"fail/check-master-key", func(db *DB) error { return secrets.CheckMasterKey(ctx, db.Keys(), wrong) }},
		{"fail/rotate", func(db *DB) error {
			return secrets.Rotate(ctx, db.Keys(), wrong, right, testkit.NewRand("x"), testkit.NewClock(keysEpoch).Now)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := OpenNoMigrate(ctx, dbPath)
			if err != nil {
				t.Fatal(err)
			}
			before := fileHashes(t, dbPath)
			err = tt.try(db)
			if !errors.Is(err, secrets.ErrWrongMasterKey) {
				t.Fatalf("got %v, want ErrWrongMasterKey", err)
			}
			if !strings.Contains(err.Error(), wrong.ID()) || !strings.Contains(err.Error(), right.ID()) {
				t.Fatalf("error %q does not name both key IDs", err)
			}
			if after := fileHashes(t, dbPath); !sameHashes(before, after) {
				t.Fatal("database files changed while open")
			}
			db.Close()
			if after := fileHashes(t, dbPath); !sameHashes(closed, after) {
				t.Fatal("database files changed after close")
			}
		})
	}
}

// Attack: with write access to the database, copy one secret's ciphertext
// over another's, or flip a byte of it; the vault must refuse to open it.
func TestVaultTamperedRowsFail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db := openTestDB(t, filepath.Join(dir, "rampart.db"))
	mk, _ := secrets.NewMasterKey(testkit.NewRand("mk"))
	kr, err := secrets.OpenKeyring(ctx, db.Keys(), mk, testkit.NewRand("r"), testkit.NewClock(keysEpoch).Now)
	if err != nil {
		t.Fatal(err)
	}
	v := secrets.NewVault(kr, db.Sealed(), testkit.NewClock(keysEpoch).Now)
	plain := map[string]string{"admin/api-token": "token-AAAA-plaintext", "guest/api-token": "token-BBBB-plaintext"}
	for n, p := range plain {
		if err := v.Put(ctx, n, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	// The adapter only ever saw ciphertext.
	raw, _ := os.ReadFile(db.Path())
	wal, _ := os.ReadFile(db.Path() + "-wal")
	for _, p := range plain {
		if bytes.Contains(raw, []byte(p)) || bytes.Contains(wal, []byte(p)) {
			t.Fatalf("plaintext %q is in the database files", p)
		}
	}
	tests := []struct {
		name string
		sql  string
	}{
		{"ok/untouched", ``},
		{"fail/moved-ciphertext", `UPDATE sealed_secrets SET ciphertext = (SELECT ciphertext FROM sealed_secrets WHERE name = 'guest/api-token') WHERE name = 'admin/api-token'`},
		{"fail/renamed-row", `DELETE FROM sealed_secrets WHERE name = 'admin/api-token'; UPDATE sealed_secrets SET name = 'admin/api-token' WHERE name = 'guest/api-token'`},
		{"fail/flipped-byte", `UPDATE sealed_secrets SET ciphertext = substr(ciphertext, 1, 29) || x'00' || substr(ciphertext, 31) WHERE name = 'admin/api-token'`},
		{"fail/flipped-byte-other-value", `UPDATE sealed_secrets SET ciphertext = substr(ciphertext, 1, 29) || x'ff' || substr(ciphertext, 31) WHERE name = 'admin/api-token'`},
		{"fail/truncated", `UPDATE sealed_secrets SET ciphertext = substr(ciphertext, 1, 20) WHERE name = 'admin/api-token'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.sql != "" {
				tx, err := db.Writer().BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback() // undo the tampering for the next case
				if _, err := tx.ExecContext(ctx, tt.sql); err != nil {
					t.Fatal(err)
				}
				var ct []byte
				if err := tx.QueryRowContext(ctx, `SELECT ciphertext FROM sealed_secrets WHERE name = 'admin/api-token'`).Scan(&ct); err != nil {
					t.Fatal(err)
				}
				got, err := kr.Open(ct, []byte("rampart/sealed-secret/v1/admin/api-token"))
				if !errors.Is(err, secrets.ErrDecrypt) || got != nil {
					t.Fatalf("tampered row opened: %q, %v", got, err)
				}
				return
			}
			got, err := v.Get(ctx, "admin/api-token")
			if err != nil || string(got) != plain["admin/api-token"] {
				t.Fatalf("Get = %q, %v", got, err)
			}
		})
	}
}

// The hub (handle A) keeps running while `rampart keys rotate` (handle B, as
// another process would) rotates the master key file on the same database.
func TestRotateKeyFileWhileHubRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "rampart.db")
	keyPath := filepath.Join(dir, "master.key")
	clock := testkit.NewClock(keysEpoch)

	oldMK, err := secrets.CreateKeyFile(keyPath, testkit.NewRand("old"))
	if err != nil {
		t.Fatal(err)
	}
	hubDB := openTestDB(t, dbPath)
	hub, err := secrets.OpenKeyring(ctx, hubDB.Keys(), oldMK, testkit.NewRand("hub"), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	vault := secrets.NewVault(hub, hubDB.Sealed(), clock.Now)
	if err := vault.Put(ctx, "before", []byte("written before rotation")); err != nil {
		t.Fatal(err)
	}

	cliDB := openTestDB(t, dbPath)
	clock.Advance(time.Hour)
	newID, err := secrets.RotateKeyFile(ctx, cliDB.Keys(), keyPath, testkit.NewRand("rotate"), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	cliDB.Close()

	// The running hub still seals and opens.
	if err := vault.Put(ctx, "after", []byte("written after rotation")); err != nil {
		t.Fatalf("hub Put after rotation: %v", err)
	}
	for _, n := range []string{"before", "after"} {
		if _, err := vault.Get(ctx, n); err != nil {
			t.Fatalf("hub Get %s after rotation: %v", n, err)
		}
	}

	// A restart with the old key is refused and writes nothing.
	before := fileHashes(t, dbPath)
	_, err = secrets.OpenKeyring(ctx, hubDB.Keys(), oldMK, testkit.NewRand("x"), clock.Now)
	if !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("old key after rotation: %v, want ErrWrongMasterKey", err)
	}
	if !sameHashes(before, fileHashes(t, dbPath)) {
		t.Fatal("refused open changed the database")
	}

	// A restart with the new key file reads everything the hub wrote.
	newMK, err := secrets.OpenKeyFile(ctx, hubDB.Keys(), keyPath)
	if err != nil || newMK.ID() != newID {
		t.Fatalf("OpenKeyFile = %v, %v; want %s", newMK, err, newID)
	}
	restarted, err := secrets.OpenKeyring(ctx, hubDB.Keys(), newMK, testkit.NewRand("restart"), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if restarted.ActiveKeyID() == hub.ActiveKeyID() {
		t.Fatal("rotation did not add a fresh active data key")
	}
	v2 := secrets.NewVault(restarted, hubDB.Sealed(), clock.Now)
	for n, want := range map[string]string{"before": "written before rotation", "after": "written after rotation"} {
		got, err := v2.Get(ctx, n)
		if err != nil || string(got) != want {
			t.Fatalf("Get %s with the new key = %q, %v", n, got, err)
		}
	}
	keys, _ := hubDB.Keys().DataKeys(ctx)
	for _, k := range keys {
		if k.KEKID != newID {
			t.Fatalf("data key %s still wrapped by %s", k.ID, k.KEKID)
		}
	}
}

// Crash after the rotation committed but before PATH.next was renamed: the
// next start picks PATH.next (it unwraps the store) and finishes the rename.
func TestRotateKeyFileCrashAfterCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "rampart.db")
	keyPath := filepath.Join(dir, "master.key")
	clock := testkit.NewClock(keysEpoch)
	oldMK, err := secrets.CreateKeyFile(keyPath, testkit.NewRand("old"))
	if err != nil {
		t.Fatal(err)
	}
	db := openTestDB(t, dbPath)
	kr, err := secrets.OpenKeyring(ctx, db.Keys(), oldMK, testkit.NewRand("hub"), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := secrets.NewVault(kr, db.Sealed(), clock.Now).Put(ctx, "s", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// The rotation's steps, stopping before the rename.
	newMK, err := secrets.CreateKeyFile(keyPath+".next", testkit.NewRand("new"))
	if err != nil {
		t.Fatal(err)
	}
	if err := secrets.Rotate(ctx, db.Keys(), oldMK, newMK, testkit.NewRand("rot"), clock.Now); err != nil {
		t.Fatal(err)
	}
	if _, err := secrets.LoadKeyFile(keyPath); err != nil {
		t.Fatal(err) // PATH still holds the old key: that is the crash state
	}

	db2 := openTestDB(t, dbPath)
	mk, err := secrets.OpenKeyFile(ctx, db2.Keys(), keyPath)
	if err != nil || mk.ID() != newMK.ID() {
		t.Fatalf("OpenKeyFile = %v, %v; want %s", mk, err, newMK.ID())
	}
	if _, err := os.Stat(keyPath + ".next"); !os.IsNotExist(err) {
		t.Fatalf("PATH.next not renamed: %v", err)
	}
	if onDisk, _ := secrets.LoadKeyFile(keyPath); onDisk == nil || onDisk.ID() != newMK.ID() {
		t.Fatal("PATH does not hold the new key")
	}
	kr2, err := secrets.OpenKeyring(ctx, db2.Keys(), mk, testkit.NewRand("r2"), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := secrets.NewVault(kr2, db2.Sealed(), clock.Now).Get(ctx, "s"); err != nil || string(got) != "v" {
		t.Fatalf("Get = %q, %v", got, err)
	}
}
