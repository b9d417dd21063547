// Package app is Rampart's composition root: the only package that builds
// concrete types and wires them together. cmd/rampart parses the command
// line and calls Serve, VerifyJournal, ExportJournal or RotateKeys.
package app

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/store/sqlite"
)

// version is set by the linker (-X) in release builds.
var version = "dev"

// Version is the build's version.
func Version() string { return version }

// IO is where a command writes.
type IO struct {
	Stdout io.Writer // the ready line, the setup code, command output
	Stderr io.Writer // the log
}

// ExitError makes the command exit with Code after printing its own
// message (journal verify uses it).
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Files in the data folder.
const (
	dbFile        = "rampart.db"
	caFile        = "ca.pem"
	setupCodeFile = "setup-code"
	saltFile      = "master.salt"
)

// Vault entry names owned by the app.
const (
	vaultJournalSigner = "journal/signing-key"
	vaultJournalMAC    = "journal/mac-key"
	vaultConfigHash    = "config/last-hash"
)

// env is the hub's injected time and randomness (invariant 7).
type env struct {
	now  func() time.Time
	rand io.Reader
}

func defaultEnv() env { return env{now: time.Now, rand: rand.Reader} }

// data is an opened data folder: the database with its keyring checked.
type data struct {
	dir     string
	db      *sqlite.DB
	mk      *secrets.MasterKey
	keyring *secrets.Keyring
	vault   *secrets.Vault
	created bool // this run created the data folder's database
}

func (d *data) Close() error {
	if d == nil || d.db == nil {
		return nil
	}
	return d.db.Close()
}

