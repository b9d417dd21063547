package sqlite

// migrationAccounts is migration 2: tenants' MFA requirement, users' second
// factor and lock state, session idle expiry, invitations, reset links,
// recovery codes and API tokens. Every credential is stored only as a
// SHA-256 hash (high-entropy tokens) or sealed under the keyring (TOTP
// secrets, which must be read back).
const migrationAccounts = `
ALTER TABLE tenants ADD COLUMN require_mfa INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN mfa_enabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_pending BLOB;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN hard_locked INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_tenant ON users(tenant_id);
ALTER TABLE sessions ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen = created_at;
CREATE TABLE invitations (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants(id),
	email      TEXT NOT NULL,
	role       TEXT NOT NULL,
	token_hash BLOB NOT NULL UNIQUE,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX invitations_tenant ON invitations(tenant_id);
CREATE TABLE password_resets (
	token_hash BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	tenant_id  TEXT NOT NULL,
	created_by TEXT NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX password_resets_user ON password_resets(user_id);
CREATE TABLE recovery_codes (
	user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	code_hash BLOB NOT NULL,
	PRIMARY KEY (user_id, code_hash)
);
CREATE TABLE api_tokens (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL REFERENCES tenants(id),
	created_by TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name       TEXT NOT NULL,
	token_hash BLOB NOT NULL UNIQUE,
	scopes     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,  -- 0: never (explicitly asked for)
	last_used  INTEGER NOT NULL DEFAULT 0,
	revoked_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_tenant ON api_tokens(tenant_id);
`
