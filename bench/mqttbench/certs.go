package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// pkiSet is the throwaway CA of one bench run: a P-256 root that signs the
// server certificate (used by both brokers) and every client certificate.
// Both brokers trust exactly this root for clients.
type pkiSet struct {
	dir     string
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	roots   *x509.CertPool
	devices []tls.Certificate // index i is device deviceID(i)
	app     tls.Certificate   // the subscriber's certificate (Mosquitto requires one)
}

func deviceID(i int) string { return fmt.Sprintf("dev%05d", i) }

func newPKI(dir string, devices int) (*pkiSet, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mqttbench throwaway root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	p := &pkiSet{dir: dir, ca: ca, caKey: key, roots: x509.NewCertPool()}
	p.roots.AddCert(ca)
	if err := writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", der, 0o644); err != nil {
		return nil, err
	}
	srv, err := p.issue("127.0.0.1", "", true)
	if err != nil {
		return nil, err
	}
	if err := writeCertKey(dir, "server", srv); err != nil {
		return nil, err
	}
	p.app, err = p.issue("app", "", false)
	if err != nil {
		return nil, err
	}
	var reg strings.Builder
	for i := 0; i < devices; i++ {
		c, err := p.issue(deviceID(i), deviceID(i), false)
		if err != nil {
			return nil, err
		}
		p.devices = append(p.devices, c)
		sum := sha256.Sum256(c.Certificate[0])
		fmt.Fprintf(&reg, "%s %s\n", deviceID(i), hex.EncodeToString(sum[:]))
	}
	// The hub's registry: device ID and the fingerprint of its current
	// certificate (what devices.Service.Authorize checks).
	return p, os.WriteFile(filepath.Join(dir, "devices.txt"), []byte(reg.String()), 0o600)
}

// issue makes a P-256 leaf. Devices carry the hub's device URI and their ID
// as CN (Mosquitto's use_identity_as_username).
func (p *pkiSet) issue(cn, device string, server bool) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 80))
	now := time.Now()
	t := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	} else {
		t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	if device != "" {
		t.URIs = []*url.URL{{Scheme: "urn", Opaque: "rampart:device:" + device}}
	}
	der, err := x509.CreateCertificate(rand.Reader, t, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

func writeCertKey(dir, name string, c tls.Certificate) error {
	if err := writePEM(filepath.Join(dir, name+".pem"), "CERTIFICATE", c.Certificate[0], 0o644); err != nil {
		return err
	}
	k, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, name+".key"), "EC PRIVATE KEY", k, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

// clientTLS is the client side: trusts only the throwaway root.
func (p *pkiSet) clientTLS(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: p.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	if len(curvePrefs) > 0 {
		c.CurvePreferences = curvePrefs
	}
	return c
}

var curvePrefs []tls.CurveID
