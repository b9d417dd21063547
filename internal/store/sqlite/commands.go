package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/safety"
)

// CommandStore implements safety.Store.
type CommandStore struct{ db *DB }

var _ safety.Store = (*CommandStore)(nil)

// Commands returns the command safety adapter.
func (db *DB) Commands() *CommandStore { return &CommandStore{db: db} }

// InsertModel implements safety.Store.
func (s *CommandStore) InsertModel(ctx context.Context, tenantID string, m api.DeviceModel) (int, error) {
	var v int
	err := s.db.withTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) + 1 FROM device_models WHERE tenant_id = ? AND name = ?`,
			tenantID, m.Name).Scan(&v); err != nil {
			return err
		}
		m.Version = v
		spec, err := json.Marshal(m)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO device_models(tenant_id, name, version, spec, created_at) VALUES (?, ?, ?, ?, ?)`,
			tenantID, m.Name, v, string(spec), time.Now().Unix())
		return err
	})
	return v, err
}

func scanModel(row interface{ Scan(...any) error }) (api.DeviceModel, error) {
	var spec string
	var m api.DeviceModel
	if err := row.Scan(&spec); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return m, safety.ErrNotFound
		}
		return m, err
	}
	if err := json.Unmarshal([]byte(spec), &m); err != nil {
		return m, fmt.Errorf("stored model is corrupt: %w", err)
	}
	return m, nil
}

// LatestModel implements safety.Store.
func (s *CommandStore) LatestModel(ctx context.Context, tenantID, name string) (api.DeviceModel, error) {
	return scanModel(s.db.reader.QueryRowContext(ctx, `SELECT spec FROM device_models WHERE tenant_id = ? AND name = ? ORDER BY version DESC LIMIT 1`,
		tenantID, name))
}

