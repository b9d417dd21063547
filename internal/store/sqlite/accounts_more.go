package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/accounts"
)

func accBool(b bool) int {
	if b {
		return 1
	}
	return 0
}

func accTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return fromUnixNano(n)
}

func accNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// affected turns "no row changed" into accounts.ErrNotFound.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return accounts.ErrNotFound
	}
	return nil
}

func insertUser(ctx context.Context, tx *sql.Tx, u accounts.User) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO users(id, tenant_id, email, password_hash, role, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		u.ID, u.TenantID, u.Email, u.PasswordHash, string(u.Role), unixNano(u.CreatedAt))
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return accounts.ErrEmailTaken
	}
	return err
}

// CreateTenantWithOwner implements accounts.Store.
func (s *AccountStore) CreateTenantWithOwner(ctx context.Context, t accounts.Tenant, u accounts.User) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenants(id, name, created_at) VALUES (?, ?, ?)`, t.ID, t.Name, unixNano(t.CreatedAt)); err != nil {
			return fmt.Errorf("creating tenant: %w", err)
		}
		return insertUser(ctx, tx, u)
	})
}

// TenantByID implements accounts.Store.
func (s *AccountStore) TenantByID(ctx context.Context, id string) (accounts.Tenant, error) {
	var t accounts.Tenant
	var created int64
	var req int
	err := s.db.reader.QueryRowContext(ctx, `SELECT id, name, created_at, require_mfa FROM tenants WHERE id = ?`, id).Scan(&t.ID, &t.Name, &created, &req)
	if err != nil {
		return t, notFound(err)
	}
	t.CreatedAt, t.RequireMFA = fromUnixNano(created), req == 1
	return t, nil
}

// SetTenantRequireMFA implements accounts.Store.
func (s *AccountStore) SetTenantRequireMFA(ctx context.Context, tenantID string, require bool) error {
	return affected(s.db.writer.ExecContext(ctx, `UPDATE tenants SET require_mfa = ? WHERE id = ?`, accBool(require), tenantID))
}

// ListUsers implements accounts.Store.
func (s *AccountStore) ListUsers(ctx context.Context, tenantID string) ([]accounts.User, error) {
	rows, err := s.db.reader.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []accounts.User
	for rows.Next() {
		u, err := scanUserRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetPassword implements accounts.Store.
func (s *AccountStore) SetPassword(ctx context.Context, userID, phc string) error {
	return affected(s.db.writer.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, phc, userID))
}

// SetRole implements accounts.Store.
func (s *AccountStore) SetRole(ctx context.Context, tenantID, userID string, role accounts.Role) error {
	return affected(s.db.writer.ExecContext(ctx, `UPDATE users SET role = ? WHERE id = ? AND tenant_id = ?`, string(role), userID, tenantID))
}

// DeleteUser implements accounts.Store.
func (s *AccountStore) DeleteUser(ctx context.Context, tenantID, userID string) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM sessions WHERE user_id = ?`,
			`DELETE FROM recovery_codes WHERE user_id = ?`,
			`DELETE FROM password_resets WHERE user_id = ?`,
			`DELETE FROM api_tokens WHERE created_by = ?`,
		} {
			if _, err := tx.ExecContext(ctx, q, userID); err != nil {
				return err
			}
		}
		return affected(tx.ExecContext(ctx, `DELETE FROM users WHERE id = ? AND tenant_id = ?`, userID, tenantID))
	})
}

// CountOwners implements accounts.Store.
func (s *AccountStore) CountOwners(ctx context.Context, tenantID string) (int, error) {
	var n int
	err := s.db.writer.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE tenant_id = ? AND role = 'owner'`, tenantID).Scan(&n)
	return n, err
}

// SetTOTP implements accounts.Store.
func (s *AccountStore) SetTOTP(ctx context.Context, userID string, pending, secret []byte, enabled bool) error {
	return affected(s.db.writer.ExecContext(ctx,
		`UPDATE users SET totp_pending = ?, totp_secret = ?, mfa_enabled = ?,
		 totp_last_step = CASE WHEN ? THEN totp_last_step ELSE 0 END WHERE id = ?`,
		pending, secret, accBool(enabled), accBool(enabled), userID))
}

// AdvanceTOTPStep implements accounts.Store.
func (s *AccountStore) AdvanceTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	err := affected(s.db.writer.ExecContext(ctx, `UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`, step, userID, step))
	if err == accounts.ErrNotFound {
		return false, nil
	}
	return err == nil, err
}

// ReplaceRecoveryCodes implements accounts.Store.
func (s *AccountStore) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO recovery_codes(user_id, code_hash) VALUES (?, ?)`, userID, h); err != nil {
				return err
			}
		}
		return nil
	})
}

