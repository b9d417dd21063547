package devices

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/pki"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// Enrolled is the result of an enrollment or renewal.
type Enrolled struct {
	Device Device
	Cert   pki.DeviceCert
}

// parseCSR maps pki's CSR errors to caller-facing ones.
func parseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	csr, err := pki.ParseCSR(csrPEM)
	switch {
	case err == nil:
		return csr, nil
	case errors.Is(err, pki.ErrKeyNotAllowed):
		return nil, api.Errorf(api.CodeInvalid, "%v", err)
	default:
		return nil, api.Errorf(api.CodeInvalid, "csr: %v", err)
	}
}

// refuse journals a refused enrollment or renewal and returns err.
func (s *Service) refuse(ctx context.Context, action, tenant, target, source string, err error) error {
	s.record(ctx, journal.Event{Actor: "device@" + source, Tenant: tenant, Action: action, Target: target, Outcome: journal.OutcomeDenied,
		Detail: map[string]string{"reason": api.ErrorMessage(err)}})
	return err
}

// issueInTx signs a certificate for d over pub and stores it as d's current
// certificate, superseding the previous one.
func (s *Service) issueInTx(tx Tx, d *Device, csr *x509.CertificateRequest, now time.Time) (pki.DeviceCert, error) {
	dc, err := s.o.CA.Issue(d.ID, csr.PublicKey, now, s.o.CertLifetime)
	if err != nil {
		return pki.DeviceCert{}, err
	}
	if d.CertSerial != "" {
		if old, err := tx.Cert(d.CertSerial); err == nil && old.Status == CertActive {
			old.Status, old.ChangedAt = CertSuperseded, now
			if err := tx.PutCert(old); err != nil {
				return pki.DeviceCert{}, err
			}
		}
	}
	if err := tx.PutCert(Cert{Serial: dc.Serial, DeviceID: d.ID, TenantID: d.TenantID, Fingerprint: dc.Fingerprint,
		NotBefore: dc.Cert.NotBefore, NotAfter: dc.Cert.NotAfter, Status: CertActive, ChangedAt: now}); err != nil {
		return pki.DeviceCert{}, err
	}
	d.CertSerial, d.CertNotAfter, d.UpdatedAt = dc.Serial, dc.Cert.NotAfter, now
	return dc, tx.PutDevice(*d)
}

func (s *Service) issued(ctx context.Context, action, source string, d Device, dc pki.DeviceCert, extra map[string]string) {
	detail := map[string]string{"serial": dc.Serial, "not_after": dc.Cert.NotAfter.UTC().Format(time.RFC3339), "source": source, "method": string(d.Method)}
	for k, v := range extra {
		detail[k] = v
	}
	s.record(ctx, journal.Event{Actor: "device@" + source, Tenant: d.TenantID, Action: action, Target: d.ID, Outcome: journal.OutcomeSuccess, Detail: detail})
}

// EnrollToken exchanges a device's single-use enrollment token and a CSR
// for its certificate. The certificate names the token's device, whatever
// the CSR says.
func (s *Service) EnrollToken(ctx context.Context, token secrets.Text, csrPEM []byte, source string) (Enrolled, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "device.enroll_refused", "", "", source, err)
	}
	if !strings.HasPrefix(token.Reveal(), enrollTokenPrefix) || len(token.Reveal()) > maxSecretLen {
		return Enrolled{}, s.refuse(ctx, "device.enroll_refused", "", "", source, api.Errorf(api.CodeUnauthenticated, "enrollment token is unknown or already used"))
	}
	hash := hashToken("enroll", token.Reveal())
	now := s.o.Now()
	var out Enrolled
	var tenant, target string
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		t, err := tx.Token(hash)
		if err != nil {
			return api.Errorf(api.CodeUnauthenticated, "enrollment token is unknown or already used")
		}
		tenant, target = t.TenantID, t.DeviceID
		if !now.Before(t.ExpiresAt) {
			return api.Errorf(api.CodeExpired, "enrollment token expired at %s; ask for a new one (POST /api/v1/devices/%s/token)", t.ExpiresAt.UTC().Format(time.RFC3339), t.DeviceID)
		}
		d, err := tx.Device(t.DeviceID)
		if err != nil || d.Status != StatusPending {
			return api.Errorf(api.CodeUnauthenticated, "enrollment token is unknown or already used")
		}
		if err := tx.DeleteTokens(d.ID); err != nil { // single use
			return err
		}
		d.Status = StatusActive
		dc, err := s.issueInTx(tx, &d, csr, now)
		out = Enrolled{Device: d, Cert: dc}
		return err
	})
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "device.enroll_refused", tenant, target, source, err)
	}
	s.issued(ctx, "device.enrolled", source, out.Device, out.Cert, nil)
	return out, nil
}

