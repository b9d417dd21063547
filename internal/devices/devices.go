// Package devices is Rampart's device registry: every device's identity and
// lifecycle (pending -> active -> suspended / quarantined -> revoked, and
// decommissioned), the four ways a device enrolls (a single-use enrollment
// token, a batch claim, manufacturer attestation, a per-device secret that
// must be rotated before anything else), certificate renewal, revocation,
// counterfeit checks and clone detection.
//
// The hub itself decides whether a device may connect from this registry
// (Authorize, ValidateSecret, ConnectionOpened); the signed CRL is for third
// parties. Every issuance, renewal, revocation, claim use, refusal and
// finding is journaled.
package devices

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/pki"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// Status is where a device is in its lifecycle.
type Status string

// Statuses.
const (
	StatusPending        Status = "pending"        // created, no credential used yet
	StatusActive         Status = "active"         // enrolled; may connect
	StatusSuspended      Status = "suspended"      // paused by an operator; may be reactivated
	StatusQuarantined    Status = "quarantined"    // cut off for suspicious behaviour; may be reactivated
	StatusRevoked        Status = "revoked"        // identity withdrawn for good
	StatusDecommissioned Status = "decommissioned" // retired; credentials deleted
)

// Method is how a device got its identity.
type Method string

// Enrollment methods.
const (
	MethodToken       Method = "token"
	MethodClaim       Method = "claim"
	MethodAttestation Method = "attestation"
	MethodSecret      Method = "secret"
)