// UseRecoveryCode implements accounts.Store.
func (s *AccountStore) UseRecoveryCode(ctx context.Context, userID string, hash []byte) (bool, error) {
	err := affected(s.db.writer.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ? AND code_hash = ?`, userID, hash))
	if err == accounts.ErrNotFound {
		return false, nil
	}
	return err == nil, err
}

// AddLoginFailure implements accounts.Store.
func (s *AccountStore) AddLoginFailure(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.db.writer.QueryRowContext(ctx, `UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ? RETURNING failed_logins`, userID).Scan(&n)
	return n, notFound(err)
}

// ResetLoginFailures implements accounts.Store.
func (s *AccountStore) ResetLoginFailures(ctx context.Context, userID string) error {
	_, err := s.db.writer.ExecContext(ctx, `UPDATE users SET failed_logins = 0 WHERE id = ?`, userID)
	return err
}

// SetHardLock implements accounts.Store.
func (s *AccountStore) SetHardLock(ctx context.Context, userID string, locked bool) error {
	return affected(s.db.writer.ExecContext(ctx, `UPDATE users SET hard_locked = ? WHERE id = ?`, accBool(locked), userID))
}

// TouchSession implements accounts.Store.
func (s *AccountStore) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	_, err := s.db.writer.ExecContext(ctx, `UPDATE sessions SET last_seen = ? WHERE token_hash = ?`, unixNano(at), hash)
	return err
}

// DeleteUserSessions implements accounts.Store.
func (s *AccountStore) DeleteUserSessions(ctx context.Context, userID string, keep []byte) (int, error) {
	if keep == nil {
		keep = []byte{}
	}
	res, err := s.db.writer.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ? AND token_hash != ?`, userID, keep)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// CreateInvitation implements accounts.Store.
func (s *AccountStore) CreateInvitation(ctx context.Context, inv accounts.Invitation) error {
	_, err := s.db.writer.ExecContext(ctx,
		`INSERT INTO invitations(id, tenant_id, email, role, token_hash, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		inv.ID, inv.TenantID, inv.Email, string(inv.Role), inv.TokenHash, inv.CreatedBy, unixNano(inv.CreatedAt), unixNano(inv.ExpiresAt))
	return err
}

const invCols = `id, tenant_id, email, role, token_hash, created_by, created_at, expires_at`

type accRow interface{ Scan(...any) error }

func scanInvitation(r accRow) (accounts.Invitation, error) {
	var inv accounts.Invitation
	var role string
	var created, exp int64
	if err := r.Scan(&inv.ID, &inv.TenantID, &inv.Email, &role, &inv.TokenHash, &inv.CreatedBy, &created, &exp); err != nil {
		return inv, notFound(err)
	}
	inv.Role, inv.CreatedAt, inv.ExpiresAt = accounts.Role(role), fromUnixNano(created), fromUnixNano(exp)
	return inv, nil
}

// ListInvitations implements accounts.Store.
func (s *AccountStore) ListInvitations(ctx context.Context, tenantID string, now time.Time) ([]accounts.Invitation, error) {
	rows, err := s.db.reader.QueryContext(ctx, `SELECT `+invCols+` FROM invitations WHERE tenant_id = ? AND expires_at > ? ORDER BY created_at, id`, tenantID, unixNano(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []accounts.Invitation
	for rows.Next() {
		inv, err := scanInvitation(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, inv)
	}
	return out, rows.Err()
}

// DeleteInvitation implements accounts.Store.
func (s *AccountStore) DeleteInvitation(ctx context.Context, tenantID, id string) error {
	return affected(s.db.writer.ExecContext(ctx, `DELETE FROM invitations WHERE id = ? AND tenant_id = ?`, id, tenantID))
}

// AcceptInvitation implements accounts.Store.
func (s *AccountStore) AcceptInvitation(ctx context.Context, hash []byte, now time.Time, build func(accounts.Invitation) (accounts.User, error)) (accounts.User, error) {
	var u accounts.User
	err := s.db.withTx(ctx, func(tx *sql.Tx) error {
		inv, err := scanInvitation(tx.QueryRowContext(ctx, `SELECT `+invCols+` FROM invitations WHERE token_hash = ? AND expires_at > ?`, hash, unixNano(now)))
		if err != nil {
			return err
		}
		if u, err = build(inv); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM invitations WHERE id = ?`, inv.ID); err != nil {
			return err
		}
		return insertUser(ctx, tx, u)
	})
	return u, err
}

