package sqlite

// migrationFirmware is migration 5: firmware roots, verified manifests,
// rollouts and their per-device targets, what the hub knows of each
// device's firmware, and per-tenant firmware settings. Image bytes live in
// DATA/firmware/, not here.
const migrationFirmware = `
CREATE TABLE firmware_roots (
	tenant_id  TEXT NOT NULL,
	version    INTEGER NOT NULL,
	envelope   BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, version)
);
CREATE TABLE firmware_images (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,
	model      TEXT NOT NULL,
	sequence   INTEGER NOT NULL,
	status     TEXT NOT NULL,
	manifest   TEXT NOT NULL,
	envelope   BLOB NOT NULL,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	UNIQUE (tenant_id, model, sequence)
);
CREATE INDEX firmware_images_tenant ON firmware_images(tenant_id, created_at);
CREATE TABLE firmware_rollouts (
	id         TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,
	status     TEXT NOT NULL,
	doc        TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX firmware_rollouts_tenant ON firmware_rollouts(tenant_id, created_at);
CREATE TABLE firmware_targets (
	rollout_id TEXT NOT NULL REFERENCES firmware_rollouts(id) DEFERRABLE INITIALLY DEFERRED,
	device_id  TEXT NOT NULL,
	tenant_id  TEXT NOT NULL,
	wave       INTEGER NOT NULL,
	status     TEXT NOT NULL,
	reason     TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX firmware_targets_device ON firmware_targets(tenant_id, device_id);
CREATE TABLE firmware_devices (
	tenant_id  TEXT NOT NULL,
	device_id  TEXT NOT NULL,
	model      TEXT NOT NULL,
	version    TEXT NOT NULL,
	sequence   INTEGER NOT NULL,
	tags       TEXT NOT NULL,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, device_id)
);
CREATE TABLE firmware_settings (
	tenant_id        TEXT PRIMARY KEY,
	require_approval INTEGER NOT NULL,
	min_sequences    TEXT NOT NULL
);
`
