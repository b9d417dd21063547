package main

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"testing"
)

// The physical limit: the public-key work of one mTLS handshake, without
// TLS framing, record layer, MQTT, scheduling or I/O. Server side: sign
// CertificateVerify (P-256), the key exchange (X25519, or the hybrid
// X25519MLKEM768 that Go prefers), parse the client's certificate and
// verify its chain to the CA (one P-256 verification), verify the
// client's CertificateVerify (one more). The client does the mirror image
// on the same machine during the bench, so its cost is measured too.

type cryptoFixture struct {
	p    *pkiSet
	msg  [32]byte
	sig  []byte // a CertificateVerify signature by the device key
	opts x509.VerifyOptions
}

func newCryptoFixture(p *pkiSet) *cryptoFixture {
	f := &cryptoFixture{p: p, opts: x509.VerifyOptions{Roots: p.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}}
	f.msg = sha256.Sum256([]byte("transcript"))
	f.sig, _ = ecdsa.SignASN1(rand.Reader, p.devices[0].PrivateKey.(*ecdsa.PrivateKey), f.msg[:])
	return f
}

// serverHandshakeCrypto is one server-side handshake's public-key work.
func (f *cryptoFixture) server(b *testing.B, hybrid bool) {
	srvKey := f.p.devices[1].PrivateKey.(*ecdsa.PrivateKey)
	devPub := f.p.devices[0].Leaf.PublicKey.(*ecdsa.PublicKey)
	der := f.p.devices[0].Certificate[0]
	var ek *mlkem.EncapsulationKey768
	if hybrid {
		dk, _ := mlkem.GenerateKey768()
		ek = dk.EncapsulationKey()
	}
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// key exchange
		spriv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		_, _ = spriv.ECDH(peer.PublicKey())
		if hybrid {
			k, _ := mlkem.NewEncapsulationKey768(ek.Bytes())
			_, _ = k.Encapsulate()
		}
		// server CertificateVerify
		_, _ = ecdsa.SignASN1(rand.Reader, srvKey, f.msg[:])
		// client certificate: parse and verify the chain
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := leaf.Verify(f.opts); err != nil {
			b.Fatal(err)
		}
		// client CertificateVerify
		if !ecdsa.VerifyASN1(devPub, f.msg[:], f.sig) {
			b.Fatal("bad signature")
		}
	}
}

// client is the client side's public-key work (the load generator's).
func (f *cryptoFixture) client(b *testing.B, hybrid bool) {
	devKey := f.p.devices[0].PrivateKey.(*ecdsa.PrivateKey)
	srvPub := f.p.devices[1].Leaf.PublicKey.(*ecdsa.PublicKey)
	der := f.p.devices[1].Certificate[0]
	sopts := x509.VerifyOptions{Roots: f.p.roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	sig, _ := ecdsa.SignASN1(rand.Reader, f.p.devices[1].PrivateKey.(*ecdsa.PrivateKey), f.msg[:])
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	var ct []byte
	if hybrid {
		dk, _ := mlkem.GenerateKey768()
		_, ct = dk.EncapsulationKey().Encapsulate()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cpriv, _ := ecdh.X25519().GenerateKey(rand.Reader)
		_, _ = cpriv.ECDH(peer.PublicKey())
		if hybrid {
			dk, _ := mlkem.GenerateKey768()
			_, _ = dk.Decapsulate(ct)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := leaf.Verify(sopts); err != nil {
			b.Fatal(err)
		}
		if !ecdsa.VerifyASN1(srvPub, f.msg[:], sig) {
			b.Fatal("bad signature")
		}
		_, _ = ecdsa.SignASN1(rand.Reader, devKey, f.msg[:])
	}
}