// ClaimSpec describes a new claim.
type ClaimSpec struct {
	Name    string
	Model   string
	MaxUses int
	TTL     time.Duration
	Serials []string
}

// CreateClaim creates a batch claim and returns its token, shown once.
func (s *Service) CreateClaim(ctx context.Context, tenantID, actor string, spec ClaimSpec) (Claim, secrets.Text, error) {
	if err := checkLabel("name", spec.Name, maxNameLen, true); err != nil {
		return Claim{}, "", err
	}
	if err := checkLabel("model", spec.Model, maxModelLen, false); err != nil {
		return Claim{}, "", err
	}
	if spec.MaxUses < 1 || spec.MaxUses > maxClaimUses {
		return Claim{}, "", api.Errorf(api.CodeInvalid, "max_uses must be 1 to %d", maxClaimUses)
	}
	if spec.TTL <= 0 || spec.TTL > maxClaimTTL {
		return Claim{}, "", api.Errorf(api.CodeInvalid, "ttl must be more than 0 and at most %s (write it like 72h)", maxClaimTTL)
	}
	if len(spec.Serials) > maxClaimSerials {
		return Claim{}, "", api.Errorf(api.CodeInvalid, "at most %d serial numbers per claim", maxClaimSerials)
	}
	serials := make([]string, 0, len(spec.Serials))
	for _, sn := range spec.Serials {
		if err := checkLabel("serial number", sn, maxSerialLen, true); err != nil {
			return Claim{}, "", err
		}
		if !slices.Contains(serials, sn) {
			serials = append(serials, sn)
		}
	}
	id, err := s.newID("clm")
	if err != nil {
		return Claim{}, "", err
	}
	tok, err := s.newToken(claimTokenPrefix, tokenBytes)
	if err != nil {
		return Claim{}, "", err
	}
	now := s.o.Now()
	c := Claim{ID: id, TenantID: tenantID, Name: spec.Name, Model: spec.Model, Hash: hashToken("claim", tok.Reveal()),
		MaxUses: spec.MaxUses, Serials: serials, ExpiresAt: now.Add(spec.TTL), CreatedAt: now}
	if err := s.o.Store.Update(ctx, func(tx Tx) error { return tx.PutClaim(c) }); err != nil {
		return Claim{}, "", fmt.Errorf("creating claim: %w", err)
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "claim.created", Target: id, Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"max_uses": fmt.Sprint(spec.MaxUses), "expires_at": c.ExpiresAt.UTC().Format(time.RFC3339), "serials": fmt.Sprint(len(serials))}})
	return c, tok, nil
}

// Claims lists tenantID's claims.
func (s *Service) Claims(ctx context.Context, tenantID string) ([]Claim, error) {
	var out []Claim
	err := s.o.Store.View(ctx, func(tx Tx) error {
		var err error
		out, err = tx.Claims(tenantID, maxListed)
		return err
	})
	return out, err
}

// RevokeClaim stops a claim from enrolling more devices. Devices it already
// enrolled keep their own identities.
func (s *Service) RevokeClaim(ctx context.Context, tenantID, actor, id string) (Claim, error) {
	var c Claim
	err := s.o.Store.Update(ctx, func(tx Tx) error {
		var err error
		c, err = tx.Claim(id)
		if err != nil || c.TenantID != tenantID {
			return notFound("claim")
		}
		c.Revoked = true
		return tx.PutClaim(c)
	})
	if err != nil {
		return Claim{}, err
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "claim.revoked", Target: id, Outcome: journal.OutcomeSuccess})
	return c, nil
}