// checkDataDir refuses a data folder that others can write (they could
// swap the database or plant a key file), creating it 0700 when create is
// set and it does not exist.
func checkDataDir(dir string, create bool) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return fmt.Errorf("data folder %s does not exist; start the hub with 'rampart serve --data %s' first", dir, dir)
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating data folder: %w", err)
		}
		return os.Chmod(dir, 0o700)
	}
	if err != nil {
		return fmt.Errorf("checking data folder: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if fi, err = os.Stat(dir); err != nil {
			return fmt.Errorf("checking data folder: %w", err)
		}
	}
	if !fi.IsDir() {
		return fmt.Errorf("data folder %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("data folder %s is writable by group or others (mode %#o); run chmod 700 %s", dir, perm, dir)
	}
	return nil
}

// readPassphrase reads the passphrase file, refusing one that others can read.
func readPassphrase(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading master key passphrase file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key passphrase file %s is readable by others (mode %#o); run chmod 600 %s", path, perm, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading master key passphrase file: %w", err)
	}
	return []byte(strings.TrimRight(string(b), "\r\n")), nil
}

// openData opens the data folder. With create, a missing folder, database
// and key file are made (first run). Nothing on disk changes before the
// master key is known to match the stored keyring; migrate applies pending
// schema migrations after that check.
func openData(ctx context.Context, cfg *config.Config, e env, create, migrate bool) (_ *data, err error) {
	dir := cfg.DataDir
	if err := checkDataDir(dir, create); err != nil {
		return nil, err
	}
	dbPath := filepath.Join(dir, dbFile)
	_, statErr := os.Stat(dbPath)
	fresh := errors.Is(statErr, fs.ErrNotExist)
	if fresh && !create {
		return nil, fmt.Errorf("data folder %s has no database (%s); start the hub there first", dir, dbFile)
	}
	var pass []byte
	if cfg.MasterKey.PassphraseFile != "" {
		if pass, err = readPassphrase(cfg.MasterKey.PassphraseFile); err != nil {
			return nil, err
		}
	} else if !fresh {
		if _, err := os.Stat(cfg.MasterKeyFile()); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("master key file %s does not exist, but %s holds data sealed by a master key; set master_key.file (or RAMPART_MASTER_KEY_FILE) to the key that created it", cfg.MasterKeyFile(), dir)
		}
	}
	if fresh {
		// Create the database file ourselves so that it, and the WAL
		// files SQLite derives from its mode, are 0600.
		f, err := os.OpenFile(dbPath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("creating database: %w", err)
		}
		f.Close()
	}
	db, err := sqlite.OpenNoMigrate(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	d := &data{dir: dir, db: db, created: fresh}
	defer func() {
		if err != nil {
			d.Close()
			if fresh {
				os.Remove(dbPath)
			}
		}
	}()
	hasKeys, err := db.HasTable(ctx, "data_keys")
	if err != nil {
		return nil, err
	}
	switch {
	case pass != nil:
		var reader secrets.KeyReader = emptyKeys{}
		if hasKeys {
			reader = db.Keys()
		}
		if !hasKeys && !create {
			return nil, fmt.Errorf("data folder %s has no keyring yet", dir)
		}
		d.mk, err = secrets.OpenPassphrase(ctx, reader, pass, filepath.Join(dir, saltFile), e.rand)
	case !hasKeys:
		path := cfg.MasterKeyFile()
		if _, serr := os.Stat(path); errors.Is(serr, fs.ErrNotExist) && create {
			d.mk, err = secrets.CreateKeyFile(path, e.rand)
		} else {
			d.mk, err = secrets.LoadKeyFile(path)
		}
	default:
		d.mk, err = secrets.OpenKeyFile(ctx, db.Keys(), cfg.MasterKeyFile())
	}
	if err != nil {
		return nil, err
	}
	if hasKeys {
		if err := secrets.CheckMasterKey(ctx, db.Keys(), d.mk); err != nil {
			return nil, err
		}
	}
	if migrate {
		if err := db.Migrate(ctx); err != nil {
			return nil, err
		}
	}
	d.keyring, err = secrets.OpenKeyring(ctx, db.Keys(), d.mk, e.rand, e.now)
	if err != nil {
		return nil, err
	}
	d.vault = secrets.NewVault(d.keyring, db.Sealed(), e.now)
	return d, nil
}

type emptyKeys struct{}

func (emptyKeys) DataKeys(context.Context) ([]secrets.WrappedKey, error) { return nil, nil }

// vaultBytes returns the vault entry name, creating n random bytes on a miss
// when create is set.
func (d *data) vaultBytes(ctx context.Context, name string, n int, e env, create bool) ([]byte, error) {
	b, err := d.vault.Get(ctx, name)
	if err == nil {
		if len(b) != n {
			return nil, fmt.Errorf("vault entry %s has %d bytes, want %d", name, len(b), n)
		}
		return b, nil
	}
	if !errors.Is(err, secrets.ErrNotFound) || !create {
		return nil, err
	}
	b = make([]byte, n)
	if _, err := io.ReadFull(e.rand, b); err != nil {
		return nil, err
	}
	if err := d.vault.Put(ctx, name, b); err != nil {
		return nil, err
	}
	return b, nil
}

// journalKeys loads (or on first run makes) the journal's signing and MAC keys.
func (d *data) journalKeys(ctx context.Context, e env, create bool) (ed25519.PrivateKey, []byte, error) {
	seed, err := d.vaultBytes(ctx, vaultJournalSigner, ed25519.SeedSize, e, create)
	if err != nil {
		return nil, nil, fmt.Errorf("loading journal signing key: %w", err)
	}
	mac, err := d.vaultBytes(ctx, vaultJournalMAC, 32, e, create)
	if err != nil {
		return nil, nil, fmt.Errorf("loading journal MAC key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), mac, nil
}

func (d *data) openJournal(ctx context.Context, cfg *config.Config, e env, log *slog.Logger, create bool) (*journal.Journal, error) {
	signer, mac, err := d.journalKeys(ctx, e, create)
	if err != nil {
		return nil, err
	}
	return journal.New(journal.Options{
		Store: d.db.Journal(), Signer: signer, MACKey: mac, Now: e.now,
		CheckpointEvery:    cfg.Journal.CheckpointEvery,
		CheckpointInterval: time.Duration(cfg.Journal.CheckpointInterval),
		Logger:             log,
	})
}

// configHash fingerprints the effective configuration for the
// config.changed journal event.
func configHash(cfg *config.Config) string {
	b, _ := json.Marshal(cfg)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// VerifyJournal checks the journal of cfg.DataDir and prints a report. It
// changes nothing on disk. A damaged journal exits non-zero, naming the
// first bad entry.
func VerifyJournal(ctx context.Context, cfg *config.Config, out io.Writer) error {
	e := defaultEnv()
	d, err := openData(ctx, cfg, e, false, false)
	if err != nil {
		return err
	}
	defer d.Close()
	signer, mac, err := d.journalKeys(ctx, e, false)
	if err != nil {
		return err
	}
	rep, err := journal.Verify(ctx, d.db.Journal(), journal.VerifyKeys{Public: signer.Public().(ed25519.PublicKey), MACKey: mac})
	if err != nil {
		return err
	}
	if !rep.OK() {
		fmt.Fprintf(out, "journal damaged: %v\n", rep.Problem)
		fmt.Fprintf(out, "entries intact before it: %d; checkpoints: %d\n", rep.Entries, rep.Checkpoints)
		return ExitError{Code: 1}
	}
	fmt.Fprintf(out, "journal intact: %d entries, %d signed checkpoints, last entry %d, checkpointed through %d\n",
		rep.Entries, rep.Checkpoints, rep.LastSeq, rep.CheckpointedSeq)
	return nil
}

// ExportJournal writes the journal as JSON lines.
func ExportJournal(ctx context.Context, cfg *config.Config, w io.Writer) error {
	d, err := openData(ctx, cfg, defaultEnv(), false, false)
	if err != nil {
		return err
	}
	defer d.Close()
	return journal.Export(ctx, d.db.Journal(), w)
}

// RotateKeys re-wraps every data key under a new master key and journals
// it. It works beside a running hub: the hub's data keys do not change.
func RotateKeys(ctx context.Context, cfg *config.Config, newPassphraseFile string, out io.Writer) error {
	e := defaultEnv()
	d, err := openData(ctx, cfg, e, false, true)
	if err != nil {
		return err
	}
	defer d.Close()
	log := slog.New(slog.DiscardHandler)
	j, err := d.openJournal(ctx, cfg, e, log, false)
	if err != nil {
		return err
	}
	oldID := d.mk.ID()
	var newID string
	if cfg.MasterKey.PassphraseFile != "" {
		if newPassphraseFile == "" {
			return errors.New("the master key comes from a passphrase: give the new one with --new-passphrase-file FILE")
		}
		oldPass, err := readPassphrase(cfg.MasterKey.PassphraseFile)
		if err != nil {
			return err
		}
		newPass, err := readPassphrase(newPassphraseFile)
		if err != nil {
			return err
		}
		newID, err = secrets.RotatePassphrase(ctx, d.db.Keys(), oldPass, newPass, filepath.Join(d.dir, saltFile), e.rand, e.now)
		if err != nil {
			return err
		}
	} else {
		newID, err = secrets.RotateKeyFile(ctx, d.db.Keys(), cfg.MasterKeyFile(), e.rand, e.now)
		if err != nil {
			return err
		}
	}
	if err := j.Record(ctx, journal.Event{Actor: "cli", Action: "keys.rotated", Outcome: "success",
		Detail: map[string]string{"old_master_key": oldID, "new_master_key": newID}}); err != nil {
		return err
	}
	if err := j.Close(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "master key rotated: %s -> %s; every data key is re-wrapped\n", oldID, newID)
	if cfg.MasterKey.PassphraseFile != "" {
		fmt.Fprintf(out, "start the hub with the new passphrase from now on\n")
	}
	return nil
}
