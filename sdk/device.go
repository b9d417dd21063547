package sdk

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/sdk/keystore"
)

// Names of the SDK's entries in the keystore.
const (
	ksKey         = "device.key"      // the certificate's private key
	ksNextKey     = "device.key.next" // a renewal's key, until its certificate arrives
	ksChain       = "device.chain"    // PEM: leaf, device intermediate, root
	ksID          = "device.id"
	ksHub         = "hub.url"
	ksMQTT        = "hub.mqtt"
	ksRoot        = "hub.ca" // PEM trust anchor (the bundle, or the root pinned by fingerprint)
	ksSecret      = "mqtt.secret"
	ksNextSecret  = "mqtt.secret.next" // chosen, sent, not yet confirmed
	ksMustRotate  = "mqtt.must_rotate"
	ksCredential  = "device.credential" // "certificate" or "secret"
	credCert      = "certificate"
	credSecret    = "secret"
	mustRotateYes = "1"
)

// Sentinel errors.
var (
	// ErrNotEnrolled: the keystore holds no device identity (run Enroll or
	// ProvisionSecret first).
	ErrNotEnrolled = errors.New("keystore holds no enrolled device")
	// ErrRefused: the hub refused the device's credential (revoked,
	// suspended, unknown, wrong secret).
	ErrRefused = errors.New("hub refused the device's credential")
)

// HubError is an error answer from the hub's API.
type HubError struct {
	Status     int
	Err        api.Error
	RetryAfter time.Duration // from a 429's Retry-After
}

func (e *HubError) Error() string {
	return fmt.Sprintf("hub answered %d %s: %s", e.Status, e.Err.Code, e.Err.Message)
}

// Device is an enrolled device: its identity lives in the keystore.
// Its methods are safe for concurrent use.
type Device struct {
	ks     *keystore.Store
	anchor *anchor
	id     string
	hub    string // https://HOST:PORT, may be empty for a secret device
	mqtt   string // HOST:PORT
	cred   string
	now    func() time.Time

	mu    sync.Mutex
	chain []*x509.Certificate
	tls   *tls.Certificate
}

// Load opens the device identity stored in ks by Enroll or ProvisionSecret.
func Load(ks *keystore.Store) (*Device, error) {
	idb, ok := ks.Get(ksID)
	if !ok {
		return nil, ErrNotEnrolled
	}
	root, ok := ks.Get(ksRoot)
	if !ok {
		return nil, fmt.Errorf("%w: no hub trust anchor stored", ErrNotEnrolled)
	}
	a, err := newAnchor(Trust{CABundle: root})
	if err != nil {
		return nil, err
	}
	hub, _ := ks.Get(ksHub)
	mq, _ := ks.Get(ksMQTT)
	cred, _ := ks.Get(ksCredential)
	d := &Device{ks: ks, anchor: a, id: string(idb), hub: string(hub), mqtt: string(mq), cred: string(cred), now: time.Now}
	if d.cred == credCert {
		chainPEM, ok := ks.Get(ksChain)
		if !ok {
			return nil, fmt.Errorf("%w: no certificate stored", ErrNotEnrolled)
		}
		key, err := ks.Signer(ksKey)
		if err != nil {
			return nil, err
		}
		if err := d.setChain(chainPEM, key); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// ID returns the device ID the hub assigned (also its MQTT client ID).
func (d *Device) ID() string { return d.id }

// HubURL returns the hub's HTTPS base URL.
func (d *Device) HubURL() string { return d.hub }

// MQTTAddr returns the hub's MQTT/TLS HOST:PORT.
func (d *Device) MQTTAddr() string { return d.mqtt }

// Keystore returns the store holding the identity.
func (d *Device) Keystore() *keystore.Store { return d.ks }

// Certificate returns the device's current certificate (nil for a secret
// device).
func (d *Device) Certificate() *x509.Certificate {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.chain) == 0 {
		return nil
	}
	return d.chain[0]
}

// RenewAt is when the current certificate reaches 2/3 of its lifetime.
func (d *Device) RenewAt() time.Time {
	c := d.Certificate()
	if c == nil {
		return time.Time{}
	}
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(time.Duration(float64(life) * renewFraction))
}

func (d *Device) tlsCert() (*tls.Certificate, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tls == nil {
		return &tls.Certificate{}, nil // secret device: no certificate to send
	}
	return d.tls, nil
}

// setChain installs a chain (leaf first) for key after checking that it
// chains to the trust anchor, names this device and matches the key.
func (d *Device) setChain(chainPEM []byte, key crypto.Signer) error {
	chain, err := parsePEMCerts(chainPEM)
	if err != nil {
		return fmt.Errorf("device certificate: %w", err)
	}
	if err := checkLeaf(chain, key, d.anchor, d.id, d.now()); err != nil {
		return err
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		if c.IsCA && c.CheckSignatureFrom(c) == nil {
			continue // the root is the hub's to have; do not send it
		}
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	d.mu.Lock()
	d.chain, d.tls = chain, tc
	d.mu.Unlock()
	return nil
}

func checkLeaf(chain []*x509.Certificate, key crypto.Signer, a *anchor, id string, now time.Time) error {
	leaf := chain[0]
	type eq interface{ Equal(crypto.PublicKey) bool }
	pk, ok := leaf.PublicKey.(eq)
	if !ok || !pk.Equal(key.Public()) {
		return errors.New("the hub's certificate is not for this device's key")
	}
	if id != "" && leaf.Subject.CommonName != id {
		return fmt.Errorf("the hub's certificate names %q, not %q", leaf.Subject.CommonName, id)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	roots := a.rootCerts()
	if roots == nil {
		return errors.New("no trust anchor to check the device certificate against")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool(roots), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("device certificate does not chain to the hub's CA: %w", err)
	}
	return nil
}

// httpClient returns an HTTPS client for the hub, presenting the device
// certificate (or cert, when given) when asked.
func httpClient(a *anchor, hubURL string, now func() time.Time, cert func() (*tls.Certificate, error)) (*http.Client, error) {
	host, err := hostOf(hubURL)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: a.tlsConfig(host, now, cert), ForceAttemptHTTP2: true, Proxy: nil,
		TLSHandshakeTimeout: connectTimeout, MaxIdleConns: 1, IdleConnTimeout: 30 * time.Second}
	return &http.Client{Transport: tr, Timeout: httpTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, nil
}

// post sends body as JSON and decodes a 2xx answer into out. A 429 (the
// hub refused the request before doing anything, e.g. a factory line
// enrolling faster than the per-address limit) is retried after the hub's
// Retry-After plus jitter, a few times.
func post(ctx context.Context, c *http.Client, hubURL, path string, body, out any) error {
	for attempt := 1; ; attempt++ {
		err := postOnce(ctx, c, hubURL, path, body, out)
		var he *HubError
		if !errors.As(err, &he) || he.Status != http.StatusTooManyRequests || attempt >= maxRateLimitedTries {
			return err
		}
		wait := he.RetryAfter
		if wait <= 0 || wait > maxRetryAfter {
			wait = time.Second
		}
		wait += time.Duration(mrand.Int64N(int64(wait))) // full jitter on top: no herd when the window reopens
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func postOnce(ctx context.Context, c *http.Client, hubURL, path string, body, out any) error {
	defer c.CloseIdleConnections()
	j, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(hubURL, "/")+path, bytes.NewReader(j))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("POST %s: reading reply: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb api.ErrorBody
		_ = json.Unmarshal(b, &eb)
		if eb.Error.Code == "" {
			eb.Error = api.Error{Code: api.CodeInternal, Message: http.StatusText(resp.StatusCode)}
		}
		he := &HubError{Status: resp.StatusCode, Err: eb.Error}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			he.RetryAfter = time.Duration(s) * time.Second
		}
		return he
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("POST %s: bad reply: %w", path, err)
	}
	return nil
}

// csrPEM makes a CSR for key. The subject is a placeholder: the hub
// always names the device itself.
func csrPEM(key crypto.Signer, rnd io.Reader) (string, error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "rampart-device"}}
	switch key.Public().(type) {
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return "", errors.New("device key must be ECDSA or Ed25519")
	}
	der, err := x509.CreateCertificateRequest(rnd, tmpl, key)
	if err != nil {
		return "", fmt.Errorf("making CSR: %w", err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})), nil
}

