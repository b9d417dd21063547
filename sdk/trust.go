package sdk

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Trust says how the device authenticates the hub: the hub's root CA
// (Rampart's DATA/ca.pem) as a PEM bundle, or the SHA-256 fingerprint of
// that root, given at provisioning. The system roots are never used and
// there is no way to skip verification: a hub whose certificate does not
// chain to this root is refused.
//
// With only a fingerprint, the first exchange with the hub (enrollment)
// verifies the hub's chain against the root whose DER hashes to the
// fingerprint, and the keystore keeps that root from then on.
type Trust struct {
	CABundle    []byte // PEM; one or more CA certificates
	Fingerprint string // "sha256:HEX" or HEX (colons allowed) of the root's DER
}

// ErrNoTrust: neither a CA bundle nor a fingerprint was given.
var ErrNoTrust = errors.New("no trust anchor for the hub: give its CA bundle (DATA/ca.pem) or the SHA-256 fingerprint of it; the system roots are never used")

// Validate reports whether t is usable: a parsable bundle of CA
// certificates and/or a well-formed fingerprint (ErrNoTrust when empty).
func (t Trust) Validate() error {
	_, err := newAnchor(t)
	return err
}

// Fingerprint returns the "sha256:HEX" fingerprint of a certificate (for
// printing the hub's root at provisioning time).
func Fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func parseFingerprint(s string) ([]byte, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "sha256:")
	s = strings.ReplaceAll(s, ":", "")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("CA fingerprint %q is not a SHA-256 hex digest (example: sha256:3f1a...; 64 hex digits)", s)
	}
	return b, nil
}

// parsePEMCerts returns the CERTIFICATE blocks of a PEM bundle.
func parsePEMCerts(b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no CERTIFICATE block in PEM")
	}
	return out, nil
}

func encodePEMCerts(certs ...*x509.Certificate) []byte {
	var b bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return b.Bytes()
}

// anchor is a resolved Trust: a root pool, or a fingerprint still to be
// matched (then pinned, once seen).
type anchor struct {
	mu     sync.Mutex
	roots  []*x509.Certificate
	fp     []byte
	pinned *x509.Certificate // the root matched by fp
}

func newAnchor(t Trust) (*anchor, error) {
	a := &anchor{}
	if len(t.CABundle) > 0 {
		certs, err := parsePEMCerts(t.CABundle)
		if err != nil {
			return nil, fmt.Errorf("hub CA bundle: %w", err)
		}
		for _, c := range certs {
			if !c.IsCA {
				return nil, fmt.Errorf("hub CA bundle: %q is not a CA certificate", c.Subject)
			}
		}
		a.roots = certs
	}
	if t.Fingerprint != "" {
		fp, err := parseFingerprint(t.Fingerprint)
		if err != nil {
			return nil, err
		}
		a.fp = fp
		if len(a.roots) > 0 { // both given: the bundle must hold the fingerprinted root
			var ok bool
			for _, c := range a.roots {
				sum := sha256.Sum256(c.Raw)
				ok = ok || subtle.ConstantTimeCompare(sum[:], fp) == 1
			}
			if !ok {
				return nil, errors.New("hub CA bundle does not contain the certificate with the given fingerprint")
			}
		}
	}
	if len(a.roots) == 0 && a.fp == nil {
		return nil, ErrNoTrust
	}
	return a, nil
}

// rootCerts returns the roots known so far (the bundle, or the pinned root).
func (a *anchor) rootCerts() []*x509.Certificate {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.roots) > 0 {
		return a.roots
	}
	if a.pinned != nil {
		return []*x509.Certificate{a.pinned}
	}
	return nil
}

func pool(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// verify checks the hub's presented chain for serverName at now.
func (a *anchor) verify(cs tls.ConnectionState, serverName string, now time.Time) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("hub presented no certificate")
	}
	roots := a.rootCerts()
	if roots == nil { // fingerprint only: find the root in what the hub sent
		for _, c := range cs.PeerCertificates[1:] {
			sum := sha256.Sum256(c.Raw)
			if c.IsCA && subtle.ConstantTimeCompare(sum[:], a.fp) == 1 {
				roots = []*x509.Certificate{c}
				break
			}
		}
		if roots == nil {
			return errors.New("hub's certificate chain does not contain the CA with the provisioned fingerprint")
		}
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: pool(roots), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if ip := net.ParseIP(serverName); ip == nil {
		opts.DNSName = serverName
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("hub certificate not trusted: %w", err)
	}
	if ip := net.ParseIP(serverName); ip != nil {
		if err := cs.PeerCertificates[0].VerifyHostname(serverName); err != nil {
			return fmt.Errorf("hub certificate not valid for %s: %w", serverName, err)
		}
	}
	a.mu.Lock()
	if len(a.roots) == 0 && a.pinned == nil {
		a.pinned = roots[0]
	}
	a.mu.Unlock()
	return nil
}

// tlsConfig builds the client TLS configuration for a hub at serverName.
// Verification is always on: with a root pool it is Go's own; with a
// fingerprint only, Go's built-in check (which would consult the system
// roots) is replaced by anchor.verify, which does the same chain, usage,
// expiry and name checks against the fingerprinted root.
func (a *anchor) tlsConfig(serverName string, now func() time.Time, cert func() (*tls.Certificate, error)) *tls.Config {
	cfg := &tls.Config{
		MinVersion:   tlsMinVersion,
		CipherSuites: tls12Suites,
		ServerName:   serverName,
		Time:         now,
	}
	if cert != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert() }
	}
	if roots := a.rootCerts(); roots != nil {
		cfg.RootCAs = pool(roots)
		return cfg
	}
	cfg.InsecureSkipVerify = true // replaced, never skipped: VerifyConnection below
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return a.verify(cs, serverName, now()) }
	return cfg
}

// hostOf returns the host of an https:// URL or a HOST:PORT address.
func hostOf(addr string) (string, error) {
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil {
			return "", fmt.Errorf("hub URL %q: %w", addr, err)
		}
		if u.Scheme != "https" {
			return "", fmt.Errorf("hub URL %q must start with https:// (there is no plaintext API)", addr)
		}
		return u.Hostname(), nil
	}
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q is not HOST:PORT: %w", addr, err)
	}
	return h, nil
}
