package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order, each once, each in its own transaction.
// Never edit a migration that has shipped: append a new one.
var migrations = []string{
	// 1: foundation — keyring, sealed secrets, journal, first accounts.
	`
CREATE TABLE data_keys (
	id         TEXT PRIMARY KEY,
	kek_id     TEXT NOT NULL,
	wrapped    BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	active     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sealed_secrets (
	name       TEXT PRIMARY KEY,
	ciphertext BLOB NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE TABLE journal (
	seq       INTEGER PRIMARY KEY,
	time_ns   INTEGER NOT NULL,
	actor     TEXT NOT NULL,
	tenant    TEXT NOT NULL,
	action    TEXT NOT NULL,
	target    TEXT NOT NULL,
	outcome   TEXT NOT NULL,
	detail    TEXT NOT NULL,
	prev_hash BLOB NOT NULL,
	hash      BLOB NOT NULL,
	mac       BLOB NOT NULL
);
CREATE TABLE journal_checkpoints (
	seq       INTEGER PRIMARY KEY,
	hash      BLOB NOT NULL,
	time_ns   INTEGER NOT NULL,
	key_id    TEXT NOT NULL,
	signature BLOB NOT NULL
);
CREATE TABLE tenants (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	tenant_id     TEXT NOT NULL REFERENCES tenants(id),
	email         TEXT NOT NULL UNIQUE,
	password_hash TEXT NOT NULL,
	role          TEXT NOT NULL,
	created_at    INTEGER NOT NULL
);
CREATE TABLE sessions (
	token_hash BLOB PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	tenant_id  TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE TABLE setup_code (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	code_hash  BLOB NOT NULL,
	expires_at INTEGER NOT NULL,
	failures   INTEGER NOT NULL DEFAULT 0,
	burnt      INTEGER NOT NULL DEFAULT 0
);
`,
	// 2: accounts — tenants, roles, invitations, MFA, throttling, API tokens (migrate_accounts.go).
	migrationAccounts,
	// 3: devices — device registry, enrollment, claims, manufacturers, PKI state (migrate_devices.go).
	migrationDevices,
	// 4: telemetry — stored device messages (migrate_telemetry.go).
	migrationTelemetry,
	// 5: firmware — signing roots, images, manifests, rollouts (migrate_firmware.go).
	migrationFirmware,
	// 6: commands — device models, safety policies, commands, approvals (migrate_commands.go).
	migrationCommands,
}

// SchemaVersion is the number of migrations this build knows.
func SchemaVersion() int { return len(migrations) }

// Migrate applies pending migrations. A database written by a newer build
// (a higher version than this build knows) is refused rather than guessed at.
func (db *DB) Migrate(ctx context.Context) error {
	if _, err := db.writer.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("creating schema_migrations: %w", err)
	}
	var current int
	if err := db.writer.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database %s has schema version %d but this build knows only %d; run a newer rampart", db.path, current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		err := db.withTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("applying migration %d: %w", v, err)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, strftime('%s','now'))`, v)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}
