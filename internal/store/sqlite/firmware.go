package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/firmware"
)

// FirmwareStore implements firmware.Store.
type FirmwareStore struct{ db *DB }

var (
	_ firmware.Store = (*FirmwareStore)(nil)
	_ firmware.Tx    = (*firmwareTx)(nil)
)

// Firmware returns the firmware adapter.
func (db *DB) Firmware() *FirmwareStore { return &FirmwareStore{db: db} }

// Update implements firmware.Store.
func (s *FirmwareStore) Update(ctx context.Context, fn func(firmware.Tx) error) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		return fn(&firmwareTx{txBase{ctx: ctx, q: tx, dup: firmware.ErrDuplicate}})
	})
}

// View implements firmware.Store.
func (s *FirmwareStore) View(ctx context.Context, fn func(firmware.Tx) error) error {
	return s.db.readTx(ctx, func(tx *sql.Tx) error {
		return fn(&firmwareTx{txBase{ctx: ctx, q: tx, ro: true, dup: firmware.ErrDuplicate}})
	})
}

type firmwareTx struct{ txBase }

func fwNotFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return firmware.ErrNotFound
	}
	return err
}

func (t *firmwareTx) Roots(tenantID string) ([]firmware.RootRecord, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT version, envelope, created_at FROM firmware_roots WHERE tenant_id = ? ORDER BY version`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []firmware.RootRecord
	for rows.Next() {
		r := firmware.RootRecord{TenantID: tenantID}
		var at int64
		if err := rows.Scan(&r.Version, &r.Envelope, &at); err != nil {
			return nil, err
		}
		r.CreatedAt = time.Unix(0, at)
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *firmwareTx) AddRoot(r firmware.RootRecord) error {
	err := t.exec(`INSERT INTO firmware_roots (tenant_id, version, envelope, created_at) VALUES (?, ?, ?, ?)`,
		r.TenantID, r.Version, r.Envelope, r.CreatedAt.UnixNano())
	if err != nil && strings.Contains(err.Error(), "PRIMARY KEY") {
		return firmware.ErrDuplicate
	}
	return err
}

const imageCols = `id, tenant_id, status, manifest, envelope, created_by, created_at`

func scanImage(sc interface{ Scan(...any) error }) (firmware.Image, error) {
	var i firmware.Image
	var manifest string
	var at int64
	if err := sc.Scan(&i.ID, &i.TenantID, &i.Status, &manifest, &i.Envelope, &i.CreatedBy, &at); err != nil {
		return i, fwNotFound(err)
	}
	if err := json.Unmarshal([]byte(manifest), &i.Manifest); err != nil {
		return i, fmt.Errorf("decoding stored manifest %s: %w", i.ID, err)
	}
	i.CreatedAt = time.Unix(0, at)
	return i, nil
}

func (t *firmwareTx) Image(tenantID, id string) (firmware.Image, error) {
	return scanImage(t.q.QueryRowContext(t.ctx, `SELECT `+imageCols+` FROM firmware_images WHERE tenant_id = ? AND id = ?`, tenantID, id))
}

func (t *firmwareTx) Images(tenantID string) ([]firmware.Image, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT `+imageCols+` FROM firmware_images WHERE tenant_id = ? ORDER BY created_at, id LIMIT 10000`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []firmware.Image
	for rows.Next() {
		i, err := scanImage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, i)
	}
	return out, rows.Err()
}

