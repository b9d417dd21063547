// Package pki holds Rampart's certificate authority: the root created at
// first run, the hub's own TLS server certificate, and (with the device
// identity work) the device intermediate, issuance and revocation.
//
// Private keys live in plaintext only in memory. At rest they are sealed by
// a KeyVault (secrets.Vault in production), which this package declares as
// the small interface it needs.
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// KeyVault stores sealed blobs by name. Get returns an error for which
// notFound(err) is true when the name is absent.
type KeyVault interface {
	Get(ctx context.Context, name string) ([]byte, error)
	Put(ctx context.Context, name string, plaintext []byte) error
}

// Names of the vault entries this package owns.
const (
	vaultRootKey    = "pki/root/key"
	vaultRootCert   = "pki/root/cert"
	vaultServerKey  = "pki/server/key"
	vaultServerCert = "pki/server/cert"
)

// CA is a loaded certificate authority.
type CA struct {
	Cert *x509.Certificate
	key  crypto.Signer
}

// CertPEM is the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Pool is a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Options control bootstrap.
type Options struct {
	Vault     KeyVault
	NotFound  func(error) bool // reports a vault miss
	Now       func() time.Time
	Rand      io.Reader // serial numbers; key generation uses crypto/rand (Go 1.26 ignores other readers for keys)
	Hostnames []string  // extra SANs for the server certificate
}

// Bootstrap loads the root CA and the hub's server certificate from the
// vault, creating them on first run and renewing the server certificate when
// it nears expiry or its names changed. It reports whether the root was new.
func Bootstrap(ctx context.Context, o Options) (*CA, *ServerCert, bool, error) {
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ca, created, err := loadOrCreateRoot(ctx, o)
	if err != nil {
		return nil, nil, false, err
	}
	sc, err := loadOrIssueServer(ctx, o, ca)
	if err != nil {
		return nil, nil, false, err
	}
	return ca, sc, created, nil
}

func loadOrCreateRoot(ctx context.Context, o Options) (*CA, bool, error) {
	keyDER, err := o.Vault.Get(ctx, vaultRootKey)
	switch {
	case err == nil:
		certDER, err := o.Vault.Get(ctx, vaultRootCert)
		if err != nil {
			return nil, false, fmt.Errorf("loading root certificate: %w", err)
		}
		ca, err := parseCA(certDER, keyDER)
		if err != nil {
			return nil, false, fmt.Errorf("loading root CA: %w", err)
		}
		return ca, false, nil
	case o.NotFound(err):
	default:
		return nil, false, fmt.Errorf("loading root key: %w", err)
	}
	ca, keyDER, err := NewRoot(o.Now(), o.Rand)
	if err != nil {
		return nil, false, err
	}
	if err := o.Vault.Put(ctx, vaultRootKey, keyDER); err != nil {
		return nil, false, fmt.Errorf("sealing root key: %w", err)
	}
	if err := o.Vault.Put(ctx, vaultRootCert, ca.Cert.Raw); err != nil {
		return nil, false, fmt.Errorf("storing root certificate: %w", err)
	}
	return ca, true, nil
}

func parseCA(certDER, keyDER []byte) (*CA, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("root key is not a signer")
	}
	if !publicEqual(signer.Public(), cert.PublicKey) {
		return nil, errors.New("root key does not match root certificate")
	}
	return &CA{Cert: cert, key: signer}, nil
}

func publicEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(eq)
	return ok && e.Equal(b)
}

func serial(r io.Reader) (*big.Int, error) {
	b := make([]byte, serialBytes)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("reading randomness for serial: %w", err)
	}
	b[0] &= 0x7f // positive
	b[0] |= 0x40 // and never short
	return new(big.Int).SetBytes(b), nil
}

func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return sum[:20], nil
}

