package sqlite

// migrationTelemetry is migration 4: stored device messages.
const migrationTelemetry = `
CREATE TABLE telemetry (
	seq          INTEGER PRIMARY KEY,
	tenant_id    TEXT NOT NULL,
	device_id    TEXT NOT NULL,
	topic        TEXT NOT NULL,
	payload      BLOB NOT NULL,
	content_type TEXT NOT NULL,
	received_ns  INTEGER NOT NULL
);
CREATE INDEX telemetry_device ON telemetry(tenant_id, device_id, seq);
CREATE INDEX telemetry_received ON telemetry(received_ns);
`
