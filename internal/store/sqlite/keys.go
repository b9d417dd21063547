package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/secrets"
)

// KeyStore keeps the keyring's wrapped data keys (table data_keys). It never
// sees an unwrapped key.
type KeyStore struct{ db *DB }

var (
	_ secrets.KeyReader = (*KeyStore)(nil)
	_ secrets.KeyStore  = (*KeyStore)(nil)
)

// Keys returns the data-key store over db.
func (db *DB) Keys() *KeyStore { return &KeyStore{db: db} }

// SealedSecrets keeps sealed secrets (table sealed_secrets). It only ever
// sees ciphertext.
type SealedSecrets struct{ db *DB }

var _ secrets.SealedStore = (*SealedSecrets)(nil)

// Sealed returns the sealed-secret store over db.
func (db *DB) Sealed() *SealedSecrets { return &SealedSecrets{db: db} }

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func readDataKeys(ctx context.Context, q queryer) ([]secrets.WrappedKey, error) {
	rows, err := q.QueryContext(ctx,
		`SELECT id, kek_id, wrapped, created_at, active FROM data_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("reading data keys: %w", err)
	}
	defer rows.Close()
	var keys []secrets.WrappedKey
	for rows.Next() {
		var (
			k       secrets.WrappedKey
			created int64
			active  int64
		)
		if err := rows.Scan(&k.ID, &k.KEKID, &k.Wrapped, &created, &active); err != nil {
			return nil, fmt.Errorf("reading data keys: %w", err)
		}
		k.CreatedAt = fromUnixNano(created)
		k.Active = active != 0
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading data keys: %w", err)
	}
	return keys, nil
}

// DataKeys returns every stored data key, oldest first, through the read
// pool: it never writes.
func (s *KeyStore) DataKeys(ctx context.Context) ([]secrets.WrappedKey, error) {
	return readDataKeys(ctx, s.db.reader)
}

// UpdateKeys reads the data keys and replaces them with update's result in
// one write transaction (BEGIN IMMEDIATE, so another process rotating at the
// same time waits rather than interleaving). It refuses an empty result.
func (s *KeyStore) UpdateKeys(ctx context.Context, update func([]secrets.WrappedKey) ([]secrets.WrappedKey, error)) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		current, err := readDataKeys(ctx, tx)
		if err != nil {
			return err
		}
		next, err := update(current)
		if err != nil {
			return err
		}
		if len(next) == 0 {
			return errors.New("refusing to delete every data key")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM data_keys`); err != nil {
			return fmt.Errorf("replacing data keys: %w", err)
		}
		for _, k := range next {
			active := 0
			if k.Active {
				active = 1
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO data_keys (id, kek_id, wrapped, created_at, active) VALUES (?, ?, ?, ?, ?)`,
				k.ID, k.KEKID, k.Wrapped, unixNano(k.CreatedAt), active); err != nil {
				return fmt.Errorf("storing data key %s: %w", k.ID, err)
			}
		}
		return nil
	})
}

// GetSealed returns the ciphertext stored under name, or an error matching
// secrets.ErrNotFound.
func (s *SealedSecrets) GetSealed(ctx context.Context, name string) ([]byte, error) {
	var ct []byte
	err := s.db.reader.QueryRowContext(ctx, `SELECT ciphertext FROM sealed_secrets WHERE name = ?`, name).Scan(&ct)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, secrets.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading sealed secret: %w", err)
	}
	return ct, nil
}

// PutSealed inserts or replaces the ciphertext stored under name.
func (s *SealedSecrets) PutSealed(ctx context.Context, name string, ciphertext []byte, updatedAt time.Time) error {
	_, err := s.db.writer.ExecContext(ctx,
		`INSERT INTO sealed_secrets (name, ciphertext, updated_at) VALUES (?, ?, ?)
		 ON CONFLICT(name) DO UPDATE SET ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
		name, ciphertext, unixNano(updatedAt))
	if err != nil {
		return fmt.Errorf("storing sealed secret: %w", err)
	}
	return nil
}