// Device is one registered device.
type Device struct {
	ID           string
	TenantID     string
	Name         string
	Model        string
	Status       Status
	Method       Method
	SerialNumber string // from a claim's allow-list or the factory certificate
	FactoryKey   string // factory identity bound at attestation
	CertSerial   string // current certificate
	CertNotAfter time.Time
	SecretHash   []byte // secret-authenticated devices only
	MustRotate   bool   // the secret must be changed before anything else
	ClaimID      string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Token is a stored enrollment token (only its hash).
type Token struct {
	Hash      []byte
	DeviceID  string
	TenantID  string
	ExpiresAt time.Time
	CreatedAt time.Time
}

// Claim is a batch credential whose only power is to be exchanged, with a
// CSR, for a new unique device identity.
type Claim struct {
	ID        string
	TenantID  string
	Name      string
	Model     string
	Hash      []byte
	MaxUses   int
	Uses      int
	Serials   []string // allow-list; empty allows any (serial optional)
	ExpiresAt time.Time
	Revoked   bool
	CreatedAt time.Time
}

// Manufacturer is a registered manufacturer CA for one product model.
type Manufacturer struct {
	ID        string
	TenantID  string
	Name      string
	Model     string
	CAs       [][]byte // DER
	CreatedAt time.Time
}

// FactoryIdentity binds a factory certificate's identity (issuer + subject)
// to the device it enrolled.
type FactoryIdentity struct {
	Key         string // hex SHA-256 of issuer and subject
	TenantID    string
	DeviceID    string
	Fingerprint string // of the factory certificate first used
	Reprovision bool   // an admin approved one more enrollment
	CreatedAt   time.Time
}

// CertStatus is a certificate's state in the registry.
type CertStatus string

// Certificate states.
const (
	CertActive     CertStatus = "active"
	CertSuperseded CertStatus = "superseded" // renewed; accepted for renewGrace
	CertRevoked    CertStatus = "revoked"
)

// Cert is an issued device certificate as the registry knows it.
type Cert struct {
	Serial      string
	DeviceID    string
	TenantID    string
	Fingerprint string
	NotBefore   time.Time
	NotAfter    time.Time
	Status      CertStatus
	ChangedAt   time.Time // superseded or revoked at
}

// Finding kinds.
const (
	FindingPossibleClone    = "possible_clone"        // second enrollment of a factory identity
	FindingCloneConnection  = "clone_connection"      // same identity connected twice at once or from two places
	FindingRevokedReconnect = "revoked_identity_seen" // a revoked identity keeps trying
)

// Finding is something an admin should look at.
type Finding struct {
	ID         string
	TenantID   string
	DeviceID   string
	Kind       string
	Detail     string
	FactoryKey string
	Resolved   bool
	CreatedAt  time.Time
}

// ErrNotFound is returned by a Tx for a missing row.
var ErrNotFound = errors.New("not found")

// ErrDuplicate is returned by a Tx when a unique key already exists.
var ErrDuplicate = errors.New("duplicate")

// Store is the storage the registry consumes; internal/store/sqlite
// implements it.
type Store interface {
	// Update runs fn in ONE write transaction; an error from fn rolls it
	// back and is returned. fn must not call back into the Store or the
	// journal.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn on a read-only snapshot.
	View(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction's view of the registry.
type Tx interface {
	Device(id string) (Device, error)
	Devices(tenantID string, limit int) ([]Device, error)
	PutDevice(d Device) error // insert or replace
	Token(hash []byte) (Token, error)
	PutToken(t Token) error
	DeleteTokens(deviceID string) error
	Claim(id string) (Claim, error)
	ClaimByHash(hash []byte) (Claim, error)
	Claims(tenantID string, limit int) ([]Claim, error)
	PutClaim(c Claim) error
	// AddClaimSerial records that serial was enrolled under claim;
	// ErrDuplicate when it already was.
	AddClaimSerial(claimID, serial, deviceID string) error
	Manufacturers(tenantID string) ([]Manufacturer, error) // "" lists every tenant's
	PutManufacturer(m Manufacturer) error
	FactoryIdentity(key string) (FactoryIdentity, error)
	PutFactoryIdentity(f FactoryIdentity) error
	DeleteFactoryIdentity(key string) error
	Cert(serial string) (Cert, error)
	Certs(deviceID string) ([]Cert, error)
	PutCert(c Cert) error
	// RevokedCerts lists revoked certificates not yet expired at now.
	RevokedCerts(now time.Time) ([]Cert, error)
	Finding(id string) (Finding, error)
	Findings(tenantID string, limit int) ([]Finding, error)
	PutFinding(f Finding) error
}

// CA is what the registry needs from the device intermediate (pki.DeviceCA).
type CA interface {
	Issue(deviceID string, pub crypto.PublicKey, now time.Time, lifetime time.Duration) (pki.DeviceCert, error)
	VerifyDevice(leaf *x509.Certificate, now time.Time) (string, error)
	CRL(revoked []pki.Revoked, now time.Time) ([]byte, error)
}

// Recorder is the journal as the registry sees it.
type Recorder interface {
	Record(ctx context.Context, e journal.Event) error
}

// Disconnector closes live sessions of a device (the broker registers one).
// remoteAddr "" means every session of the device.
type Disconnector interface {
	Disconnect(deviceID, remoteAddr, reason string)
}

// ClonePolicy says what happens when an identity connects while a session
// of it is live (or from another address moments after).
type ClonePolicy string

// Clone policies.
const (
	// CloneRefuse refuses the new connection (default: the live device keeps
	// working and the clone gets nothing).
	CloneRefuse ClonePolicy = "refuse"
	// CloneReplace closes the old session, admits the new one and flags it.
	CloneReplace ClonePolicy = "replace"
)

// Options configure a Service.
type Options struct {
	Store        Store
	CA           CA
	Journal      Recorder
	Now          func() time.Time
	Rand         io.Reader
	Logger       *slog.Logger
	CertLifetime time.Duration // default pki.DefaultDeviceCertLifetime
	TokenTTL     time.Duration // default DefaultTokenTTL
	ClonePolicy  ClonePolicy   // default CloneRefuse
	CloneWindow  time.Duration // default DefaultCloneWindow
}

// Service is the device registry.
type Service struct {
	o Options

	mu       sync.Mutex
	disc     Disconnector
	live     map[string]map[string]time.Time // device -> remote addr -> opened
	lastSeen map[string]seen                 // device -> last closed session
	revoked  map[string]int                  // device -> refused attempts since revocation

	crlMu    sync.Mutex
	crl      []byte
	crlUntil time.Time
}

type seen struct {
	host string
	at   time.Time
}

// New checks o and returns a Service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.CA == nil || o.Journal == nil {
		return nil, errors.New("devices: Store, CA and Journal are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		return nil, errors.New("devices: Rand is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CertLifetime == 0 {
		o.CertLifetime = pki.DefaultDeviceCertLifetime
	}
	if o.TokenTTL == 0 {
		o.TokenTTL = DefaultTokenTTL
	}
	if o.CloneWindow == 0 {
		o.CloneWindow = DefaultCloneWindow
	}
	switch o.ClonePolicy {
	case "":
		o.ClonePolicy = CloneRefuse
	case CloneRefuse, CloneReplace:
	default:
		return nil, fmt.Errorf("devices: clone policy %q: want %q or %q", o.ClonePolicy, CloneRefuse, CloneReplace)
	}
	return &Service{o: o, live: map[string]map[string]time.Time{}, lastSeen: map[string]seen{}, revoked: map[string]int{}}, nil
}

// SetDisconnector registers what closes live sessions (the broker).
func (s *Service) SetDisconnector(d Disconnector) {
	s.mu.Lock()
	s.disc = d
	s.mu.Unlock()
}

func (s *Service) disconnect(deviceID, remote, reason string) {
	s.mu.Lock()
	d := s.disc
	s.mu.Unlock()
	if d != nil {
		d.Disconnect(deviceID, remote, reason)
	}
}

// record journals an event; a failure is logged loudly.
func (s *Service) record(ctx context.Context, e journal.Event) {
	if err := s.o.Journal.Record(ctx, e); err != nil {
		s.o.Logger.Error("journal write failed", "action", e.Action, "err", err)
	}
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func (s *Service) newID(prefix string) (string, error) {
	b := make([]byte, idBytes)
	if _, err := io.ReadFull(s.o.Rand, b); err != nil {
		return "", fmt.Errorf("reading randomness for id: %w", err)
	}
	return prefix + "_" + strings.ToLower(idEncoding.EncodeToString(b)), nil
}

// newToken returns prefix + n random bytes in lowercase base32.
func (s *Service) newToken(prefix string, n int) (secrets.Text, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.o.Rand, b); err != nil {
		return "", fmt.Errorf("reading randomness for token: %w", err)
	}
	return secrets.Text(prefix + strings.ToLower(idEncoding.EncodeToString(b))), nil
}

// hashToken is the stored form of a high-entropy token: SHA-256 with a
// domain prefix (a salt adds nothing to 128+ random bits).
func hashToken(kind, token string) []byte {
	sum := sha256.Sum256([]byte("rampart/" + kind + "/v1\x00" + token))
	return sum[:]
}

// hashSecret is the stored form of a device's MQTT secret, salted with the
// device ID so equal secrets on two devices never hash alike.
func hashSecret(deviceID, secret string) []byte {
	sum := sha256.Sum256([]byte("rampart/device-secret/v1\x00" + deviceID + "\x00" + secret))
	return sum[:]
}

func notFound(what string) *api.Error { return api.Errorf(api.CodeNotFound, "no such %s", what) }

func checkLabel(field, v string, max int, required bool) error {
	if required && strings.TrimSpace(v) == "" {
		return api.Errorf(api.CodeInvalid, "%s is required", field)
	}
	if len(v) > max || !utf8.ValidString(v) {
		return api.Errorf(api.CodeInvalid, "%s must be at most %d bytes of UTF-8", field, max)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return api.Errorf(api.CodeInvalid, "%s must not contain control characters", field)
		}
	}
	return nil
}

// CreateRequest describes a new device.
type CreateRequest struct {
	Name       string
	Model      string
	Credential Method // MethodToken (default) or MethodSecret
}

// Created is a new device and the one credential shown once to its creator.
type Created struct {
	Device Device
	Token  secrets.Text // enrollment token (MethodToken)
	Secret secrets.Text // MQTT password (MethodSecret); username is the device ID
	Expiry time.Time    // of the token
}

// Create registers a pending device in tenantID and returns its single-use
// enrollment token (or, for devices that cannot do X.509, its initial
// secret, which must be rotated before anything else).
func (s *Service) Create(ctx context.Context, tenantID, actor string, req CreateRequest) (Created, error) {
	if err := checkLabel("name", req.Name, maxNameLen, true); err != nil {
		return Created{}, err
	}
	if err := checkLabel("model", req.Model, maxModelLen, false); err != nil {
		return Created{}, err
	}
	if req.Credential == "" {
		req.Credential = MethodToken
	}
	if req.Credential != MethodToken && req.Credential != MethodSecret {
		return Created{}, api.Errorf(api.CodeInvalid, "credential must be %q (X.509 enrollment) or %q (MQTT username and password)", MethodToken, MethodSecret)
	}
	id, err := s.newID("dev")
	if err != nil {
		return Created{}, err
	}
	now := s.o.Now()
	d := Device{ID: id, TenantID: tenantID, Name: req.Name, Model: req.Model, Status: StatusPending, Method: req.Credential,
		CreatedAt: now, UpdatedAt: now}
	out := Created{}
	var tok *Token
	switch req.Credential {
	case MethodToken:
		t, err := s.newToken(enrollTokenPrefix, tokenBytes)
		if err != nil {
			return Created{}, err
		}
		out.Token, out.Expiry = t, now.Add(s.o.TokenTTL)
		tok = &Token{Hash: hashToken("enroll", t.Reveal()), DeviceID: id, TenantID: tenantID, ExpiresAt: out.Expiry, CreatedAt: now}
	case MethodSecret:
		sec, err := s.newToken(secretPrefix, secretBytes)
		if err != nil {
			return Created{}, err
		}
		out.Secret = sec
		d.SecretHash, d.MustRotate = hashSecret(id, sec.Reveal()), true
	}
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		if err := tx.PutDevice(d); err != nil {
			return err
		}
		if tok != nil {
			return tx.PutToken(*tok)
		}
		return nil
	})
	if err != nil {
		return Created{}, fmt.Errorf("creating device: %w", err)
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "device.created", Target: id, Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"credential": string(req.Credential), "model": req.Model}})
	out.Device = d
	return out, nil
}

