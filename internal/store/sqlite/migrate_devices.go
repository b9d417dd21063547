package sqlite

// migrationDevices is migration 3: the device registry, enrollment tokens,
// claims, manufacturer CAs, factory identities, issued certificates and
// findings. Tokens and secrets are stored only as hashes.
const migrationDevices = `
CREATE TABLE devices (
	id             TEXT PRIMARY KEY,
	tenant_id      TEXT NOT NULL,
	name           TEXT NOT NULL,
	model          TEXT NOT NULL,
	status         TEXT NOT NULL,
	method         TEXT NOT NULL,
	serial_number  TEXT NOT NULL DEFAULT '',
	factory_key    TEXT NOT NULL DEFAULT '',
	cert_serial    TEXT NOT NULL DEFAULT '',
	cert_not_after INTEGER NOT NULL DEFAULT 0,
	secret_hash    BLOB,
	must_rotate    INTEGER NOT NULL DEFAULT 0,
	claim_id       TEXT NOT NULL DEFAULT '',
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL
);
CREATE INDEX devices_tenant ON devices(tenant_id, created_at);
CREATE TABLE enrollment_tokens (
	token_hash BLOB PRIMARY KEY,
	device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
	tenant_id  TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX enrollment_tokens_device ON enrollment_tokens(device_id);
CREATE TABLE claims (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,
	name       TEXT NOT NULL,
	model      TEXT NOT NULL,
	token_hash BLOB NOT NULL UNIQUE,
	max_uses   INTEGER NOT NULL,
	uses       INTEGER NOT NULL DEFAULT 0,
	serials    TEXT NOT NULL DEFAULT '[]',
	expires_at INTEGER NOT NULL,
	revoked    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);
CREATE INDEX claims_tenant ON claims(tenant_id, created_at);
CREATE TABLE claim_serials (
	claim_id  TEXT NOT NULL REFERENCES claims(id),
	serial    TEXT NOT NULL,
	device_id TEXT NOT NULL,
	PRIMARY KEY (claim_id, serial)
);
CREATE TABLE manufacturers (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,
	name       TEXT NOT NULL,
	model      TEXT NOT NULL,
	cas        TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX manufacturers_tenant ON manufacturers(tenant_id);
CREATE TABLE factory_identities (
	key         TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL,
	device_id   TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	reprovision INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL
);
CREATE TABLE device_certs (
	serial      TEXT PRIMARY KEY,
	device_id   TEXT NOT NULL,
	tenant_id   TEXT NOT NULL,
	fingerprint TEXT NOT NULL UNIQUE,
	not_before  INTEGER NOT NULL,
	not_after   INTEGER NOT NULL,
	status      TEXT NOT NULL,
	changed_at  INTEGER NOT NULL
);
CREATE INDEX device_certs_device ON device_certs(device_id);
CREATE INDEX device_certs_revoked ON device_certs(status, not_after);
CREATE TABLE device_findings (
	id          TEXT PRIMARY KEY,
	tenant_id   TEXT NOT NULL,
	device_id   TEXT NOT NULL,
	kind        TEXT NOT NULL,
	detail      TEXT NOT NULL,
	factory_key TEXT NOT NULL DEFAULT '',
	resolved    INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL
);
CREATE INDEX device_findings_tenant ON device_findings(tenant_id, created_at);
`
