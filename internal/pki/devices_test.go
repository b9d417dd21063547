package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/testkit"
)

func deviceCA(t testing.TB) (*CA, *DeviceCA, memVault, *testkit.Clock) {
	t.Helper()
	v := memVault{}
	clock := testkit.NewClock(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	ca, _, _, err := Bootstrap(context.Background(), opts(v, clock))
	if err != nil {
		t.Fatal(err)
	}
	dca, created, err := LoadOrCreateDeviceCA(context.Background(), opts(v, clock), ca)
	if err != nil || !created {
		t.Fatalf("device CA: created=%v err=%v", created, err)
	}
	return ca, dca, v, clock
}

// CSR makes a PEM CSR for key, naming cn and a URI SAN (which the hub must ignore).
func CSR(t testing.TB, key crypto.Signer, cn string) []byte {
	t.Helper()
	u, _ := url.Parse(DeviceURIPrefix + cn)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}, URIs: []*url.URL{u},
		DNSNames: []string{"evil.example.com"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestDeviceCAChainsToRootAndSurvivesRestart(t *testing.T) {
	ca, dca, v, clock := deviceCA(t)
	if !dca.Cert.IsCA || !dca.Cert.MaxPathLenZero || dca.Cert.CheckSignatureFrom(ca.Cert) != nil {
		t.Fatal("device CA is not a path-length-0 intermediate signed by the root")
	}
	again, created, err := LoadOrCreateDeviceCA(context.Background(), opts(v, clock), ca)
	if err != nil || created || !again.Cert.Equal(dca.Cert) {
		t.Fatalf("warm start changed the device CA: created=%v err=%v", created, err)
	}
	// Near its end it is re-signed with the same key: old device certs keep chaining.
	clock.Advance(deviceCALifetime - deviceCARenewBefore - time.Hour)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	dc, err := dca.Issue("dev_a", key.Public(), clock.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	renewed, created, err := LoadOrCreateDeviceCA(context.Background(), opts(v, clock), ca)
	if err != nil || created || renewed.Cert.Equal(dca.Cert) || !publicEqual(renewed.Cert.PublicKey, dca.Cert.PublicKey) {
		t.Fatalf("device CA not re-signed with the same key: created=%v err=%v", created, err)
	}
	if _, err := renewed.VerifyDevice(dc.Cert, clock.Now()); err != nil {
		t.Fatalf("a live device certificate no longer chains after the re-sign: %v", err)
	}
}

func TestIssueNamesTheDeviceFromTheHubOnly(t *testing.T) {
	_, dca, _, clock := deviceCA(t)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{
		{"ok/p256", must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))},
		{"ok/p384", must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))},
		{"ok/ed25519", edKey()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := ParseCSR(CSR(t, tc.key, "dev_other"))
			if err != nil {
				t.Fatal(err)
			}
			dc, err := dca.Issue("dev_mine", csr.PublicKey, clock.Now(), DefaultDeviceCertLifetime)
			if err != nil {
				t.Fatal(err)
			}
			c := dc.Cert
			if id, ok := DeviceID(c); !ok || id != "dev_mine" || len(c.DNSNames) != 0 || len(c.URIs) != 1 {
				t.Fatalf("certificate names %q %v %v; want only dev_mine", c.Subject.CommonName, c.URIs, c.DNSNames)
			}
			if got := c.NotAfter.Sub(clock.Now()); got != DefaultDeviceCertLifetime {
				t.Fatalf("lifetime %s, want 30 days", got)
			}
			id, err := dca.VerifyDevice(c, clock.Now())
			if err != nil || id != "dev_mine" {
				t.Fatalf("VerifyDevice: %q %v", id, err)
			}
			if _, err := dca.VerifyDevice(c, c.NotAfter.Add(time.Second)); !errors.Is(err, ErrNotDeviceCert) {
				t.Fatalf("expired certificate verified: %v", err)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func edKey() crypto.Signer {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	return k
}

func TestParseCSRRefusals(t *testing.T) {
	p224 := must(ecdsa.GenerateKey(elliptic.P224(), rand.Reader))
	rsa1024 := must(rsa.GenerateKey(rand.Reader, 1024))
	good := CSR(t, must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)), "x")
	block, _ := pem.Decode(good)
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-5] ^= 0xff // inside the signature
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"fail/p224", CSR(t, p224, "x"), ErrKeyNotAllowed},
		{"fail/rsa1024", CSR(t, rsa1024, "x"), ErrKeyNotAllowed},
		{"fail/bad_signature", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}), ErrBadCSR},
		{"fail/not_pem", []byte("hello"), ErrBadCSR},
		{"fail/certificate_block", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: block.Bytes}), ErrBadCSR},
		{"fail/two_csrs", append(append([]byte(nil), good...), good...), ErrBadCSR},
		{"fail/too_large", make([]byte, maxCSRBytes+1), ErrBadCSR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseCSR(tc.in); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := ParseCSR(good); err != nil {
		t.Fatalf("ok/p256: %v", err)
	}
}