// EnrollClaim exchanges a claim and a CSR for a new, unique device
// identity. Each use is journaled; the claim's limits are checked and its
// use counted in the same transaction that creates the device.
func (s *Service) EnrollClaim(ctx context.Context, claimToken secrets.Text, csrPEM []byte, serial, name, source string) (Enrolled, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "claim.use_refused", "", "", source, err)
	}
	bad := api.Errorf(api.CodeUnauthenticated, "claim is unknown or revoked")
	if !strings.HasPrefix(claimToken.Reveal(), claimTokenPrefix) || len(claimToken.Reveal()) > maxSecretLen {
		return Enrolled{}, s.refuse(ctx, "claim.use_refused", "", "", source, bad)
	}
	if serial != "" {
		if err := checkLabel("serial_number", serial, maxSerialLen, false); err != nil {
			return Enrolled{}, s.refuse(ctx, "claim.use_refused", "", "", source, err)
		}
	}
	if err := checkLabel("name", name, maxNameLen, false); err != nil {
		return Enrolled{}, s.refuse(ctx, "claim.use_refused", "", "", source, err)
	}
	id, err := s.newID("dev")
	if err != nil {
		return Enrolled{}, err
	}
	hash := hashToken("claim", claimToken.Reveal())
	now := s.o.Now()
	var out Enrolled
	var c Claim
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		var err error
		c, err = tx.ClaimByHash(hash)
		if err != nil || c.Revoked {
			return bad
		}
		if !now.Before(c.ExpiresAt) {
			return api.Errorf(api.CodeExpired, "claim %s expired at %s", c.ID, c.ExpiresAt.UTC().Format(time.RFC3339))
		}
		if c.Uses >= c.MaxUses {
			return api.Errorf(api.CodeForbidden, "claim %s has been used %d times, its limit", c.ID, c.MaxUses)
		}
		if len(c.Serials) > 0 {
			if serial == "" {
				return api.Errorf(api.CodeInvalid, "this claim has a serial-number allow-list: send serial_number")
			}
			if !slices.Contains(c.Serials, serial) {
				return api.Errorf(api.CodeForbidden, "serial number %q is not on claim %s's allow-list", serial, c.ID)
			}
		}
		if serial != "" {
			if err := tx.AddClaimSerial(c.ID, serial, id); errors.Is(err, ErrDuplicate) {
				return api.Errorf(api.CodeConflict, "serial number %q already enrolled under claim %s", serial, c.ID)
			} else if err != nil {
				return err
			}
		}
		c.Uses++
		if err := tx.PutClaim(c); err != nil {
			return err
		}
		if name == "" {
			name = c.Name
			if serial != "" {
				name += " " + serial
			}
		}
		d := Device{ID: id, TenantID: c.TenantID, Name: name, Model: c.Model, Status: StatusActive, Method: MethodClaim,
			SerialNumber: serial, ClaimID: c.ID, CreatedAt: now, UpdatedAt: now}
		dc, err := s.issueInTx(tx, &d, csr, now)
		out = Enrolled{Device: d, Cert: dc}
		return err
	})
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "claim.use_refused", c.TenantID, c.ID, source, err)
	}
	s.record(ctx, journal.Event{Actor: "device@" + source, Tenant: c.TenantID, Action: "claim.used", Target: c.ID, Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"device": id, "use": fmt.Sprint(c.Uses), "max_uses": fmt.Sprint(c.MaxUses), "serial_number": serial}})
	s.issued(ctx, "device.enrolled", source, out.Device, out.Cert, map[string]string{"claim": c.ID})
	return out, nil
}

