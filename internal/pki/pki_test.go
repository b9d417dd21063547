package pki

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/testkit"
)

var errMiss = errors.New("missing")

type memVault map[string][]byte

func (m memVault) Get(_ context.Context, name string) ([]byte, error) {
	b, ok := m[name]
	if !ok {
		return nil, errMiss
	}
	return b, nil
}

func (m memVault) Put(_ context.Context, name string, b []byte) error {
	m[name] = append([]byte(nil), b...)
	return nil
}

func opts(v memVault, clock *testkit.Clock, hosts ...string) Options {
	return Options{Vault: v, NotFound: func(err error) bool { return errors.Is(err, errMiss) }, Now: clock.Now,
		Rand: testkit.NewRand("pki"), Hostnames: hosts}
}

func TestBootstrapCreatesRootAndServerCertificate(t *testing.T) {
	ctx := context.Background()
	v := memVault{}
	clock := testkit.NewClock(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	ca, sc, created, err := Bootstrap(ctx, opts(v, clock, "hub.example.com", "10.1.2.3"))
	if err != nil || !created {
		t.Fatalf("bootstrap: created=%v err=%v", created, err)
	}
	root := ca.Cert
	if !root.IsCA || root.MaxPathLen != 1 || root.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Fatalf("root is not a constrained CA: IsCA=%v MaxPathLen=%d", root.IsCA, root.MaxPathLen)
	}
	if pub, ok := root.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("root key is %T, want ECDSA P-256", root.PublicKey)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "hub.example.com", "10.1.2.3"} {
		if _, err := sc.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.Pool(), CurrentTime: clock.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", name, err)
		}
	}
	if _, err := sc.Leaf.Verify(x509.VerifyOptions{DNSName: "evil.example.com", Roots: ca.Pool(), CurrentTime: clock.Now()}); err == nil {
		t.Error("server certificate verifies for a name it was not issued for")
	}
	if _, err := x509.ParsePKCS8PrivateKey(v[vaultRootKey]); err != nil {
		t.Fatalf("vault root key is not PKCS#8: %v", err)
	}

	// Second start: same root, same server certificate.
	ca2, sc2, created, err := Bootstrap(ctx, opts(v, clock, "hub.example.com", "10.1.2.3"))
	if err != nil || created || !ca2.Cert.Equal(ca.Cert) || !sc2.Leaf.Equal(sc.Leaf) {
		t.Fatalf("warm bootstrap changed something: created=%v err=%v", created, err)
	}
	// New names: new server certificate, same root.
	_, sc3, _, err := Bootstrap(ctx, opts(v, clock, "other.example.com"))
	if err != nil || sc3.Leaf.Equal(sc.Leaf) {
		t.Fatalf("changing hostnames did not reissue: %v", err)
	}
	if _, err := sc3.Leaf.Verify(x509.VerifyOptions{DNSName: "other.example.com", Roots: ca.Pool(), CurrentTime: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	// Near expiry: renewed.
	clock.Advance(61 * 24 * time.Hour)
	_, sc4, _, err := Bootstrap(ctx, opts(v, clock, "other.example.com"))
	if err != nil || sc4.Leaf.Equal(sc3.Leaf) || !sc4.Leaf.NotAfter.After(sc3.Leaf.NotAfter) {
		t.Fatalf("certificate within 30 days of expiry was not renewed: %v", err)
	}
}

func TestBootstrapRefusesMismatchedRoot(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock(time.Now())
	a, b := memVault{}, memVault{}
	if _, _, _, err := Bootstrap(ctx, opts(a, clock)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Bootstrap(ctx, opts(b, clock)); err != nil {
		t.Fatal(err)
	}
	a[vaultRootKey] = b[vaultRootKey] // a root key that does not match the root certificate
	if _, _, _, err := Bootstrap(ctx, opts(a, clock)); err == nil {
		t.Fatal("bootstrap accepted a root key that does not match its certificate")
	}
}

func TestServerCertificateIsReissuedWhenItsKeyIsSwapped(t *testing.T) {
	ctx := context.Background()
	clock := testkit.NewClock(time.Now())
	v := memVault{}
	_, sc, _, err := Bootstrap(ctx, opts(v, clock))
	if err != nil {
		t.Fatal(err)
	}
	other := memVault{}
	Bootstrap(ctx, opts(other, clock))
	v[vaultServerKey] = other[vaultServerKey]
	_, sc2, _, err := Bootstrap(ctx, opts(v, clock))
	if err != nil || sc2.Leaf.Equal(sc.Leaf) {
		t.Fatalf("mismatched server key not replaced: %v", err)
	}
}