// Models implements safety.Store.
func (s *CommandStore) Models(ctx context.Context, tenantID string) ([]api.DeviceModel, error) {
	rows, err := s.db.reader.QueryContext(ctx, `SELECT spec FROM device_models m WHERE tenant_id = ?
		AND version = (SELECT MAX(version) FROM device_models WHERE tenant_id = m.tenant_id AND name = m.name) ORDER BY name`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []api.DeviceModel{}
	for rows.Next() {
		m, err := scanModel(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

const commandColumns = `id, tenant_id, device_id, name, params, status, verdict, issued_by, approved_by, seq,
	created_ns, select_exp_ns, sent_ns, expires_ns, deadline_ns, acked_ns, ack_code, ack_message`

func commandArgs(c *safety.Command) ([]any, error) {
	v, err := json.Marshal(c.Verdict)
	if err != nil {
		return nil, err
	}
	return []any{c.ID, c.TenantID, c.DeviceID, c.Name, []byte(c.Params), c.Status, string(v), c.IssuedBy, c.ApprovedBy, int64(c.Seq),
		nanoOrZero(c.CreatedAt), nanoOrZero(c.SelectExpires), nanoOrZero(c.SentAt), nanoOrZero(c.ExpiresAt), nanoOrZero(c.Deadline), nanoOrZero(c.AckedAt),
		c.AckCode, c.AckMessage}, nil
}

// InsertCommand implements safety.Store.
func (s *CommandStore) InsertCommand(ctx context.Context, c *safety.Command) error {
	args, err := commandArgs(c)
	if err != nil {
		return err
	}
	_, err = s.db.writer.ExecContext(ctx, `INSERT INTO commands(`+commandColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, args...)
	return err
}

// UpdateCommand implements safety.Store (every mutable column).
func (s *CommandStore) UpdateCommand(ctx context.Context, c *safety.Command) error {
	args, err := commandArgs(c)
	if err != nil {
		return err
	}
	_, err = s.db.writer.ExecContext(ctx, `UPDATE commands SET status = ?, verdict = ?, approved_by = ?, seq = ?, select_exp_ns = ?, sent_ns = ?,
		expires_ns = ?, deadline_ns = ?, acked_ns = ?, ack_code = ?, ack_message = ? WHERE id = ? AND tenant_id = ?`,
		args[5], args[6], args[8], args[9], args[11], args[12], args[13], args[14], args[15], args[16], args[17], c.ID, c.TenantID)
	return err
}

func scanCommand(row interface{ Scan(...any) error }) (safety.Command, error) {
	var c safety.Command
	var params []byte
	var verdict string
	var seq, created, sel, sent, exp, dl, acked int64
	if err := row.Scan(&c.ID, &c.TenantID, &c.DeviceID, &c.Name, &params, &c.Status, &verdict, &c.IssuedBy, &c.ApprovedBy, &seq,
		&created, &sel, &sent, &exp, &dl, &acked, &c.AckCode, &c.AckMessage); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return c, safety.ErrNotFound
		}
		return c, err
	}
	if len(params) > 0 {
		c.Params = json.RawMessage(params)
	}
	if err := json.Unmarshal([]byte(verdict), &c.Verdict); err != nil {
		return c, fmt.Errorf("stored verdict of %s is corrupt: %w", c.ID, err)
	}
	c.Seq = uint64(seq)
	c.CreatedAt, c.SelectExpires, c.SentAt = timeOrZero(created), timeOrZero(sel), timeOrZero(sent)
	c.ExpiresAt, c.Deadline, c.AckedAt = timeOrZero(exp), timeOrZero(dl), timeOrZero(acked)
	return c, nil
}

func (s *CommandStore) list(ctx context.Context, query string, args ...any) ([]safety.Command, error) {
	rows, err := s.db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []safety.Command
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Command implements safety.Store. It reads from the writer so that a
// command just written is seen (the API answers with its status).
func (s *CommandStore) Command(ctx context.Context, tenantID, id string) (safety.Command, error) {
	return scanCommand(s.db.writer.QueryRowContext(ctx, `SELECT `+commandColumns+` FROM commands WHERE id = ? AND tenant_id = ?`, id, tenantID))
}

// Commands implements safety.Store.
func (s *CommandStore) Commands(ctx context.Context, tenantID, deviceID string, limit int) ([]safety.Command, error) {
	return s.list(ctx, `SELECT `+commandColumns+` FROM commands WHERE tenant_id = ? AND device_id = ? ORDER BY created_ns DESC, id LIMIT ?`,
		tenantID, deviceID, limit)
}

// OpenCommands implements safety.Store.
func (s *CommandStore) OpenCommands(ctx context.Context, tenantID, deviceID string) ([]safety.Command, error) {
	return s.list(ctx, `SELECT `+commandColumns+` FROM commands WHERE tenant_id = ? AND device_id = ?
		AND status IN ('awaiting_confirmation', 'awaiting_approval')`, tenantID, deviceID)
}

// Due implements safety.Store.
func (s *CommandStore) Due(ctx context.Context, now time.Time, limit int) ([]safety.Command, error) {
	n := unixNano(now)
	return s.list(ctx, `SELECT `+commandColumns+` FROM commands WHERE status IN ('sent', 'awaiting_confirmation', 'awaiting_approval')
		AND ((status = 'sent' AND deadline_ns <= ?) OR (status != 'sent' AND select_exp_ns <= ?)) LIMIT ?`, n, n, limit)
}

// DeviceState implements safety.Store.
func (s *CommandStore) DeviceState(ctx context.Context, deviceID string) ([]byte, uint64, error) {
	var st []byte
	var seq int64
	err := s.db.writer.QueryRowContext(ctx, `SELECT state, seq FROM command_state WHERE device_id = ?`, deviceID).Scan(&st, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, nil
	}
	return st, uint64(seq), err
}

// SaveDeviceState implements safety.Store.
func (s *CommandStore) SaveDeviceState(ctx context.Context, tenantID, deviceID string, state []byte, seq uint64) error {
	_, err := s.db.writer.ExecContext(ctx, `INSERT INTO command_state(device_id, tenant_id, state, seq) VALUES (?, ?, ?, ?)
		ON CONFLICT(device_id) DO UPDATE SET state = excluded.state, seq = excluded.seq`, deviceID, tenantID, state, int64(seq))
	return err
}