// CreateReset implements accounts.Store.
func (s *AccountStore) CreateReset(ctx context.Context, r accounts.ResetToken) error {
	_, err := s.db.writer.ExecContext(ctx, `INSERT INTO password_resets(token_hash, user_id, tenant_id, created_by, expires_at) VALUES (?, ?, ?, ?, ?)`,
		r.TokenHash, r.UserID, r.TenantID, r.CreatedBy, unixNano(r.ExpiresAt))
	return err
}

// UseReset implements accounts.Store.
func (s *AccountStore) UseReset(ctx context.Context, hash []byte, now time.Time) (accounts.ResetToken, error) {
	var r accounts.ResetToken
	err := s.db.withTx(ctx, func(tx *sql.Tx) error {
		var exp int64
		err := tx.QueryRowContext(ctx, `SELECT token_hash, user_id, tenant_id, created_by, expires_at FROM password_resets WHERE token_hash = ? AND expires_at > ?`,
			hash, unixNano(now)).Scan(&r.TokenHash, &r.UserID, &r.TenantID, &r.CreatedBy, &exp)
		if err != nil {
			return notFound(err)
		}
		r.ExpiresAt = fromUnixNano(exp)
		_, err = tx.ExecContext(ctx, `DELETE FROM password_resets WHERE user_id = ?`, r.UserID)
		return err
	})
	return r, err
}

// CreateAPIToken implements accounts.Store.
func (s *AccountStore) CreateAPIToken(ctx context.Context, t accounts.APIToken) error {
	_, err := s.db.writer.ExecContext(ctx,
		`INSERT INTO api_tokens(id, tenant_id, created_by, name, token_hash, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.TenantID, t.CreatedBy, t.Name, t.TokenHash, accounts.FormatScopes(t.Scopes), unixNano(t.CreatedAt), accNano(t.ExpiresAt))
	return err
}

const tokCols = `id, tenant_id, created_by, name, token_hash, scopes, created_at, expires_at, last_used, revoked_at`

func scanToken(r accRow) (accounts.APIToken, error) {
	var t accounts.APIToken
	var scopes string
	var created, exp, used, revoked int64
	if err := r.Scan(&t.ID, &t.TenantID, &t.CreatedBy, &t.Name, &t.TokenHash, &scopes, &created, &exp, &used, &revoked); err != nil {
		return t, notFound(err)
	}
	t.Scopes, t.CreatedAt, t.ExpiresAt, t.LastUsed, t.Revoked = accounts.ParseScopes(scopes), fromUnixNano(created), accTime(exp), accTime(used), revoked != 0
	return t, nil
}

// APITokenByHash implements accounts.Store.
func (s *AccountStore) APITokenByHash(ctx context.Context, hash []byte) (accounts.APIToken, error) {
	return scanToken(s.db.reader.QueryRowContext(ctx, `SELECT `+tokCols+` FROM api_tokens WHERE token_hash = ?`, hash))
}

// ListAPITokens implements accounts.Store.
func (s *AccountStore) ListAPITokens(ctx context.Context, tenantID string) ([]accounts.APIToken, error) {
	rows, err := s.db.reader.QueryContext(ctx, `SELECT `+tokCols+` FROM api_tokens WHERE tenant_id = ? ORDER BY created_at, id`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []accounts.APIToken
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken implements accounts.Store.
func (s *AccountStore) RevokeAPIToken(ctx context.Context, tenantID, id string, at time.Time) error {
	return affected(s.db.writer.ExecContext(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at = 0`,
		unixNano(at), id, tenantID))
}

// TouchAPIToken implements accounts.Store.
func (s *AccountStore) TouchAPIToken(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.writer.ExecContext(ctx, `UPDATE api_tokens SET last_used = ? WHERE id = ?`, unixNano(at), id)
	return err
}