// RegisterManufacturer registers a manufacturer CA (PEM, one or more CA
// certificates) whose factory certificates may enroll devices of model.
func (s *Service) RegisterManufacturer(ctx context.Context, tenantID, actor, name, model string, caPEM []byte) (Manufacturer, error) {
	if err := checkLabel("name", name, maxNameLen, true); err != nil {
		return Manufacturer{}, err
	}
	if err := checkLabel("model", model, maxModelLen, true); err != nil {
		return Manufacturer{}, err
	}
	certs, err := pki.ParseCertsPEM(caPEM)
	if err != nil {
		return Manufacturer{}, api.Errorf(api.CodeInvalid, "ca_pem: %v", err)
	}
	m := Manufacturer{TenantID: tenantID, Name: name, Model: model, CreatedAt: s.o.Now()}
	for _, c := range certs {
		if !c.BasicConstraintsValid || !c.IsCA {
			return Manufacturer{}, api.Errorf(api.CodeInvalid, "ca_pem: %q is not a CA certificate", c.Subject.String())
		}
		m.CAs = append(m.CAs, c.Raw)
	}
	if m.ID, err = s.newID("mfr"); err != nil {
		return Manufacturer{}, err
	}
	if err := s.o.Store.Update(ctx, func(tx Tx) error { return tx.PutManufacturer(m) }); err != nil {
		return Manufacturer{}, fmt.Errorf("registering manufacturer: %w", err)
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "manufacturer.registered", Target: m.ID, Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"model": model, "ca": fingerprintHex(m.CAs[0])}})
	return m, nil
}

// Manufacturers lists tenantID's registered manufacturer CAs.
func (s *Service) Manufacturers(ctx context.Context, tenantID string) ([]Manufacturer, error) {
	var out []Manufacturer
	err := s.o.Store.View(ctx, func(tx Tx) error {
		var err error
		out, err = tx.Manufacturers(tenantID)
		return err
	})
	return out, err
}

// FactoryKey identifies a factory certificate's identity whatever its key:
// its issuer and subject. Two certificates with the same key are one
// identity; so are two keys certified under the same name.
func FactoryKey(c *x509.Certificate) string {
	h := sha256.New()
	h.Write([]byte("rampart/factory-identity/v1\x00"))
	h.Write(c.RawIssuer)
	h.Write([]byte{0})
	h.Write(c.RawSubject)
	return hex.EncodeToString(h.Sum(nil))
}

