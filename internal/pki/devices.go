package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// Vault entries of the device intermediate.
const (
	vaultDeviceKey  = "pki/device-ca/key"
	vaultDeviceCert = "pki/device-ca/cert"
)

// DeviceURIPrefix starts the URI SAN that names a device in its certificate:
// urn:rampart:device:<id>.
const DeviceURIPrefix = "urn:rampart:device:"

// Errors of CSR and certificate checks. Callers test them with errors.Is.
var (
	// ErrBadCSR: not one PEM CSR, not parseable, or its signature (proof
	// of possession) does not verify.
	ErrBadCSR = errors.New("bad certificate signing request")
	// ErrKeyNotAllowed: the key is not P-256, P-384 or Ed25519.
	ErrKeyNotAllowed = errors.New("key type not allowed: use ECDSA P-256, ECDSA P-384 or Ed25519")
	// ErrNotDeviceCert: the certificate does not chain to the device
	// intermediate, is outside its validity, or names no device.
	ErrNotDeviceCert = errors.New("not a valid device certificate of this hub")
	// ErrBadPEM: input is not the PEM expected.
	ErrBadPEM = errors.New("bad PEM")
)

// DeviceCA is the intermediate, signed by the root, that issues device
// certificates. Its key is plaintext only in memory.
type DeviceCA struct {
	Cert *x509.Certificate
	Root *x509.Certificate
	key  crypto.Signer
	rand io.Reader
	pool *x509.CertPool
}

// LoadOrCreateDeviceCA loads the device intermediate from the vault, creating
// it under root on first run. An intermediate that nears its end is
// re-signed with the same key, so certificates already issued keep chaining.
// It reports whether a new key was made.
func LoadOrCreateDeviceCA(ctx context.Context, o Options, root *CA) (*DeviceCA, bool, error) {
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	now := o.Now()
	var signer crypto.Signer
	keyDER, err := o.Vault.Get(ctx, vaultDeviceKey)
	switch {
	case err == nil:
		k, perr := x509.ParsePKCS8PrivateKey(keyDER)
		if perr != nil {
			return nil, false, fmt.Errorf("loading device CA key: %w", perr)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, false, errors.New("device CA key is not a signer")
		}
		signer = s
		certDER, gerr := o.Vault.Get(ctx, vaultDeviceCert)
		if gerr == nil {
			cert, perr := x509.ParseCertificate(certDER)
			if perr == nil && cert.CheckSignatureFrom(root.Cert) == nil && publicEqual(signer.Public(), cert.PublicKey) &&
				now.Add(deviceCARenewBefore).Before(cert.NotAfter) {
				return newDeviceCA(cert, root.Cert, signer, o.Rand), false, nil
			}
		} else if !o.NotFound(gerr) {
			return nil, false, fmt.Errorf("loading device CA certificate: %w", gerr)
		}
	case o.NotFound(err):
	default:
		return nil, false, fmt.Errorf("loading device CA key: %w", err)
	}
	created := signer == nil
	if created {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, false, fmt.Errorf("generating device CA key: %w", err)
		}
		signer = k
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return nil, false, err
		}
		if err := o.Vault.Put(ctx, vaultDeviceKey, der); err != nil {
			return nil, false, fmt.Errorf("sealing device CA key: %w", err)
		}
	}
	cert, err := signDeviceCA(root, signer, now, o.Rand)
	if err != nil {
		return nil, false, err
	}
	if err := o.Vault.Put(ctx, vaultDeviceCert, cert.Raw); err != nil {
		return nil, false, fmt.Errorf("storing device CA certificate: %w", err)
	}
	return newDeviceCA(cert, root.Cert, signer, o.Rand), created, nil
}

func newDeviceCA(cert, root *x509.Certificate, key crypto.Signer, r io.Reader) *DeviceCA {
	p := x509.NewCertPool()
	p.AddCert(cert)
	return &DeviceCA{Cert: cert, Root: root, key: key, rand: r, pool: p}
}

func signDeviceCA(root *CA, key crypto.Signer, now time.Time, r io.Reader) (*x509.Certificate, error) {
	sn, err := serial(r)
	if err != nil {
		return nil, err
	}
	skid, err := keyID(key.Public())
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"Rampart"}, CommonName: fmt.Sprintf("Rampart Device CA %x", skid[:4])},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(deviceCALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
		AuthorityKeyId:        root.Cert.SubjectKeyId,
	}
	if tmpl.NotAfter.After(root.Cert.NotAfter) {
		tmpl.NotAfter = root.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(r, tmpl, root.Cert, key.Public(), root.key)
	if err != nil {
		return nil, fmt.Errorf("signing device CA certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// Pool holds only the device intermediate: what device certificates chain
// to. A listener that authenticates devices (the MQTT broker) uses it as its
// ClientCAs; the hub's server certificate, signed by the root, does not
// chain to it and so can never pass as a device.
func (d *DeviceCA) Pool() *x509.CertPool { return d.pool }

// ChainPEM is the device intermediate then the root, in PEM.
func (d *DeviceCA) ChainPEM() []byte {
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.Cert.Raw})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d.Root.Raw})...)
}

// ParseCSR reads one PEM certificate signing request, checks its signature
// (proof that the sender holds the private key) and that its key is one the
// hub issues for. Nothing else in the CSR is used: names come from the hub.
func ParseCSR(pemBytes []byte) (*x509.CertificateRequest, error) {
	if len(pemBytes) > maxCSRBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadCSR, maxCSRBytes)
	}
	block, rest := pem.Decode(pemBytes)
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fmt.Errorf("%w: want one PEM block of type CERTIFICATE REQUEST", ErrBadCSR)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w: data after the CSR", ErrBadCSR)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadCSR, err)
	}
	if err := CheckKey(csr.PublicKey); err != nil {
		return nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify (the CSR must be signed by the key it carries)", ErrBadCSR)
	}
	return csr, nil
}