func (t *firmwareTx) PutImage(i firmware.Image) error {
	m, err := json.Marshal(i.Manifest)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO firmware_images (id, tenant_id, model, sequence, status, manifest, envelope, created_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET status = excluded.status`,
		i.ID, i.TenantID, i.Manifest.Model, i.Manifest.Sequence, string(i.Status), string(m), i.Envelope, i.CreatedBy, i.CreatedAt.UnixNano())
}

func scanRollout(sc interface{ Scan(...any) error }) (firmware.Rollout, error) {
	var doc string
	if err := sc.Scan(&doc); err != nil {
		return firmware.Rollout{}, fwNotFound(err)
	}
	var r firmware.Rollout
	if err := json.Unmarshal([]byte(doc), &r); err != nil {
		return r, fmt.Errorf("decoding stored rollout: %w", err)
	}
	return r, nil
}

func (t *firmwareTx) Rollout(tenantID, id string) (firmware.Rollout, error) {
	return scanRollout(t.q.QueryRowContext(t.ctx, `SELECT doc FROM firmware_rollouts WHERE tenant_id = ? AND id = ?`, tenantID, id))
}

func (t *firmwareTx) Rollouts(tenantID string) ([]firmware.Rollout, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT doc FROM firmware_rollouts WHERE tenant_id = ? ORDER BY created_at, id LIMIT 10000`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []firmware.Rollout
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (t *firmwareTx) PutRollout(r firmware.Rollout) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO firmware_rollouts (id, tenant_id, status, doc, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET status = excluded.status, doc = excluded.doc`,
		r.ID, r.TenantID, string(r.Status), string(doc), r.CreatedAt.UnixNano())
}

const targetCols = `rollout_id, tenant_id, device_id, wave, status, reason, updated_at`

func scanTargets(rows *sql.Rows, err error) ([]firmware.Target, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []firmware.Target
	for rows.Next() {
		var tg firmware.Target
		var at int64
		if err := rows.Scan(&tg.RolloutID, &tg.TenantID, &tg.DeviceID, &tg.Wave, &tg.Status, &tg.Reason, &at); err != nil {
			return nil, err
		}
		tg.UpdatedAt = time.Unix(0, at)
		out = append(out, tg)
	}
	return out, rows.Err()
}

func (t *firmwareTx) Targets(rolloutID string) ([]firmware.Target, error) {
	return scanTargets(t.q.QueryContext(t.ctx, `SELECT `+targetCols+` FROM firmware_targets WHERE rollout_id = ? ORDER BY wave, device_id`, rolloutID))
}

func (t *firmwareTx) DeviceTargets(tenantID, deviceID string) ([]firmware.Target, error) {
	return scanTargets(t.q.QueryContext(t.ctx, `SELECT t.rollout_id, t.tenant_id, t.device_id, t.wave, t.status, t.reason, t.updated_at
		FROM firmware_targets t JOIN firmware_rollouts r ON r.id = t.rollout_id
		WHERE t.tenant_id = ? AND t.device_id = ? ORDER BY r.created_at DESC LIMIT 100`, tenantID, deviceID))
}

func (t *firmwareTx) PutTarget(tg firmware.Target) error {
	return t.exec(`INSERT INTO firmware_targets (`+targetCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(rollout_id, device_id) DO UPDATE SET wave = excluded.wave, status = excluded.status, reason = excluded.reason, updated_at = excluded.updated_at`,
		tg.RolloutID, tg.TenantID, tg.DeviceID, tg.Wave, string(tg.Status), tg.Reason, tg.UpdatedAt.UnixNano())
}

func scanDeviceState(sc interface{ Scan(...any) error }) (firmware.DeviceState, error) {
	var d firmware.DeviceState
	var tags string
	var at int64
	if err := sc.Scan(&d.TenantID, &d.DeviceID, &d.Model, &d.Version, &d.Sequence, &tags, &at); err != nil {
		return d, fwNotFound(err)
	}
	if err := json.Unmarshal([]byte(tags), &d.Tags); err != nil {
		return d, err
	}
	d.UpdatedAt = time.Unix(0, at)
	return d, nil
}

const deviceStateCols = `tenant_id, device_id, model, version, sequence, tags, updated_at`

func (t *firmwareTx) DeviceState(tenantID, deviceID string) (firmware.DeviceState, error) {
	return scanDeviceState(t.q.QueryRowContext(t.ctx, `SELECT `+deviceStateCols+` FROM firmware_devices WHERE tenant_id = ? AND device_id = ?`, tenantID, deviceID))
}

func (t *firmwareTx) DeviceStates(tenantID string) ([]firmware.DeviceState, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT `+deviceStateCols+` FROM firmware_devices WHERE tenant_id = ? ORDER BY device_id`, tenantID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []firmware.DeviceState
	for rows.Next() {
		d, err := scanDeviceState(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (t *firmwareTx) PutDeviceState(d firmware.DeviceState) error {
	if d.Tags == nil {
		d.Tags = []string{}
	}
	tags, _ := json.Marshal(d.Tags)
	return t.exec(`INSERT INTO firmware_devices (`+deviceStateCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(tenant_id, device_id) DO UPDATE SET model = excluded.model, version = excluded.version,
			sequence = excluded.sequence, tags = excluded.tags, updated_at = excluded.updated_at`,
		d.TenantID, d.DeviceID, d.Model, d.Version, d.Sequence, string(tags), d.UpdatedAt.UnixNano())
}

func (t *firmwareTx) Settings(tenantID string) (firmware.Settings, error) {
	s := firmware.Settings{TenantID: tenantID}
	var req int
	var mins string
	err := t.q.QueryRowContext(t.ctx, `SELECT require_approval, min_sequences FROM firmware_settings WHERE tenant_id = ?`, tenantID).Scan(&req, &mins)
	if errors.Is(err, sql.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, err
	}
	s.RequireApproval = req != 0
	return s, json.Unmarshal([]byte(mins), &s.MinSequences)
}

func (t *firmwareTx) PutSettings(s firmware.Settings) error {
	if s.MinSequences == nil {
		s.MinSequences = map[string]uint64{}
	}
	mins, _ := json.Marshal(s.MinSequences)
	return t.exec(`INSERT INTO firmware_settings (tenant_id, require_approval, min_sequences) VALUES (?, ?, ?)
		ON CONFLICT(tenant_id) DO UPDATE SET require_approval = excluded.require_approval, min_sequences = excluded.min_sequences`,
		s.TenantID, b2i(s.RequireApproval), string(mins))
}