// NewEnrollmentToken replaces a pending device's enrollment token (the old
// one stops working) and returns the new one, shown once.
func (s *Service) NewEnrollmentToken(ctx context.Context, tenantID, actor, id string) (secrets.Text, time.Time, error) {
	t, err := s.newToken(enrollTokenPrefix, tokenBytes)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.o.Now()
	exp := now.Add(s.o.TokenTTL)
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		d, err := tx.Device(id)
		if err != nil || d.TenantID != tenantID {
			return notFound("device")
		}
		if d.Status != StatusPending || d.Method != MethodToken {
			return api.Errorf(api.CodeConflict, "device %s is %s; only a pending token-enrolled device gets a new enrollment token", id, d.Status)
		}
		if err := tx.DeleteTokens(id); err != nil {
			return err
		}
		return tx.PutToken(Token{Hash: hashToken("enroll", t.Reveal()), DeviceID: id, TenantID: tenantID, ExpiresAt: exp, CreatedAt: now})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "device.token_created", Target: id, Outcome: journal.OutcomeSuccess})
	return t, exp, nil
}

// Get returns a device of tenantID. Another tenant's device is not found,
// exactly like a missing one.
func (s *Service) Get(ctx context.Context, tenantID, id string) (Device, error) {
	var d Device
	err := s.o.Store.View(ctx, func(tx Tx) error {
		var err error
		d, err = tx.Device(id)
		if err != nil || d.TenantID != tenantID {
			return notFound("device")
		}
		return nil
	})
	return d, err
}

