package sdk

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/sdk/keystore"
)

// Enrollment says how a device gets its identity. Exactly one of Token,
// Claim or Factory is set.
type Enrollment struct {
	// Hub is the hub's HTTPS base URL, https://HOST:PORT.
	Hub string
	// MQTT is the hub's MQTT/TLS HOST:PORT (stored for Connect); empty
	// means the hub's host on port 8883.
	MQTT string
	// Trust authenticates the hub (CA bundle or fingerprint).
	Trust Trust

	// Token is a single-use enrollment token (POST /api/v1/devices).
	Token keystore.Secret
	// Claim is a batch claim token (POST /api/v1/claims); SerialNumber
	// and Name describe this unit.
	Claim        keystore.Secret
	SerialNumber string
	Name         string
	// Factory is the manufacturer's identity certificate and key (from a
	// secure element) for attested enrollment over mutual TLS.
	Factory *tls.Certificate

	// KeyAlgorithm of the device key: P-256 (default), P-384 or Ed25519.
	KeyAlgorithm keystore.Algorithm

	Now  func() time.Time // nil: time.Now
	Rand io.Reader        // nil: crypto/rand (for the CSR signature)
}

// Enroll makes the device key inside ks, sends a CSR to the hub with the
// chosen credential, checks the certificate it gets back (it must chain to
// the trusted root, name the device and match the key) and commits the
// identity, the hub's addresses and its root to ks.
func Enroll(ctx context.Context, ks *keystore.Store, e Enrollment) (*Device, error) {
	if _, ok := ks.Get(ksID); ok {
		return nil, errors.New("this keystore already holds an enrolled device; use Load")
	}
	n := 0
	for _, set := range []bool{!e.Token.IsZero(), !e.Claim.IsZero(), e.Factory != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("enrollment needs exactly one of a token, a claim or a factory certificate")
	}
	host, err := hostOf(e.Hub)
	if err != nil {
		return nil, err
	}
	if e.MQTT == "" {
		e.MQTT = host + ":8883"
	}
	if _, err := hostOf(e.MQTT); err != nil {
		return nil, err
	}
	a, err := newAnchor(e.Trust)
	if err != nil {
		return nil, err
	}
	now := e.Now
	if now == nil {
		now = time.Now
	}
	rnd := e.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	alg := e.KeyAlgorithm
	if alg == "" {
		alg = keystore.P256
	}
	key, err := ks.GenerateKey(ksKey, alg)
	if err != nil {
		return nil, err
	}
	csr, err := csrPEM(key, rnd)
	if err != nil {
		return nil, err
	}
	var factory func() (*tls.Certificate, error)
	if e.Factory != nil {
		factory = func() (*tls.Certificate, error) { return e.Factory, nil }
	}
	c, err := httpClient(a, e.Hub, now, factory)
	if err != nil {
		return nil, err
	}
	var er api.EnrollResponse
	switch {
	case !e.Token.IsZero():
		err = post(ctx, c, e.Hub, "/api/v1/enroll", api.EnrollRequest{Token: e.Token.Reveal(), CSR: csr}, &er)
	case !e.Claim.IsZero():
		err = post(ctx, c, e.Hub, "/api/v1/enroll", api.EnrollRequest{Claim: e.Claim.Reveal(), CSR: csr, SerialNumber: e.SerialNumber, Name: e.Name}, &er)
	default:
		err = post(ctx, c, e.Hub, "/api/v1/enroll/attest", api.CSRRequest{CSR: csr, Name: e.Name}, &er)
	}
	if err != nil {
		ks.Delete(ksKey)
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	roots := a.rootCerts() // the bundle, or the root the fingerprint matched
	d := &Device{ks: ks, anchor: a, id: er.DeviceID, hub: e.Hub, mqtt: e.MQTT, cred: credCert, now: now}
	if err := d.setChain([]byte(er.Certificate), key); err != nil {
		ks.Delete(ksKey)
		return nil, err
	}
	ks.Put(ksID, []byte(er.DeviceID))
	ks.Put(ksHub, []byte(e.Hub))
	ks.Put(ksMQTT, []byte(e.MQTT))
	ks.Put(ksRoot, encodePEMCerts(roots...))
	ks.Put(ksChain, []byte(er.Certificate))
	ks.Put(ksCredential, []byte(credCert))
	if err := ks.Commit(); err != nil {
		return nil, fmt.Errorf("storing the enrolled identity: %w", err)
	}
	d.anchor, _ = newAnchor(Trust{CABundle: encodePEMCerts(roots...)})
	return d, nil
}

// SecretProvisioning describes a device without X.509: the hub gave its
// operator a device ID and a one-time secret (POST /api/v1/devices with
// credential "secret"), which the factory writes into the keystore. The
// device must replace the secret before anything else; Connect does that.
type SecretProvisioning struct {
	DeviceID string
	Secret   keystore.Secret
	Hub      string // optional https://HOST:PORT
	MQTT     string // HOST:PORT
	Trust    Trust  // must include the CA bundle: no HTTPS exchange happens to pin a fingerprint
}

// ProvisionSecret stores a secret device's identity in ks, marked
// must_rotate.
func ProvisionSecret(ks *keystore.Store, p SecretProvisioning) (*Device, error) {
	if p.DeviceID == "" || p.Secret.IsZero() || p.MQTT == "" {
		return nil, errors.New("secret provisioning needs a device ID, a secret and the MQTT address")
	}
	if len(p.Trust.CABundle) == 0 {
		return nil, errors.New("secret provisioning needs the hub's CA bundle")
	}
	a, err := newAnchor(p.Trust)
	if err != nil {
		return nil, err
	}
	ks.Put(ksID, []byte(p.DeviceID))
	ks.Put(ksHub, []byte(p.Hub))
	ks.Put(ksMQTT, []byte(p.MQTT))
	ks.Put(ksRoot, encodePEMCerts(a.rootCerts()...))
	ks.Put(ksCredential, []byte(credSecret))
	ks.PutSecret(ksSecret, p.Secret)
	ks.Put(ksMustRotate, []byte(mustRotateYes))
	if err := ks.Commit(); err != nil {
		return nil, err
	}
	return Load(ks)
}