// NewRoot creates a self-signed ECDSA P-256 root. It returns the CA and its
// private key as PKCS#8 DER for sealing.
func NewRoot(now time.Time, r io.Reader) (*CA, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating root key: %w", err)
	}
	sn, err := serial(r)
	if err != nil {
		return nil, nil, err
	}
	skid, err := keyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{Organization: []string{"Rampart"}, CommonName: fmt.Sprintf("Rampart Root CA %x", skid[:4])},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(rootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1, // root -> device intermediate -> device
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(r, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return &CA{Cert: cert, key: key}, keyDER, nil
}

// ServerCert is the hub's TLS server certificate with its chain.
type ServerCert struct {
	Leaf  *x509.Certificate
	chain [][]byte
	key   crypto.Signer
}

// TLSCertificate returns the certificate in crypto/tls form.
func (s *ServerCert) TLSCertificate() ([][]byte, crypto.Signer, *x509.Certificate) {
	return s.chain, s.key, s.Leaf
}

// DefaultHostnames are always in the server certificate, so that the
// default loopback listener verifies with ca.pem out of the box.
var DefaultHostnames = []string{"localhost", "127.0.0.1", "::1"}

func wantNames(extra []string) []string {
	names := slices.Clone(DefaultHostnames)
	for _, h := range extra {
		h = strings.ToLower(strings.TrimSpace(h))
		if h != "" && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names
}

func certNames(c *x509.Certificate) []string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return names
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func loadOrIssueServer(ctx context.Context, o Options, ca *CA) (*ServerCert, error) {
	names := wantNames(o.Hostnames)
	keyDER, err := o.Vault.Get(ctx, vaultServerKey)
	if err == nil {
		certDER, cerr := o.Vault.Get(ctx, vaultServerCert)
		if cerr == nil {
			sc, perr := parseServer(certDER, keyDER, ca)
			if perr == nil && sameSet(certNames(sc.Leaf), names) && o.Now().Add(serverRenewBefore).Before(sc.Leaf.NotAfter) {
				return sc, nil
			}
		}
	} else if !o.NotFound(err) {
		return nil, fmt.Errorf("loading server key: %w", err)
	}
	sc, keyDER, err := IssueServer(ca, names, o.Now(), o.Rand)
	if err != nil {
		return nil, err
	}
	if err := o.Vault.Put(ctx, vaultServerKey, keyDER); err != nil {
		return nil, fmt.Errorf("sealing server key: %w", err)
	}
	if err := o.Vault.Put(ctx, vaultServerCert, sc.Leaf.Raw); err != nil {
		return nil, fmt.Errorf("storing server certificate: %w", err)
	}
	return sc, nil
}

func parseServer(certDER, keyDER []byte, ca *CA) (*ServerCert, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(ca.Cert); err != nil {
		return nil, fmt.Errorf("server certificate not signed by the root: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	if err != nil {
		return nil, err
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !publicEqual(signer.Public(), cert.PublicKey) {
		return nil, errors.New("server key does not match its certificate")
	}
	return &ServerCert{Leaf: cert, chain: [][]byte{cert.Raw, ca.Cert.Raw}, key: signer}, nil
}

// IssueServer issues a TLS server certificate for names (DNS names or IP
// literals) under ca, returning it and its PKCS#8 private key.
func IssueServer(ca *CA, names []string, now time.Time, r io.Reader) (*ServerCert, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating server key: %w", err)
	}
	sn, err := serial(r)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   sn,
		Subject:        pkix.Name{Organization: []string{"Rampart"}, CommonName: names[0]},
		NotBefore:      now.Add(-clockSkew),
		NotAfter:       now.Add(serverLifetime),
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(r, tmpl, ca.Cert, key.Public(), ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	sc, err := parseServer(der, keyDER, ca)
	if err != nil {
		return nil, nil, err
	}
	return sc, keyDER, nil
}

// SameCertPEM reports whether pemBytes holds exactly ca's certificate.
func (ca *CA) SameCertPEM(pemBytes []byte) bool {
	return bytes.Equal(bytes.TrimSpace(pemBytes), bytes.TrimSpace(ca.CertPEM()))
}