// TenantOf returns the tenant a device belongs to, for transports that
// must keep tenants apart (the broker's delivery check). It is not an
// authorization: callers compare the answer with their client's tenant.
func (s *Service) TenantOf(ctx context.Context, id string) (string, error) {
	var tenant string
	err := s.o.Store.View(ctx, func(tx Tx) error {
		d, err := tx.Device(id)
		if err != nil {
			return notFound("device")
		}
		tenant = d.TenantID
		return nil
	})
	return tenant, err
}

// List returns tenantID's devices, newest first, at most maxListed.
func (s *Service) List(ctx context.Context, tenantID string) ([]Device, error) {
	var out []Device
	err := s.o.Store.View(ctx, func(tx Tx) error {
		var err error
		out, err = tx.Devices(tenantID, maxListed)
		return err
	})
	return out, err
}

// transitions lists, for each status an operator can set, the statuses it
// can be set from.
var transitions = map[Status][]Status{
	StatusSuspended:   {StatusActive, StatusQuarantined},
	StatusQuarantined: {StatusActive, StatusSuspended},
	StatusActive:      {StatusSuspended, StatusQuarantined},
}

// SetStatus suspends, quarantines or reactivates a device. Suspension and
// quarantine close its live sessions at once.
func (s *Service) SetStatus(ctx context.Context, tenantID, actor, id string, to Status) (Device, error) {
	var d Device
	err := s.o.Store.Update(ctx, func(tx Tx) error {
		var err error
		d, err = tx.Device(id)
		if err != nil || d.TenantID != tenantID {
			return notFound("device")
		}
		ok := false
		for _, from := range transitions[to] {
			ok = ok || from == d.Status
		}
		if !ok {
			return api.Errorf(api.CodeConflict, "device %s is %s; it cannot become %s", id, d.Status, to)
		}
		d.Status, d.UpdatedAt = to, s.o.Now()
		return tx.PutDevice(d)
	})
	if err != nil {
		return Device{}, err
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "device." + string(to), Target: id, Outcome: journal.OutcomeSuccess})
	if to != StatusActive {
		s.disconnect(id, "", string(to))
	}
	return d, nil
}

