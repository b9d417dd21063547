// Package tlsconf is the only place in Rampart that builds a *tls.Config.
// Every listener and every client in the hub takes its configuration from
// here, so the protocol floor and the cipher suites are decided once:
// TLS 1.3 by default; TLS 1.2 only when configured, and then only with ECDHE
// key exchange and AEAD ciphers; nothing lower can be expressed.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// Version is a protocol floor that this package allows.
type Version string

const (
	// TLS13 accepts TLS 1.3 only.
	TLS13 Version = "1.3"
	// TLS12 accepts TLS 1.2 (ECDHE + AEAD suites only) and 1.3.
	TLS12 Version = "1.2"
)

// ErrWeakVersion is returned for any floor below TLS 1.2.
var ErrWeakVersion = errors.New("TLS versions below 1.2 are not supported")

// ParseVersion accepts "1.3" or "1.2"; anything else is refused with a reason.
func ParseVersion(s string) (Version, error) {
	switch Version(s) {
	case TLS13, TLS12:
		return Version(s), nil
	case "1.1", "1.0", "1", "ssl3", "SSLv3":
		return "", fmt.Errorf("tls min_version %q: %w (they lack AEAD ciphers and are deprecated by RFC 8996)", s, ErrWeakVersion)
	default:
		return "", fmt.Errorf("tls min_version %q: want \"1.3\" or \"1.2\"", s)
	}
}

func (v Version) min() uint16 {
	if v == TLS12 {
		return tls.VersionTLS12
	}
	return tls.VersionTLS13
}

// ServerOptions describe a server-side TLS configuration.
type ServerOptions struct {
	MinVersion Version // empty means TLS13
	// Certificate returns the server certificate; called per handshake so the
	// certificate can be renewed without a restart.
	Certificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCAs, when set, requires and verifies a client certificate that
	// chains to it (mTLS). Nil means the listener authenticates clients at
	// the application layer (HTTPS API with bearer tokens).
	ClientCAs *x509.CertPool
	// ClientCertOptional verifies a client certificate against ClientCAs
	// when one is sent, but lets a client without one finish the handshake
	// (the MQTT listener: devices without X.509 and applications then
	// authenticate in CONNECT, and a missing credential is refused there).
	ClientCertOptional bool
	// RequestClientCert, when ClientCAs is nil, asks every client for a
	// certificate without requiring one or verifying its chain (the TLS
	// handshake still proves the client holds its key). The HTTPS API uses
	// it for device renewal and factory-certificate enrollment; the
	// handlers verify the chain against the right CA themselves, and every
	// other route ignores the certificate.
	RequestClientCert bool
	// VerifyClient runs after chain verification (revocation, quarantine...).
	VerifyClient func(chains [][]*x509.Certificate) error
	// NextProtos for ALPN, e.g. "h2", "http/1.1", "mqtt".
	NextProtos []string
	// Time is the clock for certificate validation; nil means time.Now.
	Time func() time.Time
}

// Server builds a server configuration.
func Server(o ServerOptions) (*tls.Config, error) {
	if o.Certificate == nil {
		return nil, errors.New("tlsconf: server needs a certificate")
	}
	v := o.MinVersion
	if v == "" {
		v = TLS13
	}
	if _, err := ParseVersion(string(v)); err != nil {
		return nil, err
	}
	c := &tls.Config{
		MinVersion:       v.min(),
		MaxVersion:       tls.VersionTLS13,
		CipherSuites:     tls12Suites,
		CurvePreferences: curves,
		GetCertificate:   o.Certificate,
		NextProtos:       o.NextProtos,
		Time:             o.Time,
		// Session tickets are fine for TLS 1.3 (forward-secure resumption
		// with (EC)DHE); Go rotates the ticket keys itself.
		Renegotiation: tls.RenegotiateNever,
	}
	if o.RequestClientCert && o.ClientCAs == nil {
		c.ClientAuth = tls.RequestClientCert
	}
	if o.ClientCAs != nil {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		if o.ClientCertOptional {
			c.ClientAuth = tls.VerifyClientCertIfGiven
		}
		c.ClientCAs = o.ClientCAs
		if o.VerifyClient != nil {
			verify := o.VerifyClient
			c.VerifyPeerCertificate = func(_ [][]byte, chains [][]*x509.Certificate) error {
				return verify(chains)
			}
		}
	}
	return c, nil
}

// ClientOptions describe a client-side configuration (the CLI talking to the
// hub, tests, the gateway). There is deliberately no option to skip
// verification.
type ClientOptions struct {
	MinVersion  Version
	RootCAs     *x509.CertPool // required: Rampart never trusts the system roots for the hub
	ServerName  string
	Certificate *tls.Certificate // client certificate for mTLS, optional
	NextProtos  []string
	Time        func() time.Time
}

// Client builds a client configuration.
func Client(o ClientOptions) (*tls.Config, error) {
	if o.RootCAs == nil {
		return nil, errors.New("tlsconf: client needs the hub's CA (ca.pem); system roots are never used")
	}
	v := o.MinVersion
	if v == "" {
		v = TLS13
	}
	if _, err := ParseVersion(string(v)); err != nil {
		return nil, err
	}
	c := &tls.Config{
		MinVersion:       v.min(),
		MaxVersion:       tls.VersionTLS13,
		CipherSuites:     tls12Suites,
		CurvePreferences: curves,
		RootCAs:          o.RootCAs,
		ServerName:       o.ServerName,
		NextProtos:       o.NextProtos,
		Time:             o.Time,
	}
	if o.Certificate != nil {
		cert := o.Certificate
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c, nil
}

// Outbound builds a client configuration for third-party services the hub
// calls (alert webhooks). roots pins the receiver's CA; nil trusts the
// system roots, which is right only for such outside services — never for
// anything that talks to the hub. TLS 1.2 is the floor because public
// receivers may not speak 1.3; suites are the same ECDHE+AEAD set.
func Outbound(roots *x509.CertPool) (*tls.Config, error) {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		MaxVersion:       tls.VersionTLS13,
		CipherSuites:     tls12Suites,
		CurvePreferences: curves,
		RootCAs:          roots,
	}, nil
}
