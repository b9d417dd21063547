package secrets

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// crashHook, when set by a test, runs at each step of a file rotation; an
// error from it stops the rotation on the spot, as a crash would.
var crashHook func(step string) error

func crashPoint(step string) error {
	if crashHook == nil {
		return nil
	}
	return crashHook(step)
}

// Rotate re-wraps every data key in store under newMK and adds a fresh
// active data key, in one store transaction. oldMK must be the key that
// wraps them now; otherwise the error matches ErrWrongMasterKey and nothing
// changes. The data keys themselves stay the same, so a Keyring opened
// before the rotation (in this or another process) keeps working, and
// everything sealed before it still opens.
func Rotate(ctx context.Context, store KeyStore, oldMK, newMK *MasterKey, rand io.Reader, now func() time.Time) error {
	if oldMK == nil || newMK == nil {
		return errors.New("rotating master key: missing master key")
	}
	if oldMK.ID() == newMK.ID() {
		return fmt.Errorf("rotating master key: the new master key is the same as the old one (%s)", oldMK.ID())
	}
	err := store.UpdateKeys(ctx, func(current []WrappedKey) ([]WrappedKey, error) {
		if len(current) == 0 {
			return nil, errors.New("this data folder has no data keys yet; start the hub once before rotating")
		}
		plain, err := unwrapAll(current, oldMK)
		if err != nil {
			return nil, err
		}
		next := make([]WrappedKey, 0, len(plain)+1)
		for _, p := range plain {
			wrapped, err := wrapKey(newMK, p.id, p.key, rand)
			if err != nil {
				return nil, err
			}
			next = append(next, WrappedKey{ID: p.id.String(), KEKID: newMK.ID(), Wrapped: wrapped, CreatedAt: p.createdAt})
		}
		fresh, err := newWrappedKey(newMK, plain, rand, now())
		if err != nil {
			return nil, err
		}
		return append(next, fresh), nil
	})
	if err != nil {
		return fmt.Errorf("rotating master key %s to %s: %w", oldMK.ID(), newMK.ID(), err)
	}
	return nil
}

// OpenKeyFile loads the master key for store from the key file at path and
// finishes a rotation that a crash interrupted. If PATH.next exists, the one
// of the two keys that unwraps the stored data keys is the right one: if it
// is PATH.next, the rotation committed, so OpenKeyFile renames it over PATH;
// if it is PATH, the rotation did not commit and PATH.next is left for
// RotateKeyFile to report. It writes nothing else; OpenKeyring then checks
// the key.
func OpenKeyFile(ctx context.Context, store KeyReader, path string) (*MasterKey, error) {
	return resolvePending(ctx, store, path, LoadKeyFile)
}

// OpenPassphrase derives the master key for store from pass and the salt
// file at saltPath, creating the salt file (16 bytes from rand) on a new
// data folder, and finishes a passphrase rotation that a crash interrupted
// (as OpenKeyFile does, with saltPath.next).
func OpenPassphrase(ctx context.Context, store KeyReader, pass []byte, saltPath string, rand io.Reader) (*MasterKey, error) {
	load := func(p string) (*MasterKey, error) {
		salt, err := LoadSalt(p)
		if err != nil {
			return nil, err
		}
		return FromPassphrase(pass, salt)
	}
	if _, err := os.Lstat(saltPath + nextSuffix); errors.Is(err, fs.ErrNotExist) {
		stored, err := store.DataKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("reading data keys: %w", err)
		}
		if len(stored) > 0 {
			// Never make a new salt for a folder that has keys: it could
			// only give a key that does not match.
			return load(saltPath)
		}
		salt, err := LoadOrCreateSalt(saltPath, rand)
		if err != nil {
			return nil, err
		}
		return FromPassphrase(pass, salt)
	}
	return resolvePending(ctx, store, saltPath, load)
}

// resolvePending picks between path and path.next as described at
// OpenKeyFile.
func resolvePending(ctx context.Context, store KeyReader, path string, load func(string) (*MasterKey, error)) (*MasterKey, error) {
	next := path + nextSuffix
	_, err := os.Lstat(next)
	if errors.Is(err, fs.ErrNotExist) {
		return load(path)
	}
	if err != nil {
		return nil, fmt.Errorf("checking for an interrupted rotation: %w", err)
	}
	stored, err := store.DataKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading data keys: %w", err)
	}
	// A Rotate never commits on an empty store, and PATH.next is synced
	// before the transaction starts, so an unreadable PATH.next means the
	// transaction never ran: PATH is right.
	if len(stored) > 0 {
		if nextMK, err := load(next); err == nil {
			_, err := unwrapAll(stored, nextMK)
			if err == nil {
				if err := finishRename(next, path); err != nil {
					return nil, err
				}
				return nextMK, nil
			}
			if !errors.Is(err, ErrWrongMasterKey) {
				return nil, err
			}
		}
	}
	return load(path)
}

