// Package sqlite is Rampart's embedded storage adapter, built on
// modernc.org/sqlite (pure Go, no cgo). It opens the database in WAL mode with
// a busy timeout, runs versioned migrations at start, and funnels every write
// through a single connection so that writers never contend inside the hub.
// Domain packages never see SQL: each implements a small interface declared by
// its consumer (journal.Store, secrets.KeyStore, accounts.Store, ...).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DB is an open Rampart database: one writer connection and a small pool of
// readers over the same file.
type DB struct {
	path   string
	writer *sql.DB
	reader *sql.DB
}

// Open opens (creating if needed) the database file at path and applies any
// pending migrations.
func Open(ctx context.Context, path string) (*DB, error) {
	db, err := openNoMigrate(ctx, path)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// OpenNoMigrate opens the database without applying migrations. The hub uses
// it to check the master key against the stored keyring before it changes
// anything on disk.
func OpenNoMigrate(ctx context.Context, path string) (*DB, error) {
	return openNoMigrate(ctx, path)
}

func dsn(path string, immediate bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	if immediate {
		// Writers take the lock at BEGIN, so two processes (the hub and
		// `rampart keys rotate`) never deadlock upgrading a read lock.
		q.Add("_txlock", "immediate")
	}
	return "file:" + path + "?" + q.Encode()
}

func openNoMigrate(ctx context.Context, path string) (*DB, error) {
	w, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn(path, false)+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("opening database %s: %w", path, err)
	}
	r.SetMaxOpenConns(readerConns)
	return &DB{path: path, writer: w, reader: r}, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.reader.Close(), db.writer.Close())
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Writer is the single write connection. Exposed for adapters in this
// package's tests and for the benchmarks; domain code never sees it.
func (db *DB) Writer() *sql.DB { return db.writer }

// Reader is the read pool.
func (db *DB) Reader() *sql.DB { return db.reader }

// withTx runs fn in a write transaction (BEGIN IMMEDIATE).
func (db *DB) withTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}

// readTx runs fn in a read-only transaction on the read pool.
func (db *DB) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("beginning read: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}

// txBase is what the transaction adapters (devices, firmware) share: the
// transaction, whether it is a read-only view, and the domain's sentinel
// for a unique-key violation.
type txBase struct {
	ctx context.Context
	q   *sql.Tx
	ro  bool
	dup error
}

func (t *txBase) exec(query string, args ...any) error {
	if t.ro {
		return errors.New("write in a read-only view")
	}
	_, err := t.q.ExecContext(t.ctx, query, args...)
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return t.dup
	}
	return err
}

// HasTable reports whether a table exists, without changing the file.
func (db *DB) HasTable(ctx context.Context, name string) (bool, error) {
	var n int
	err := db.reader.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?`, name).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("reading schema: %w", err)
	}
	return n > 0, nil
}

func unixNano(t time.Time) int64 { return t.UnixNano() }

func fromUnixNano(n int64) time.Time { return time.Unix(0, n).UTC() }
