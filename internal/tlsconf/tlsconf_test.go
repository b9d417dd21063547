package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ok   bool
		weak bool
	}{
		{"1.3", true, false}, {"1.2", true, false},
		{"1.1", false, true}, {"1.0", false, true}, {"ssl3", false, true},
		{"", false, false}, {"1.4", false, false}, {"tls1.3", false, false},
	} {
		_, err := ParseVersion(tc.in)
		if (err == nil) != tc.ok || errors.Is(err, ErrWeakVersion) != tc.weak {
			t.Errorf("ParseVersion(%q) = %v", tc.in, err)
		}
	}
}

func cert(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }

func TestServerDefaults(t *testing.T) {
	c, err := Server(ServerOptions{Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	if c.MinVersion != tls.VersionTLS13 {
		t.Fatalf("default floor %s, want TLS 1.3", tls.VersionName(c.MinVersion))
	}
	if c.ClientAuth != tls.NoClientCert {
		t.Fatal("client auth set without ClientCAs")
	}
	c12, err := Server(ServerOptions{Certificate: cert, MinVersion: TLS12, ClientCAs: x509.NewCertPool()})
	if err != nil {
		t.Fatal(err)
	}
	if c12.MinVersion != tls.VersionTLS12 || c12.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("1.2 + ClientCAs: min %x auth %v", c12.MinVersion, c12.ClientAuth)
	}
	for _, id := range c12.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.Contains(name, "ECDHE") || !(strings.Contains(name, "GCM") || strings.Contains(name, "CHACHA20")) {
			t.Errorf("TLS 1.2 suite %s is not ECDHE + AEAD", name)
		}
	}
	if _, err := Server(ServerOptions{Certificate: cert, MinVersion: "1.1"}); !errors.Is(err, ErrWeakVersion) {
		t.Fatalf("Server accepted TLS 1.1: %v", err)
	}
	if _, err := Server(ServerOptions{}); err == nil {
		t.Fatal("Server without a certificate")
	}
}

func TestClientNeedsRootsAndNeverSkipsVerification(t *testing.T) {
	if _, err := Client(ClientOptions{}); err == nil {
		t.Fatal("Client without RootCAs was built (it would trust the system roots)")
	}
	c, err := Client(ClientOptions{RootCAs: x509.NewCertPool()})
	if err != nil {
		t.Fatal(err)
	}
	if c.InsecureSkipVerify || c.MinVersion != tls.VersionTLS13 {
		t.Fatalf("client config: skip=%v min=%x", c.InsecureSkipVerify, c.MinVersion)
	}
}

func TestRequestClientCertAsksWithoutRequiring(t *testing.T) {
	c, err := Server(ServerOptions{Certificate: cert, RequestClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientAuth != tls.RequestClientCert {
		t.Fatalf("ClientAuth = %v, want RequestClientCert", c.ClientAuth)
	}
	c, err = Server(ServerOptions{Certificate: cert, RequestClientCert: true, ClientCAs: x509.NewCertPool()})
	if err != nil || c.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Fatalf("ClientCAs must win over RequestClientCert: %v %v", c.ClientAuth, err)
	}
}

func TestOutboundNeverSkipsVerification(t *testing.T) {
	c, err := Outbound(nil)
	if err != nil || c.InsecureSkipVerify || c.MinVersion < tls.VersionTLS12 {
		t.Fatalf("outbound: %+v %v", c, err)
	}
}