// CheckKey accepts ECDSA P-256, ECDSA P-384 and Ed25519 public keys only.
func CheckKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() || k.Curve == elliptic.P384() {
			return nil
		}
		return fmt.Errorf("%w (got ECDSA %s)", ErrKeyNotAllowed, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("%w (got %T)", ErrKeyNotAllowed, pub)
	}
}

// DeviceCert is an issued device certificate.
type DeviceCert struct {
	Cert        *x509.Certificate
	Serial      string // hex
	Fingerprint string // hex SHA-256 of the DER
	ChainPEM    []byte // leaf, device intermediate, root
}

// Issue signs a certificate for deviceID over pub, valid from now for
// lifetime. The subject (CN) and the URI SAN come from deviceID only.
func (d *DeviceCA) Issue(deviceID string, pub crypto.PublicKey, now time.Time, lifetime time.Duration) (DeviceCert, error) {
	if err := CheckKey(pub); err != nil {
		return DeviceCert{}, err
	}
	if !ValidDeviceID(deviceID) {
		return DeviceCert{}, fmt.Errorf("device id %q is not valid", deviceID)
	}
	if lifetime <= 0 || lifetime > maxDeviceCertLifetime {
		return DeviceCert{}, fmt.Errorf("device certificate lifetime %s is outside (0, %s]", lifetime, maxDeviceCertLifetime)
	}
	sn, err := serial(d.rand)
	if err != nil {
		return DeviceCert{}, err
	}
	u, _ := url.Parse(DeviceURIPrefix + deviceID)
	notAfter := now.Add(lifetime)
	if notAfter.After(d.Cert.NotAfter) {
		notAfter = d.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:   sn,
		Subject:        pkix.Name{Organization: []string{"Rampart"}, CommonName: deviceID},
		NotBefore:      now.Add(-clockSkew),
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:           []*url.URL{u},
		AuthorityKeyId: d.Cert.SubjectKeyId,
	}
	der, err := x509.CreateCertificate(d.rand, tmpl, d.Cert, pub, d.key)
	if err != nil {
		return DeviceCert{}, fmt.Errorf("signing device certificate for %s: %w", deviceID, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return DeviceCert{}, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return DeviceCert{Cert: cert, Serial: SerialHex(cert.SerialNumber), Fingerprint: Fingerprint(cert), ChainPEM: append(chain, d.ChainPEM()...)}, nil
}

// SerialHex writes a serial number as lowercase hex.
func SerialHex(n *big.Int) string { return hex.EncodeToString(n.Bytes()) }

// Fingerprint is the hex SHA-256 of a certificate's DER.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// ValidDeviceID accepts what the hub generates: 1 to 64 characters of
// [a-z0-9_-].
func ValidDeviceID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// DeviceID returns the device a certificate names by its URI SAN, which must
// agree with its CN.
func DeviceID(c *x509.Certificate) (string, bool) {
	var id string
	for _, u := range c.URIs {
		s := u.String()
		if v, ok := strings.CutPrefix(s, DeviceURIPrefix); ok {
			if id != "" {
				return "", false // two identities: refuse
			}
			id = v
		}
	}
	if !ValidDeviceID(id) || c.Subject.CommonName != id {
		return "", false
	}
	return id, true
}

// VerifyDevice checks that chain[0] is a device certificate of this hub,
// valid at now, and returns the device it names. Intermediates the peer sent
// are ignored: the only acceptable issuer is the device intermediate.
func (d *DeviceCA) VerifyDevice(leaf *x509.Certificate, now time.Time) (string, error) {
	if leaf == nil {
		return "", fmt.Errorf("%w: no certificate", ErrNotDeviceCert)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: d.pool, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotDeviceCert, err)
	}
	id, ok := DeviceID(leaf)
	if !ok {
		return "", fmt.Errorf("%w: it names no device", ErrNotDeviceCert)
	}
	return id, nil
}

// Revoked is one entry of the CRL.
type Revoked struct {
	Serial    string // hex
	RevokedAt time.Time
}

// CRL signs a certificate revocation list of the device intermediate. number
// must grow with every list (the caller uses the time in nanoseconds).
func (d *DeviceCA) CRL(revoked []Revoked, now time.Time) ([]byte, error) {
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		b, err := hex.DecodeString(r.Serial)
		if err != nil {
			return nil, fmt.Errorf("revoked serial %q is not hex", r.Serial)
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: new(big.Int).SetBytes(b), RevocationTime: r.RevokedAt})
	}
	tmpl := &x509.RevocationList{
		RevokedCertificateEntries: entries,
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                now,
		NextUpdate:                now.Add(crlLifetime),
	}
	return x509.CreateRevocationList(d.rand, tmpl, d.Cert, d.key)
}

// ParseCertsPEM reads one or more PEM CERTIFICATE blocks (a manufacturer CA,
// a chain). Any other block type or trailing data is refused.
func ParseCertsPEM(pemBytes []byte) ([]*x509.Certificate, error) {
	if len(pemBytes) > maxCertsPEMBytes {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrBadPEM, maxCertsPEMBytes)
	}
	var out []*x509.Certificate
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: block of type %q; want CERTIFICATE", ErrBadPEM, block.Type)
		}
		if len(out) == maxCertsInPEM {
			return nil, fmt.Errorf("%w: more than %d certificates", ErrBadPEM, maxCertsInPEM)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadPEM, err)
		}
		out = append(out, c)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("%w: data that is not PEM", ErrBadPEM)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no CERTIFICATE block", ErrBadPEM)
	}
	return out, nil
}