// noExpiry is IEEE 802.1AR's "no well-defined expiration" NotAfter.
var noExpiry = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// verifyFactory finds the registration whose CA issued the factory
// certificate chain. The chain must verify at the factory certificate's
// issue time (the CA was valid when it signed), the factory certificate
// must not have expired since, and its model (subject OU) must match.
func verifyFactory(chain []*x509.Certificate, regs []Manufacturer, now time.Time) (Manufacturer, error) {
	unauth := func(msg string, a ...any) error {
		return api.Errorf(api.CodeUnauthenticated, "factory certificate: "+msg, a...)
	}
	if len(chain) == 0 {
		return Manufacturer{}, unauth("none presented; connect with the device's factory certificate (mutual TLS)")
	}
	leaf := chain[0]
	if leaf.NotAfter.Before(now) && !leaf.NotAfter.Equal(noExpiry) {
		return Manufacturer{}, unauth("expired at %s", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if leaf.NotBefore.After(now) {
		return Manufacturer{}, unauth("not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if leaf.IsCA {
		return Manufacturer{}, unauth("is a CA certificate")
	}
	if bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		return Manufacturer{}, unauth("is self-signed; it must be issued by a registered manufacturer CA")
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	model := ""
	if len(leaf.Subject.OrganizationalUnit) > 0 {
		model = leaf.Subject.OrganizationalUnit[0]
	}
	var modelMismatch bool
	for _, m := range regs {
		roots := x509.NewCertPool()
		for _, der := range m.CAs {
			c, err := x509.ParseCertificate(der)
			if err == nil {
				roots.AddCert(c)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: leaf.NotBefore.Add(time.Second),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			continue
		}
		if model != m.Model {
			modelMismatch = true
			continue
		}
		return m, nil
	}
	if modelMismatch {
		return Manufacturer{}, unauth("model %q (subject OU) is not the model its manufacturer CA is registered for", model)
	}
	return Manufacturer{}, unauth("not issued by a registered manufacturer CA")
}

// EnrollAttested enrolls a device that proved, over mutual TLS, that it
// holds a factory certificate's key. The factory identity may enroll once;
// a second attempt is refused and raises a possible-clone finding unless an
// admin approved a re-provision.
func (s *Service) EnrollAttested(ctx context.Context, factoryChain []*x509.Certificate, csrPEM []byte, name, source string) (Enrolled, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "device.attest_refused", "", "", source, err)
	}
	if err := checkLabel("name", name, maxNameLen, false); err != nil {
		return Enrolled{}, s.refuse(ctx, "device.attest_refused", "", "", source, err)
	}
	now := s.o.Now()
	var regs []Manufacturer
	if err := s.o.Store.View(ctx, func(tx Tx) error {
		var err error
		regs, err = tx.Manufacturers("")
		return err
	}); err != nil {
		return Enrolled{}, err
	}
	m, err := verifyFactory(factoryChain, regs, now)
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "device.attest_refused", "", "", source, err)
	}
	leaf := factoryChain[0]
	key := FactoryKey(leaf)
	fp := pki.Fingerprint(leaf)
	newID, err := s.newID("dev")
	if err != nil {
		return Enrolled{}, err
	}
	var out Enrolled
	var clone *Finding
	var reprovisioned []string
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		fi, err := tx.FactoryIdentity(key)
		var d Device
		switch {
		case errors.Is(err, ErrNotFound):
			if name == "" {
				name = m.Name + " " + leaf.Subject.SerialNumber
			}
			d = Device{ID: newID, TenantID: m.TenantID, Name: strings.TrimSpace(name), Model: m.Model, Status: StatusActive, Method: MethodAttestation,
				SerialNumber: leaf.Subject.SerialNumber, FactoryKey: key, CreatedAt: now}
			if err := tx.PutFactoryIdentity(FactoryIdentity{Key: key, TenantID: m.TenantID, DeviceID: newID, Fingerprint: fp, CreatedAt: now}); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Reprovision && fi.TenantID == m.TenantID:
			d, err = tx.Device(fi.DeviceID)
			if err != nil {
				return err
			}
			if d.Status == StatusRevoked || d.Status == StatusDecommissioned {
				return api.Errorf(api.CodeConflict, "device %s is %s; it cannot be re-provisioned", d.ID, d.Status)
			}
			certs, err := tx.Certs(d.ID)
			if err != nil {
				return err
			}
			for _, c := range certs {
				if c.Status != CertRevoked && c.NotAfter.After(now) {
					c.Status, c.ChangedAt = CertRevoked, now
					if err := tx.PutCert(c); err != nil {
						return err
					}
					reprovisioned = append(reprovisioned, c.Serial)
				}
			}
			d.CertSerial = ""
			fi.Reprovision, fi.Fingerprint = false, fp
			if err := tx.PutFactoryIdentity(fi); err != nil {
				return err
			}
		default:
			clone = &Finding{TenantID: fi.TenantID, DeviceID: fi.DeviceID, Kind: FindingPossibleClone, FactoryKey: key,
				Detail: fmt.Sprintf("factory identity %q (serial %q) enrolled again from %s; factory certificate %s (first enrolled with %s)",
					leaf.Subject.CommonName, leaf.Subject.SerialNumber, source, fp[:16], fi.Fingerprint[:min(16, len(fi.Fingerprint))])}
			return api.Errorf(api.CodeConflict, "this factory identity is already enrolled; an admin must approve a re-provision")
		}
		dc, err := s.issueInTx(tx, &d, csr, now)
		out = Enrolled{Device: d, Cert: dc}
		return err
	})
	if clone != nil {
		s.raise(ctx, *clone)
	}
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "device.attest_refused", m.TenantID, key[:16], source, err)
	}
	if len(reprovisioned) > 0 {
		s.invalidateCRL()
		s.disconnect(out.Device.ID, "", "reprovisioned")
	}
	s.issued(ctx, "device.enrolled", source, out.Device, out.Cert, map[string]string{"manufacturer": m.ID, "factory_identity": key[:16],
		"factory_certificate": fp, "revoked": joinCapped(reprovisioned)})
	return out, nil
}

