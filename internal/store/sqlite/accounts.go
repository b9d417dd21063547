package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-iot/rampart/internal/accounts"
)

// AccountStore implements accounts.Store.
type AccountStore struct{ db *DB }

var _ accounts.Store = (*AccountStore)(nil)

// Accounts returns the accounts adapter.
func (db *DB) Accounts() *AccountStore { return &AccountStore{db: db} }

func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return accounts.ErrNotFound
	}
	return err
}

// HasUsers implements accounts.Store.
func (s *AccountStore) HasUsers(ctx context.Context) (bool, error) {
	var n int
	if err := s.db.reader.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM users)`).Scan(&n); err != nil {
		return false, fmt.Errorf("checking users: %w", err)
	}
	return n == 1, nil
}

// OperatorTenant implements accounts.Store: the tenant of the first user
// (setup creates it before anyone else can exist).
func (s *AccountStore) OperatorTenant(ctx context.Context) (string, error) {
	var t string
	err := s.db.reader.QueryRowContext(ctx, `SELECT tenant_id FROM users ORDER BY created_at, rowid LIMIT 1`).Scan(&t)
	return t, notFound(err)
}

// PutSetupCode implements accounts.Store.
func (s *AccountStore) PutSetupCode(ctx context.Context, c accounts.SetupCode) error {
	_, err := s.db.writer.ExecContext(ctx,
		`INSERT INTO setup_code(id, code_hash, expires_at, failures, burnt) VALUES (1, ?, ?, 0, 0)
		 ON CONFLICT(id) DO UPDATE SET code_hash=excluded.code_hash, expires_at=excluded.expires_at, failures=0, burnt=0`,
		c.Hash, unixNano(c.ExpiresAt))
	return err
}

// GetSetupCode implements accounts.Store.
func (s *AccountStore) GetSetupCode(ctx context.Context) (accounts.SetupCode, error) {
	var c accounts.SetupCode
	var exp int64
	var burnt int
	err := s.db.writer.QueryRowContext(ctx, `SELECT code_hash, expires_at, failures, burnt FROM setup_code WHERE id=1`).
		Scan(&c.Hash, &exp, &c.Failures, &burnt)
	if err != nil {
		return c, notFound(err)
	}
	c.ExpiresAt, c.Burnt = fromUnixNano(exp), burnt == 1
	return c, nil
}

// AddSetupFailure implements accounts.Store.
func (s *AccountStore) AddSetupFailure(ctx context.Context) (int, error) {
	var n int
	err := s.db.writer.QueryRowContext(ctx, `UPDATE setup_code SET failures = failures + 1 WHERE id=1 RETURNING failures`).Scan(&n)
	return n, notFound(err)
}

// BurnSetupCode implements accounts.Store.
func (s *AccountStore) BurnSetupCode(ctx context.Context) error {
	_, err := s.db.writer.ExecContext(ctx, `UPDATE setup_code SET burnt = 1, code_hash = x'' WHERE id=1`)
	return err
}

// CreateFirstOwner implements accounts.Store.
func (s *AccountStore) CreateFirstOwner(ctx context.Context, t accounts.Tenant, u accounts.User) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS(SELECT 1 FROM users)`).Scan(&n); err != nil {
			return err
		}
		if n == 1 {
			return accounts.ErrSetupDone
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM setup_code`); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenants(id, name, created_at) VALUES (?, ?, ?)`, t.ID, t.Name, unixNano(t.CreatedAt)); err != nil {
			return fmt.Errorf("creating tenant: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO users(id, tenant_id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			u.ID, u.TenantID, u.Email, u.PasswordHash, string(u.Role), unixNano(u.CreatedAt)); err != nil {
			if strings.Contains(err.Error(), "UNIQUE") {
				return accounts.ErrEmailTaken
			}
			return fmt.Errorf("creating user: %w", err)
		}
		return nil
	})
}

const userCols = `id, tenant_id, email, password_hash, role, created_at, mfa_enabled, totp_secret, totp_pending, failed_logins, hard_locked`

func scanUser(row *sql.Row) (accounts.User, error) { return scanUserRow(row) }

func scanUserRow(row accRow) (accounts.User, error) {
	var u accounts.User
	var role string
	var created int64
	var mfa, locked int
	if err := row.Scan(&u.ID, &u.TenantID, &u.Email, &u.PasswordHash, &role, &created, &mfa, &u.TOTPSecret, &u.TOTPPending, &u.FailedLogins, &locked); err != nil {
		return u, notFound(err)
	}
	u.Role, u.CreatedAt, u.MFAEnabled, u.HardLocked = accounts.Role(role), fromUnixNano(created), mfa == 1, locked == 1
	return u, nil
}

// UserByEmail implements accounts.Store.
func (s *AccountStore) UserByEmail(ctx context.Context, email string) (accounts.User, error) {
	return scanUser(s.db.reader.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`, email))
}

// UserByID implements accounts.Store.
func (s *AccountStore) UserByID(ctx context.Context, id string) (accounts.User, error) {
	return scanUser(s.db.reader.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
}

// CreateSession implements accounts.Store.
func (s *AccountStore) CreateSession(ctx context.Context, sess accounts.Session) error {
	_, err := s.db.writer.ExecContext(ctx, `INSERT INTO sessions(token_hash, user_id, tenant_id, created_at, expires_at, last_seen) VALUES (?, ?, ?, ?, ?, ?)`,
		sess.TokenHash, sess.UserID, sess.TenantID, unixNano(sess.CreatedAt), unixNano(sess.ExpiresAt), unixNano(sess.LastSeen))
	return err
}

// SessionByHash implements accounts.Store.
func (s *AccountStore) SessionByHash(ctx context.Context, hash []byte) (accounts.Session, error) {
	var sess accounts.Session
	var created, exp, seen int64
	err := s.db.reader.QueryRowContext(ctx, `SELECT token_hash, user_id, tenant_id, created_at, expires_at, last_seen FROM sessions WHERE token_hash = ?`, hash).
		Scan(&sess.TokenHash, &sess.UserID, &sess.TenantID, &created, &exp, &seen)
	if err != nil {
		return sess, notFound(err)
	}
	sess.CreatedAt, sess.ExpiresAt, sess.LastSeen = fromUnixNano(created), fromUnixNano(exp), fromUnixNano(seen)
	return sess, nil
}

// DeleteSession implements accounts.Store.
func (s *AccountStore) DeleteSession(ctx context.Context, hash []byte) error {
	_, err := s.db.writer.ExecContext(ctx, `DELETE FROM sessions WHERE token_hash = ?`, hash)
	return err
}
