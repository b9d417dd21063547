package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/rampart-iot/rampart/internal/telemetry"
)

// TelemetryStore implements telemetry.Store.
type TelemetryStore struct{ db *DB }

var _ telemetry.Store = (*TelemetryStore)(nil)

// Telemetry returns the telemetry adapter.
func (db *DB) Telemetry() *TelemetryStore { return &TelemetryStore{db: db} }

// InsertBatch implements telemetry.Store: one transaction for the batch.
func (s *TelemetryStore) InsertBatch(ctx context.Context, msgs []telemetry.Message) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `INSERT INTO telemetry(tenant_id, device_id, topic, payload, content_type, received_ns) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, m := range msgs {
			if _, err := st.ExecContext(ctx, m.TenantID, m.DeviceID, m.Topic, m.Payload, m.ContentType, unixNano(m.Received)); err != nil {
				return fmt.Errorf("storing telemetry: %w", err)
			}
		}
		return nil
	})
}

// List implements telemetry.Store.
func (s *TelemetryStore) List(ctx context.Context, tenantID, deviceID string, limit int) ([]telemetry.Message, error) {
	rows, err := s.db.reader.QueryContext(ctx, `SELECT seq, tenant_id, device_id, topic, payload, content_type, received_ns FROM telemetry
		WHERE tenant_id = ? AND device_id = ? ORDER BY seq DESC LIMIT ?`, tenantID, deviceID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []telemetry.Message
	for rows.Next() {
		var m telemetry.Message
		var ns int64
		if err := rows.Scan(&m.Seq, &m.TenantID, &m.DeviceID, &m.Topic, &m.Payload, &m.ContentType, &ns); err != nil {
			return nil, err
		}
		m.Received = fromUnixNano(ns)
		out = append(out, m)
	}
	slices.Reverse(out)
	return out, rows.Err()
}

// DeleteBefore implements telemetry.Store.
func (s *TelemetryStore) DeleteBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.writer.ExecContext(ctx, `DELETE FROM telemetry WHERE received_ns < ?`, unixNano(t))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