// Renew issues a new certificate to a device that presents its current one
// over mutual TLS with a CSR for its (new) key.
func (s *Service) Renew(ctx context.Context, peer []*x509.Certificate, csrPEM []byte, source string) (Enrolled, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "device.renew_refused", "", "", source, err)
	}
	if len(peer) == 0 {
		return Enrolled{}, s.refuse(ctx, "device.renew_refused", "", "", source,
			api.Errorf(api.CodeUnauthenticated, "renewal needs the device's current certificate (mutual TLS)"))
	}
	now := s.o.Now()
	d, err := s.authorizeCert(ctx, peer[0], now)
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "device.renew_refused", d.TenantID, d.ID, source, err)
	}
	var out Enrolled
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		cur, err := tx.Device(d.ID)
		if err != nil {
			return err
		}
		if cur.Status != StatusActive {
			return api.Errorf(api.CodeForbidden, "device is %s", cur.Status)
		}
		dc, err := s.issueInTx(tx, &cur, csr, now)
		out = Enrolled{Device: cur, Cert: dc}
		return err
	})
	if err != nil {
		return Enrolled{}, s.refuse(ctx, "device.renew_refused", d.TenantID, d.ID, source, err)
	}
	s.issued(ctx, "device.renewed", source, out.Device, out.Cert, map[string]string{"previous": d.CertSerial})
	return out, nil
}

// checkSecretShape refuses a secret that could not be one of ours.
func checkNewSecret(cur, next string) error {
	if len(next) < minDeviceSecretLen || len(next) > maxSecretLen {
		return api.Errorf(api.CodeInvalid, "new secret must be %d to %d characters (128 random bits or more)", minDeviceSecretLen, maxSecretLen)
	}
	for _, r := range next {
		if r <= 0x20 || r >= 0x7f {
			return api.Errorf(api.CodeInvalid, "new secret must be printable ASCII without spaces")
		}
	}
	if subtle.ConstantTimeCompare([]byte(cur), []byte(next)) == 1 {
		return api.Errorf(api.CodeInvalid, "new secret must differ from the current one")
	}
	return nil
}

// ValidateSecret authenticates a device that cannot do X.509: username is
// its device ID, password its secret. It returns the device; when
// MustRotate is set the caller allows nothing but RotateSecret. Claim tokens
// and enrollment tokens never pass here.
func (s *Service) ValidateSecret(ctx context.Context, username string, password secrets.Text) (Device, error) {
	bad := api.Errorf(api.CodeUnauthenticated, "unknown device or wrong secret")
	if !pki.ValidDeviceID(username) || len(password.Reveal()) > maxSecretLen {
		return Device{}, bad
	}
	var d Device
	err := s.o.Store.View(ctx, func(tx Tx) error {
		var err error
		d, err = tx.Device(username)
		return err
	})
	if err != nil || len(d.SecretHash) == 0 || d.Method != MethodSecret {
		return Device{}, bad
	}
	if subtle.ConstantTimeCompare(d.SecretHash, hashSecret(d.ID, password.Reveal())) != 1 {
		return Device{}, bad
	}
	switch {
	case d.Status == StatusActive:
	case d.Status == StatusPending && d.MustRotate:
	default:
		s.countRevoked(ctx, d)
		return d, api.Errorf(api.CodeForbidden, "device is %s", d.Status)
	}
	return d, nil
}

// RotateSecret replaces a secret device's secret with one it chose; the
// first rotation ends must_rotate and activates the device.
func (s *Service) RotateSecret(ctx context.Context, deviceID string, current, next secrets.Text, source string) (Device, error) {
	d, err := s.ValidateSecret(ctx, deviceID, current)
	if err != nil {
		return Device{}, s.refuse(ctx, "device.secret_rotate_refused", d.TenantID, deviceID, source, err)
	}
	if err := checkNewSecret(current.Reveal(), next.Reveal()); err != nil {
		return Device{}, s.refuse(ctx, "device.secret_rotate_refused", d.TenantID, deviceID, source, err)
	}
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		cur, err := tx.Device(deviceID)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(cur.SecretHash, d.SecretHash) != 1 {
			return api.Errorf(api.CodeConflict, "the secret changed meanwhile; authenticate with the new one")
		}
		cur.SecretHash, cur.MustRotate, cur.UpdatedAt = hashSecret(deviceID, next.Reveal()), false, s.o.Now()
		if cur.Status == StatusPending {
			cur.Status = StatusActive
		}
		d = cur
		return tx.PutDevice(cur)
	})
	if err != nil {
		return Device{}, s.refuse(ctx, "device.secret_rotate_refused", d.TenantID, deviceID, source, err)
	}
	s.record(ctx, journal.Event{Actor: "device@" + source, Tenant: d.TenantID, Action: "device.secret_rotated", Target: deviceID, Outcome: journal.OutcomeSuccess})
	return d, nil
}