func TestVerifyDeviceRefusesOtherIssuers(t *testing.T) {
	root, dca, _, clock := deviceCA(t)
	// The hub's own server certificate chains to the root, not to the device CA.
	sc, _, err := IssueServer(root, []string{"localhost"}, clock.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dca.VerifyDevice(sc.Leaf, clock.Now()); !errors.Is(err, ErrNotDeviceCert) {
		t.Fatalf("server certificate passed as a device: %v", err)
	}
	// Another hub's device certificate.
	_, other, _, _ := deviceCA(t)
	dc, err := other.Issue("dev_x", must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).Public(), clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dca.VerifyDevice(dc.Cert, clock.Now()); !errors.Is(err, ErrNotDeviceCert) {
		t.Fatalf("another hub's device certificate verified: %v", err)
	}
}

func TestCRLIsSignedByTheDeviceCA(t *testing.T) {
	_, dca, _, clock := deviceCA(t)
	dc, err := dca.Issue("dev_r", must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).Public(), clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	der, err := dca.CRL([]Revoked{{Serial: dc.Serial, RevokedAt: clock.Now()}}, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(dca.Cert); err != nil {
		t.Fatalf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Cmp(dc.Cert.SerialNumber) != 0 {
		t.Fatalf("CRL entries %v", crl.RevokedCertificateEntries)
	}
}

func TestParseCertsPEM(t *testing.T) {
	_, dca, _, _ := deviceCA(t)
	certs, err := ParseCertsPEM(dca.ChainPEM())
	if err != nil || len(certs) != 2 {
		t.Fatalf("chain: %d %v", len(certs), err)
	}
	for _, bad := range [][]byte{nil, []byte("junk"), append(dca.ChainPEM(), "junk"...),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})} {
		if _, err := ParseCertsPEM(bad); !errors.Is(err, ErrBadPEM) {
			t.Errorf("ParseCertsPEM(%q) = %v", bad, err)
		}
	}
}

func FuzzParseCSR(f *testing.F) {
	f.Add(CSR(f, must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)), "seed"))
	f.Add(CSR(f, edKey(), "seed"))
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b)
		if err == nil {
			if CheckKey(csr.PublicKey) != nil || csr.CheckSignature() != nil {
				t.Fatal("ParseCSR accepted a CSR with a bad key or signature")
			}
		}
	})
}

func FuzzParseCertsPEM(f *testing.F) {
	_, dca, _, _ := deviceCA(f)
	f.Add(dca.ChainPEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		certs, err := ParseCertsPEM(b)
		if err == nil && (len(certs) == 0 || len(certs) > maxCertsInPEM) {
			t.Fatalf("ParseCertsPEM returned %d certificates without error", len(certs))
		}
	})
}

func BenchmarkIssueDeviceCert(b *testing.B) {
	_, dca, _, clock := deviceCA(b)
	pub := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)).Public()
	b.ResetTimer()
	for b.Loop() {
		if _, err := dca.Issue("dev_bench", pub, clock.Now(), DefaultDeviceCertLifetime); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}