// Revoke withdraws a device's identity for good: every certificate of it is
// revoked, its tokens and secret are deleted, the next handshake is refused
// and its live sessions are closed.
func (s *Service) Revoke(ctx context.Context, tenantID, actor, id, reason string) (Device, error) {
	return s.retire(ctx, tenantID, actor, id, StatusRevoked, reason)
}

// Decommission retires a device: like Revoke, and its factory identity is
// released so the hardware can be enrolled again (resale, refurbishment).
func (s *Service) Decommission(ctx context.Context, tenantID, actor, id string) (Device, error) {
	return s.retire(ctx, tenantID, actor, id, StatusDecommissioned, "decommissioned")
}

func (s *Service) retire(ctx context.Context, tenantID, actor, id string, to Status, reason string) (Device, error) {
	if err := checkLabel("reason", reason, maxNameLen, false); err != nil {
		return Device{}, err
	}
	var d Device
	var serials []string
	err := s.o.Store.Update(ctx, func(tx Tx) error {
		var err error
		d, err = tx.Device(id)
		if err != nil || d.TenantID != tenantID {
			return notFound("device")
		}
		if d.Status == StatusDecommissioned || (d.Status == StatusRevoked && to == StatusRevoked) {
			return api.Errorf(api.CodeConflict, "device %s is already %s", id, d.Status)
		}
		now := s.o.Now()
		certs, err := tx.Certs(id)
		if err != nil {
			return err
		}
		for _, c := range certs {
			if c.Status != CertRevoked && c.NotAfter.After(now) { // expired ones are dead already
				c.Status, c.ChangedAt = CertRevoked, now
				if err := tx.PutCert(c); err != nil {
					return err
				}
				serials = append(serials, c.Serial)
			}
		}
		if err := tx.DeleteTokens(id); err != nil {
			return err
		}
		if to == StatusDecommissioned && d.FactoryKey != "" {
			if err := tx.DeleteFactoryIdentity(d.FactoryKey); err != nil {
				return err
			}
			d.FactoryKey = ""
		}
		d.Status, d.SecretHash, d.MustRotate, d.UpdatedAt = to, nil, false, now
		return tx.PutDevice(d)
	})
	if err != nil {
		return Device{}, err
	}
	s.invalidateCRL()
	s.disconnect(id, "", string(to))
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "device." + string(to), Target: id, Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"reason": reason, "certificates_revoked": fmt.Sprint(len(serials)), "serials": joinCapped(serials)}})
	return d, nil
}

// Certificates lists a device's certificates.
func (s *Service) Certificates(ctx context.Context, tenantID, id string) ([]Cert, error) {
	var out []Cert
	err := s.o.Store.View(ctx, func(tx Tx) error {
		d, err := tx.Device(id)
		if err != nil || d.TenantID != tenantID {
			return notFound("device")
		}
		out, err = tx.Certs(id)
		return err
	})
	return out, err
}