func finishRename(next, path string) error {
	if err := os.Rename(next, path); err != nil {
		return fmt.Errorf("finishing key rotation (renaming %s to %s): %w", next, path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("finishing key rotation (syncing %s): %w", filepath.Dir(path), err)
	}
	return nil
}

// wrappedBy reports whether store has data keys and mk unwraps them all.
func wrappedBy(ctx context.Context, store KeyReader, mk *MasterKey) (bool, error) {
	stored, err := store.DataKeys(ctx)
	if err != nil {
		return false, err
	}
	if len(stored) == 0 {
		return false, nil
	}
	_, err = unwrapAll(stored, mk)
	if errors.Is(err, ErrWrongMasterKey) {
		return false, nil
	}
	return err == nil, err
}

// RotateKeyFile replaces the master key in the key file at path with a new
// random one and returns its ID. It writes the new key to PATH.next (0600,
// synced), re-wraps the data keys in one transaction, then renames PATH.next
// over PATH and syncs the directory. A crash at any point leaves files that
// OpenKeyFile resolves. The hub may keep running meanwhile.
//
// The old key stops working for this data folder. Keep it with any backup of
// the database taken before the rotation: that backup's data keys are still
// wrapped by it.
func RotateKeyFile(ctx context.Context, store KeyStore, path string, rand io.Reader, now func() time.Time) (string, error) {
	oldMK, err := OpenKeyFile(ctx, store, path)
	if err != nil {
		return "", err
	}
	newMK, err := NewMasterKey(rand)
	if err != nil {
		return "", err
	}
	write := func(p string) error { return writeKeyFile(p, newMK) }
	if err := rotateFile(ctx, store, path, oldMK, newMK, write, rand, now); err != nil {
		return "", err
	}
	return newMK.ID(), nil
}

// RotatePassphrase changes the passphrase (and the salt) of a data folder:
// the data keys are re-wrapped under the key derived from newPass and a new
// random salt, which replaces the salt file at saltPath through
// saltPath.next as RotateKeyFile does. It returns the new master key ID.
func RotatePassphrase(ctx context.Context, store KeyStore, oldPass, newPass []byte, saltPath string, rand io.Reader, now func() time.Time) (string, error) {
	oldMK, err := OpenPassphrase(ctx, store, oldPass, saltPath, rand)
	if err != nil {
		return "", err
	}
	salt := make([]byte, saltSize)
	if _, err := io.ReadFull(rand, salt); err != nil {
		return "", fmt.Errorf("generating salt: %w", err)
	}
	newMK, err := FromPassphrase(newPass, salt)
	if err != nil {
		return "", fmt.Errorf("new passphrase: %w", err)
	}
	write := func(p string) error {
		if err := writeNewFileSync(p, saltFileBytes(salt)); err != nil {
			return fmt.Errorf("writing salt file: %w", err)
		}
		return nil
	}
	if err := rotateFile(ctx, store, saltPath, oldMK, newMK, write, rand, now); err != nil {
		return "", err
	}
	return newMK.ID(), nil
}

// rotateFile runs the write-next / commit / rename sequence.
func rotateFile(ctx context.Context, store KeyStore, path string, oldMK, newMK *MasterKey, writeNext func(string) error, rand io.Reader, now func() time.Time) error {
	next := path + nextSuffix
	// Refuse before writing anything if oldMK is not the folder's key.
	if err := CheckMasterKey(ctx, store, oldMK); err != nil {
		return err
	}
	if err := writeNext(next); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s exists: a rotation that did not commit left it, or another `rampart keys rotate` is running; if none is running, delete %s and try again",
				ErrRotationPending, next, next)
		}
		return err
	}
	if err := crashPoint("next-written"); err != nil {
		return err
	}
	if err := Rotate(ctx, store, oldMK, newMK, rand, now); err != nil {
		// The transaction may have committed even though it reported an
		// error; the store decides which key is right.
		committed, cerr := wrappedBy(ctx, store, newMK)
		if cerr != nil {
			return fmt.Errorf("%w (and checking whether it committed failed: %v; %s is kept, the next start resolves it)", err, cerr, next)
		}
		if !committed {
			if rerr := os.Remove(next); rerr != nil {
				return fmt.Errorf("%w (and removing %s failed: %v)", err, next, rerr)
			}
			syncDir(filepath.Dir(next))
			return err
		}
	}
	if err := crashPoint("committed"); err != nil {
		return err
	}
	err := os.Rename(next, path)
	if errors.Is(err, fs.ErrNotExist) {
		// A hub starting in between saw the commit and finished the rename.
		return nil
	}
	if err != nil {
		return fmt.Errorf("the data keys are re-wrapped under master key %s, but renaming %s to %s failed: %w; the next start finishes it", newMK.ID(), next, path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("syncing %s after key rotation: %w", filepath.Dir(path), err)
	}
	return nil
}
