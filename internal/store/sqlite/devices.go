package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/devices"
)

// DeviceStore implements devices.Store.
type DeviceStore struct{ db *DB }

var (
	_ devices.Store = (*DeviceStore)(nil)
	_ devices.Tx    = (*deviceTx)(nil)
)

// Devices returns the device registry adapter.
func (db *DB) Devices() *DeviceStore { return &DeviceStore{db: db} }

// Update implements devices.Store: one write transaction.
func (s *DeviceStore) Update(ctx context.Context, fn func(devices.Tx) error) error {
	return s.db.withTx(ctx, func(tx *sql.Tx) error {
		return fn(&deviceTx{txBase{ctx: ctx, q: tx, dup: devices.ErrDuplicate}})
	})
}

// View implements devices.Store: a read transaction on the read pool.
func (s *DeviceStore) View(ctx context.Context, fn func(devices.Tx) error) error {
	return s.db.readTx(ctx, func(tx *sql.Tx) error {
		return fn(&deviceTx{txBase{ctx: ctx, q: tx, ro: true, dup: devices.ErrDuplicate}})
	})
}

type deviceTx struct{ txBase }

func devNotFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return devices.ErrNotFound
	}
	return err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func nanoOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOrZero(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return fromUnixNano(n)
}

const deviceCols = `id, tenant_id, name, model, status, method, serial_number, factory_key, cert_serial, cert_not_after,
	secret_hash, must_rotate, claim_id, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanDevice(r scanner) (devices.Device, error) {
	var d devices.Device
	var status, method string
	var notAfter, created, updated int64
	var must int
	if err := r.Scan(&d.ID, &d.TenantID, &d.Name, &d.Model, &status, &method, &d.SerialNumber, &d.FactoryKey, &d.CertSerial,
		&notAfter, &d.SecretHash, &must, &d.ClaimID, &created, &updated); err != nil {
		return d, devNotFound(err)
	}
	d.Status, d.Method, d.MustRotate = devices.Status(status), devices.Method(method), must == 1
	d.CertNotAfter, d.CreatedAt, d.UpdatedAt = timeOrZero(notAfter), fromUnixNano(created), fromUnixNano(updated)
	return d, nil
}

func (t *deviceTx) Device(id string) (devices.Device, error) {
	return scanDevice(t.q.QueryRowContext(t.ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
}

func (t *deviceTx) Devices(tenantID string, limit int) ([]devices.Device, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT `+deviceCols+` FROM devices WHERE tenant_id = ? ORDER BY created_at DESC, id LIMIT ?`, tenantID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []devices.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (t *deviceTx) PutDevice(d devices.Device) error {
	return t.exec(`INSERT INTO devices(`+deviceCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET name=excluded.name, model=excluded.model, status=excluded.status, method=excluded.method,
		serial_number=excluded.serial_number, factory_key=excluded.factory_key, cert_serial=excluded.cert_serial,
		cert_not_after=excluded.cert_not_after, secret_hash=excluded.secret_hash, must_rotate=excluded.must_rotate,
		claim_id=excluded.claim_id, updated_at=excluded.updated_at`,
		d.ID, d.TenantID, d.Name, d.Model, string(d.Status), string(d.Method), d.SerialNumber, d.FactoryKey, d.CertSerial,
		nanoOrZero(d.CertNotAfter), d.SecretHash, b2i(d.MustRotate), d.ClaimID, unixNano(d.CreatedAt), unixNano(d.UpdatedAt))
}

func (t *deviceTx) Token(hash []byte) (devices.Token, error) {
	var tk devices.Token
	var exp, created int64
	err := t.q.QueryRowContext(t.ctx, `SELECT token_hash, device_id, tenant_id, expires_at, created_at FROM enrollment_tokens WHERE token_hash = ?`, hash).
		Scan(&tk.Hash, &tk.DeviceID, &tk.TenantID, &exp, &created)
	if err != nil {
		return tk, devNotFound(err)
	}
	tk.ExpiresAt, tk.CreatedAt = fromUnixNano(exp), fromUnixNano(created)
	return tk, nil
}

func (t *deviceTx) PutToken(tk devices.Token) error {
	return t.exec(`INSERT INTO enrollment_tokens(token_hash, device_id, tenant_id, expires_at, created_at) VALUES (?,?,?,?,?)`,
		tk.Hash, tk.DeviceID, tk.TenantID, unixNano(tk.ExpiresAt), unixNano(tk.CreatedAt))
}

func (t *deviceTx) DeleteTokens(deviceID string) error {
	return t.exec(`DELETE FROM enrollment_tokens WHERE device_id = ?`, deviceID)
}

const claimCols = `id, tenant_id, name, model, token_hash, max_uses, uses, serials, expires_at, revoked, created_at`

func scanClaim(r scanner) (devices.Claim, error) {
	var c devices.Claim
	var serials string
	var exp, created int64
	var revoked int
	if err := r.Scan(&c.ID, &c.TenantID, &c.Name, &c.Model, &c.Hash, &c.MaxUses, &c.Uses, &serials, &exp, &revoked, &created); err != nil {
		return c, devNotFound(err)
	}
	if err := json.Unmarshal([]byte(serials), &c.Serials); err != nil {
		return c, fmt.Errorf("claim %s: serials: %w", c.ID, err)
	}
	c.ExpiresAt, c.CreatedAt, c.Revoked = fromUnixNano(exp), fromUnixNano(created), revoked == 1
	return c, nil
}

func (t *deviceTx) Claim(id string) (devices.Claim, error) {
	return scanClaim(t.q.QueryRowContext(t.ctx, `SELECT `+claimCols+` FROM claims WHERE id = ?`, id))
}

func (t *deviceTx) ClaimByHash(hash []byte) (devices.Claim, error) {
	return scanClaim(t.q.QueryRowContext(t.ctx, `SELECT `+claimCols+` FROM claims WHERE token_hash = ?`, hash))
}

func (t *deviceTx) Claims(tenantID string, limit int) ([]devices.Claim, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT `+claimCols+` FROM claims WHERE tenant_id = ? ORDER BY created_at DESC, id LIMIT ?`, tenantID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []devices.Claim
	for rows.Next() {
		c, err := scanClaim(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (t *deviceTx) PutClaim(c devices.Claim) error {
	serials := c.Serials
	if serials == nil {
		serials = []string{}
	}
	js, err := json.Marshal(serials)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO claims(`+claimCols+`) VALUES (?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET uses=excluded.uses, revoked=excluded.revoked, serials=excluded.serials, max_uses=excluded.max_uses,
		expires_at=excluded.expires_at, name=excluded.name`,
		c.ID, c.TenantID, c.Name, c.Model, c.Hash, c.MaxUses, c.Uses, string(js), unixNano(c.ExpiresAt), b2i(c.Revoked), unixNano(c.CreatedAt))
}

func (t *deviceTx) AddClaimSerial(claimID, serial, deviceID string) error {
	return t.exec(`INSERT INTO claim_serials(claim_id, serial, device_id) VALUES (?,?,?)`, claimID, serial, deviceID)
}

func (t *deviceTx) Manufacturers(tenantID string) ([]devices.Manufacturer, error) {
	q := `SELECT id, tenant_id, name, model, cas, created_at FROM manufacturers`
	args := []any{}
	if tenantID != "" {
		q += ` WHERE tenant_id = ?`
		args = append(args, tenantID)
	}
	rows, err := t.q.QueryContext(t.ctx, q+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []devices.Manufacturer
	for rows.Next() {
		var m devices.Manufacturer
		var cas string
		var created int64
		if err := rows.Scan(&m.ID, &m.TenantID, &m.Name, &m.Model, &cas, &created); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(cas), &m.CAs); err != nil {
			return nil, fmt.Errorf("manufacturer %s: %w", m.ID, err)
		}
		m.CreatedAt = fromUnixNano(created)
		out = append(out, m)
	}
	return out, rows.Err()
}

func (t *deviceTx) PutManufacturer(m devices.Manufacturer) error {
	cas, err := json.Marshal(m.CAs)
	if err != nil {
		return err
	}
	return t.exec(`INSERT INTO manufacturers(id, tenant_id, name, model, cas, created_at) VALUES (?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET name=excluded.name, model=excluded.model, cas=excluded.cas`,
		m.ID, m.TenantID, m.Name, m.Model, string(cas), unixNano(m.CreatedAt))
}

func (t *deviceTx) FactoryIdentity(key string) (devices.FactoryIdentity, error) {
	var f devices.FactoryIdentity
	var rep int
	var created int64
	err := t.q.QueryRowContext(t.ctx, `SELECT key, tenant_id, device_id, fingerprint, reprovision, created_at FROM factory_identities WHERE key = ?`, key).
		Scan(&f.Key, &f.TenantID, &f.DeviceID, &f.Fingerprint, &rep, &created)
	if err != nil {
		return f, devNotFound(err)
	}
	f.Reprovision, f.CreatedAt = rep == 1, fromUnixNano(created)
	return f, nil
}

func (t *deviceTx) PutFactoryIdentity(f devices.FactoryIdentity) error {
	return t.exec(`INSERT INTO factory_identities(key, tenant_id, device_id, fingerprint, reprovision, created_at) VALUES (?,?,?,?,?,?)
		ON CONFLICT(key) DO UPDATE SET device_id=excluded.device_id, fingerprint=excluded.fingerprint, reprovision=excluded.reprovision`,
		f.Key, f.TenantID, f.DeviceID, f.Fingerprint, b2i(f.Reprovision), unixNano(f.CreatedAt))
}

func (t *deviceTx) DeleteFactoryIdentity(key string) error {
	return t.exec(`DELETE FROM factory_identities WHERE key = ?`, key)
}

const certCols = `serial, device_id, tenant_id, fingerprint, not_before, not_after, status, changed_at`

func scanCert(r scanner) (devices.Cert, error) {
	var c devices.Cert
	var nb, na, ch int64
	var status string
	if err := r.Scan(&c.Serial, &c.DeviceID, &c.TenantID, &c.Fingerprint, &nb, &na, &status, &ch); err != nil {
		return c, devNotFound(err)
	}
	c.NotBefore, c.NotAfter, c.Status, c.ChangedAt = fromUnixNano(nb), fromUnixNano(na), devices.CertStatus(status), fromUnixNano(ch)
	return c, nil
}

func (t *deviceTx) certs(query string, args ...any) ([]devices.Cert, error) {
	rows, err := t.q.QueryContext(t.ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []devices.Cert
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (t *deviceTx) Cert(serial string) (devices.Cert, error) {
	return scanCert(t.q.QueryRowContext(t.ctx, `SELECT `+certCols+` FROM device_certs WHERE serial = ?`, serial))
}

func (t *deviceTx) Certs(deviceID string) ([]devices.Cert, error) {
	return t.certs(`SELECT `+certCols+` FROM device_certs WHERE device_id = ? ORDER BY not_before, serial`, deviceID)
}

func (t *deviceTx) PutCert(c devices.Cert) error {
	return t.exec(`INSERT INTO device_certs(`+certCols+`) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT(serial) DO UPDATE SET status=excluded.status, changed_at=excluded.changed_at`,
		c.Serial, c.DeviceID, c.TenantID, c.Fingerprint, unixNano(c.NotBefore), unixNano(c.NotAfter), string(c.Status), unixNano(c.ChangedAt))
}

func (t *deviceTx) RevokedCerts(now time.Time) ([]devices.Cert, error) {
	return t.certs(`SELECT `+certCols+` FROM device_certs WHERE status = ? AND not_after > ? ORDER BY changed_at, serial`,
		string(devices.CertRevoked), unixNano(now))
}

const findingCols = `id, tenant_id, device_id, kind, detail, factory_key, resolved, created_at`

func scanFinding(r scanner) (devices.Finding, error) {
	var f devices.Finding
	var res int
	var created int64
	if err := r.Scan(&f.ID, &f.TenantID, &f.DeviceID, &f.Kind, &f.Detail, &f.FactoryKey, &res, &created); err != nil {
		return f, devNotFound(err)
	}
	f.Resolved, f.CreatedAt = res == 1, fromUnixNano(created)
	return f, nil
}

func (t *deviceTx) Finding(id string) (devices.Finding, error) {
	return scanFinding(t.q.QueryRowContext(t.ctx, `SELECT `+findingCols+` FROM device_findings WHERE id = ?`, id))
}

func (t *deviceTx) Findings(tenantID string, limit int) ([]devices.Finding, error) {
	rows, err := t.q.QueryContext(t.ctx, `SELECT `+findingCols+` FROM device_findings WHERE tenant_id = ? ORDER BY created_at DESC, id LIMIT ?`, tenantID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []devices.Finding
	for rows.Next() {
		f, err := scanFinding(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

func (t *deviceTx) PutFinding(f devices.Finding) error {
	return t.exec(`INSERT INTO device_findings(`+findingCols+`) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET resolved=excluded.resolved`,
		f.ID, f.TenantID, f.DeviceID, f.Kind, f.Detail, f.FactoryKey, b2i(f.Resolved), unixNano(f.CreatedAt))
}