// CRL returns the signed CRL of the device intermediate (DER). It is cached
// until a revocation or for a minute.
func (s *Service) CRL(ctx context.Context) ([]byte, error) {
	now := s.o.Now()
	s.crlMu.Lock()
	defer s.crlMu.Unlock()
	if s.crl != nil && now.Before(s.crlUntil) {
		return s.crl, nil
	}
	var revoked []pki.Revoked
	err := s.o.Store.View(ctx, func(tx Tx) error {
		certs, err := tx.RevokedCerts(now)
		for _, c := range certs {
			revoked = append(revoked, pki.Revoked{Serial: c.Serial, RevokedAt: c.ChangedAt})
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	der, err := s.o.CA.CRL(revoked, now)
	if err != nil {
		return nil, err
	}
	s.crl, s.crlUntil = der, now.Add(time.Minute)
	return der, nil
}

func (s *Service) invalidateCRL() {
	s.crlMu.Lock()
	s.crl = nil
	s.crlMu.Unlock()
}

// Findings lists tenantID's findings, newest first.
func (s *Service) Findings(ctx context.Context, tenantID string) ([]Finding, error) {
	var out []Finding
	err := s.o.Store.View(ctx, func(tx Tx) error {
		var err error
		out, err = tx.Findings(tenantID, maxListed)
		return err
	})
	return out, err
}

// raise stores a finding and journals it.
func (s *Service) raise(ctx context.Context, f Finding) {
	id, err := s.newID("fnd")
	if err != nil {
		s.o.Logger.Error("raising finding", "err", err)
		return
	}
	f.ID, f.CreatedAt = id, s.o.Now()
	if err := s.o.Store.Update(ctx, func(tx Tx) error { return tx.PutFinding(f) }); err != nil {
		s.o.Logger.Error("storing finding", "kind", f.Kind, "err", err)
	}
	s.o.Logger.Warn("device finding", "kind", f.Kind, "device", f.DeviceID, "detail", f.Detail)
	s.record(ctx, journal.Event{Actor: "system", Tenant: f.TenantID, Action: "finding.raised", Target: f.DeviceID, Outcome: journal.OutcomeDenied,
		Detail: map[string]string{"finding": f.ID, "kind": f.Kind, "detail": f.Detail}})
}

// ApproveReprovision resolves a possible-clone finding by allowing its
// factory identity to enroll once more (a board swap, a factory reset): the
// next attested enrollment re-provisions the same device with a new key and
// revokes its old certificates.
func (s *Service) ApproveReprovision(ctx context.Context, tenantID, actor, findingID string) (Finding, error) {
	var f Finding
	err := s.o.Store.Update(ctx, func(tx Tx) error {
		var err error
		f, err = tx.Finding(findingID)
		if err != nil || f.TenantID != tenantID {
			return notFound("finding")
		}
		if f.Kind != FindingPossibleClone || f.FactoryKey == "" {
			return api.Errorf(api.CodeConflict, "only a %s finding can approve a re-provision", FindingPossibleClone)
		}
		fi, err := tx.FactoryIdentity(f.FactoryKey)
		if err != nil {
			return api.Errorf(api.CodeConflict, "the factory identity of this finding is no longer enrolled")
		}
		fi.Reprovision = true
		if err := tx.PutFactoryIdentity(fi); err != nil {
			return err
		}
		f.Resolved = true
		return tx.PutFinding(f)
	})
	if err != nil {
		return Finding{}, err
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "finding.reprovision_approved", Target: f.DeviceID, Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"finding": f.ID}})
	return f, nil
}

// ResolveFinding marks a finding looked at.
func (s *Service) ResolveFinding(ctx context.Context, tenantID, actor, findingID string) (Finding, error) {
	var f Finding
	err := s.o.Store.Update(ctx, func(tx Tx) error {
		var err error
		f, err = tx.Finding(findingID)
		if err != nil || f.TenantID != tenantID {
			return notFound("finding")
		}
		f.Resolved = true
		return tx.PutFinding(f)
	})
	if err != nil {
		return Finding{}, err
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "finding.resolved", Target: f.DeviceID, Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"finding": f.ID}})
	return f, nil
}

func fingerprintHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// joinCapped joins serials for a journal detail, within its size limit.
func joinCapped(serials []string) string {
	out := strings.Join(serials, ",")
	if len(out) > maxJournalList {
		out = out[:maxJournalList] + "..."
	}
	return out
}
