package sqlite

// migrationCommands is migration 6: device models with versioned safety
// policies, commands and their approvals and acks, per-device safety state
// (the policy's memory of outputs, the last command sequence).
const migrationCommands = `
CREATE TABLE device_models (
	tenant_id  TEXT NOT NULL,
	name       TEXT NOT NULL,
	version    INTEGER NOT NULL,
	spec       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (tenant_id, name, version)
);
CREATE TABLE commands (
	id             TEXT PRIMARY KEY,
	tenant_id      TEXT NOT NULL,
	device_id      TEXT NOT NULL,
	name           TEXT NOT NULL,
	params         BLOB,
	status         TEXT NOT NULL,
	verdict        TEXT NOT NULL,
	issued_by      TEXT NOT NULL,
	approved_by    TEXT NOT NULL DEFAULT '',
	seq            INTEGER NOT NULL DEFAULT 0,
	created_ns     INTEGER NOT NULL,
	select_exp_ns  INTEGER NOT NULL DEFAULT 0,
	sent_ns        INTEGER NOT NULL DEFAULT 0,
	expires_ns     INTEGER NOT NULL DEFAULT 0,
	deadline_ns    INTEGER NOT NULL DEFAULT 0,
	acked_ns       INTEGER NOT NULL DEFAULT 0,
	ack_code       TEXT NOT NULL DEFAULT '',
	ack_message    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX commands_device ON commands(tenant_id, device_id, created_ns);
CREATE INDEX commands_open ON commands(status, deadline_ns, select_exp_ns)
	WHERE status IN ('sent', 'awaiting_confirmation', 'awaiting_approval');
CREATE TABLE command_state (
	device_id  TEXT PRIMARY KEY,
	tenant_id  TEXT NOT NULL,
	state      BLOB NOT NULL,
	seq        INTEGER NOT NULL
);
`