// Renew gets a new certificate for a new key over mutual TLS with the
// current one (POST /api/v1/renew), checks it and commits both to the
// keystore atomically. A live MQTT session keeps running on the old
// certificate (the hub accepts it for an hour after renewal); the next
// connection presents the new one.
func (d *Device) Renew(ctx context.Context) error {
	if d.cred != credCert {
		return errors.New("a secret device has no certificate to renew")
	}
	if d.hub == "" {
		return errors.New("no hub URL stored; cannot renew")
	}
	alg := algOf(d.Certificate().PublicKey)
	next, err := d.ks.GenerateKey(ksNextKey, alg)
	if err != nil {
		return err
	}
	defer d.ks.Delete(ksNextKey) // in memory only, unless committed below after the rename
	csr, err := csrPEM(next, rand.Reader)
	if err != nil {
		return err
	}
	c, err := httpClient(d.anchor, d.hub, d.now, d.tlsCert)
	if err != nil {
		return err
	}
	var er api.EnrollResponse
	if err := post(ctx, c, d.hub, "/api/v1/renew", api.CSRRequest{CSR: csr}, &er); err != nil {
		return fmt.Errorf("renewing certificate: %w", err)
	}
	if er.DeviceID != d.id {
		return fmt.Errorf("renewal answered for device %q, not %q", er.DeviceID, d.id)
	}
	chain, err := parsePEMCerts([]byte(er.Certificate))
	if err != nil {
		return fmt.Errorf("renewed certificate: %w", err)
	}
	if err := checkLeaf(chain, next, d.anchor, d.id, d.now()); err != nil {
		return err
	}
	if err := d.ks.RenameKey(ksNextKey, ksKey); err != nil {
		return err
	}
	d.ks.Put(ksChain, []byte(er.Certificate))
	if err := d.ks.Commit(); err != nil {
		return fmt.Errorf("storing renewed certificate: %w", err)
	}
	return d.setChain([]byte(er.Certificate), next)
}

func algOf(pub crypto.PublicKey) keystore.Algorithm {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve.Params().BitSize == 384 {
			return keystore.P384
		}
	case ed25519.PublicKey:
		return keystore.Ed25519
	}
	return keystore.P256
}

// newSecret draws a device-chosen MQTT secret.
func newSecret(rnd io.Reader) (keystore.Secret, error) {
	b := make([]byte, secretBytes)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return keystore.Secret{}, err
	}
	return keystore.NewSecret(base64.RawURLEncoding.EncodeToString(b)), nil
}
