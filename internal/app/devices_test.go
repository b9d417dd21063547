package app

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/testkit"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// --- helpers ---

func p256(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrPEM makes a CSR for key whose subject and URI SAN name claimedID (the
// hub must ignore both).
func csrPEM(t testing.TB, key crypto.Signer, claimedID string) string {
	t.Helper()
	u, _ := url.Parse("urn:rampart:device:" + claimedID)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: claimedID}, URIs: []*url.URL{u}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func decodeJSON[T any](t testing.TB, r reply) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decoding %s: %v", r.body, err)
	}
	return v
}

func (h *testHub) createDevice(token, name, credential string) api.Device {
	h.t.Helper()
	r := h.do("POST", "/api/v1/devices", token, api.CreateDeviceRequest{Name: name, Credential: credential})
	if r.status != http.StatusCreated {
		h.t.Fatalf("create device: %d %s", r.status, r.body)
	}
	return decodeJSON[api.Device](h.t, r)
}

func (h *testHub) device(token, id string) api.Device {
	h.t.Helper()
	r := h.do("GET", "/api/v1/devices/"+id, token, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("get device %s: %d %s", id, r.status, r.body)
	}
	return decodeJSON[api.Device](h.t, r)
}

func (h *testHub) expect(r reply, status int, code api.Code, what string) {
	h.t.Helper()
	if r.status != status || (code != "" && r.errCode() != code) {
		h.t.Fatalf("%s: got %d %s, want %d %s", what, r.status, r.body, status, code)
	}
}

// parseChain reads the enrollment reply's PEM chain.
func parseChain(t testing.TB, chain string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(chain)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	if len(out) != 3 {
		t.Fatalf("chain has %d certificates, want leaf, device CA, root", len(out))
	}
	return out
}

// enrolled is a device identity as the device holds it.
type enrolled struct {
	id    string
	chain []*x509.Certificate
	key   crypto.Signer
}

func (e enrolled) tlsCert() *tls.Certificate {
	return &tls.Certificate{Certificate: [][]byte{e.chain[0].Raw, e.chain[1].Raw}, PrivateKey: e.key, Leaf: e.chain[0]}
}

func (h *testHub) enrollToken(token string, key crypto.Signer) enrolled {
	h.t.Helper()
	r := h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: token, CSR: csrPEM(h.t, key, "whatever")})
	h.expect(r, http.StatusOK, "", "enroll")
	er := decodeJSON[api.EnrollResponse](h.t, r)
	return enrolled{id: er.DeviceID, chain: parseChain(h.t, er.Certificate), key: key}
}

// mtls returns a client presenting cert (nil: none) to the hub.
func (h *testHub) mtls(cert *tls.Certificate) *http.Client {
	h.t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(h.cfg.DataDir, "ca.pem"))
	if err != nil {
		h.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	cfg, err := tlsconf.Client(tlsconf.ClientOptions{RootCAs: pool, Certificate: cert})
	if err != nil {
		h.t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
	h.t.Cleanup(c.CloseIdleConnections)
	return c
}

func (h *testHub) post(c *http.Client, path string, body any) reply {
	h.t.Helper()
	j, _ := json.Marshal(body)
	resp, err := c.Post("https://"+h.addr+path, "application/json", bytes.NewReader(j))
	if err != nil {
		h.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func (h *testHub) findings(token string) []api.Finding {
	h.t.Helper()
	r := h.do("GET", "/api/v1/findings", token, nil)
	h.expect(r, http.StatusOK, "", "findings")
	return decodeJSON[api.FindingList](h.t, r).Findings
}

// journalActions stops the hub and returns the journal's actions in order.
func (h *testHub) journalActions() []string {
	h.t.Helper()
	if err := h.stop(); err != nil {
		h.t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ExportJournal(h.t.Context(), h.cfg, &buf); err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var e struct {
			Action  string `json:"action"`
			Outcome string `json:"outcome"`
		}
		_ = json.Unmarshal([]byte(line), &e)
		out = append(out, e.Action+"/"+e.Outcome)
	}
	return out
}

func wantActions(t *testing.T, got []string, want ...string) {
	t.Helper()
	all := strings.Join(got, " ")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("journal lacks %s; has: %s", w, all)
		}
	}
}

// --- tests ---

// The enrollment token: single use, expires, bound to its device; the CSR
// must prove possession with an allowed key; names come from the hub.
func TestEnrollmentTokenAttacks(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	h := startHub(t, testConfig(t, t.TempDir()), WithClock(clock.Now))
	tok := h.setupAndLogin()

	a := h.createDevice(tok, "pump A", "")
	b := h.createDevice(tok, "pump B", "")
	if a.ID == "" || a.ID == b.ID || !strings.HasPrefix(a.EnrollmentToken, "rpe_") || len(a.EnrollmentToken) < 4+26 || a.Status != "pending" {
		t.Fatalf("created device: %+v", a)
	}
	if got := h.device(tok, a.ID); got.EnrollmentToken != "" || got.Status != "pending" {
		t.Fatalf("GET shows the token again or wrong status: %+v", got)
	}

	// No credential at all: refused like any unauthenticated request.
	h.expect(h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "enroll without token")
	h.expect(h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: "rpe_guess", CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "guessed token")

	// Weak keys and bad signatures: 400, and the token still works after.
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	good := csrPEM(t, p256(t), "x")
	blk, _ := pem.Decode([]byte(good))
	blk.Bytes[len(blk.Bytes)-3] ^= 0x55
	tampered := string(pem.EncodeToMemory(blk))
	for name, csr := range map[string]string{"p224": csrPEM(t, p224, "x"), "rsa1024": csrPEM(t, rsa1024, "x"),
		"bad_signature": tampered, "not_pem": "hello", "empty": ""} {
		r := h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: a.EnrollmentToken, CSR: csr})
		h.expect(r, 400, api.CodeInvalid, "fail/"+name)
	}
	if got := h.device(tok, a.ID); got.Status != "pending" {
		t.Fatalf("a refused CSR changed the device: %+v", got)
	}

	// A's token with a CSR naming B: the certificate names A.
	e := h.enrollToken(a.EnrollmentToken, p256(t))
	leaf := e.chain[0]
	if e.id != a.ID || leaf.Subject.CommonName != a.ID || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "urn:rampart:device:"+a.ID {
		t.Fatalf("certificate names %q %v, want %s only", leaf.Subject.CommonName, leaf.URIs, a.ID)
	}
	if got := leaf.NotAfter.Sub(clock.Now()); got < 29*24*time.Hour || got > 30*24*time.Hour+time.Minute {
		t.Fatalf("certificate lifetime %s, want 30 days", got)
	}
	rootPEM, _ := os.ReadFile(filepath.Join(h.cfg.DataDir, "ca.pem"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	inter := x509.NewCertPool()
	inter.AddCert(e.chain[1])
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("device certificate does not chain to ca.pem: %v", err)
	}
	if got := h.device(tok, a.ID); got.Status != "active" || got.CertificateSerial == "" {
		t.Fatalf("after enrollment: %+v", got)
	}
	if got := h.device(tok, b.ID); got.Status != "pending" {
		t.Fatalf("enrolling A touched B: %+v", got)
	}

	// Reuse: refused, nothing issued.
	before := h.device(tok, a.ID)
	h.expect(h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: a.EnrollmentToken, CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "reused token")
	if after := h.device(tok, a.ID); after.CertificateSerial != before.CertificateSerial {
		t.Fatal("a reused token issued a certificate")
	}

	// Expiry (default 24h): B's token is dead after 25 hours; a fresh one works.
	clock.Advance(25 * time.Hour)
	tok = h.login(ownerEmail, ownerPassword) // the session expired meanwhile
	h.expect(h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: b.EnrollmentToken, CSR: csrPEM(t, p256(t), "x")}), 410, api.CodeExpired, "expired token")
	r := h.do("POST", "/api/v1/devices/"+b.ID+"/token", tok, nil)
	h.expect(r, 201, "", "new token")
	fresh := decodeJSON[api.Device](t, r)
	h.enrollToken(fresh.EnrollmentToken, edKey(t))
	h.expect(h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: b.EnrollmentToken, CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "old token after reissue")

	// Tenant scoping: unknown IDs answer 404; devices routes need a bearer token.
	h.expect(h.do("GET", "/api/v1/devices/dev_nosuchdevice", tok, nil), 404, api.CodeNotFound, "unknown device")
	h.expect(h.do("GET", "/api/v1/devices", "", nil), 401, api.CodeUnauthenticated, "list without token")
	h.expect(h.do("POST", "/api/v1/devices", "", api.CreateDeviceRequest{Name: "x"}), 401, api.CodeUnauthenticated, "create without token")
	list := decodeJSON[api.DeviceList](t, h.do("GET", "/api/v1/devices", tok, nil))
	if len(list.Devices) != 2 {
		t.Fatalf("list: %+v", list)
	}
	for _, d := range list.Devices {
		if d.EnrollmentToken != "" || d.Secret != "" {
			t.Fatal("list shows a credential")
		}
	}

	acts := h.journalActions()
	wantActions(t, acts, "device.created/success", "device.enrolled/success", "device.enroll_refused/denied", "device.token_created/success")
	if strings.Contains(h.stderr.String(), a.EnrollmentToken) || strings.Contains(h.stderr.String(), fresh.EnrollmentToken) {
		t.Fatal("an enrollment token reached the log")
	}
}

func edKey(t testing.TB) crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Renewal needs the current certificate over mTLS; another hub's device
// certificate, no certificate and a revoked one are refused; revocation
// shows in the signed CRL at once.
func TestRenewAndRevokeOverMutualTLS(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	tok := h.setupAndLogin()
	d := h.createDevice(tok, "meter", "")
	e := h.enrollToken(d.EnrollmentToken, p256(t))

	// No client certificate: 401.
	h.expect(h.post(h.mtls(nil), "/api/v1/renew", api.CSRRequest{CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "renew without certificate")
	// Another hub's CA issuing a certificate that names this very device.
	other := testkit.NewCA(t, "Rampart Device CA (another hub)").Device(t, e.id)
	h.expect(h.post(h.mtls(&other.TLS), "/api/v1/renew", api.CSRRequest{CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "another hub's certificate")
	// The hub's own server certificate chains to the root but is no device.
	// A bearer token is no substitute either.
	h.expect(h.do("POST", "/api/v1/renew", tok, api.CSRRequest{CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "renew with a bearer token")

	// A device certificate is no login for operator routes.
	if resp, err := h.mtls(e.tlsCert()).Get("https://" + h.addr + "/api/v1/devices"); err != nil || resp.StatusCode != 401 {
		t.Fatalf("device certificate on an operator route: %v %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}

	// Renewal with the current certificate: a new certificate for a new key.
	newKey := p256(t)
	r := h.post(h.mtls(e.tlsCert()), "/api/v1/renew", api.CSRRequest{CSR: csrPEM(t, newKey, "someone-else")})
	h.expect(r, 200, "", "renew")
	er := decodeJSON[api.EnrollResponse](t, r)
	renewed := enrolled{id: er.DeviceID, chain: parseChain(t, er.Certificate), key: newKey}
	if renewed.id != e.id || renewed.chain[0].Subject.CommonName != e.id || renewed.chain[0].SerialNumber.Cmp(e.chain[0].SerialNumber) == 0 {
		t.Fatalf("renewal returned %s / %s", renewed.id, renewed.chain[0].Subject.CommonName)
	}
	// A renewal CSR with a weak key is refused.
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	h.expect(h.post(h.mtls(renewed.tlsCert()), "/api/v1/renew", api.CSRRequest{CSR: csrPEM(t, p224, "x")}), 400, api.CodeInvalid, "renew with P-224")

	// Revoke: takes effect at once for every certificate of the device.
	h.expect(h.do("POST", "/api/v1/devices/"+e.id+"/revoke", tok, api.RevokeRequest{Reason: "stolen"}), 200, "", "revoke")
	if got := h.device(tok, e.id); got.Status != "revoked" {
		t.Fatalf("status after revoke: %s", got.Status)
	}
	for i := 0; i < 3; i++ {
		h.expect(h.post(h.mtls(renewed.tlsCert()), "/api/v1/renew", api.CSRRequest{CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "renew with a revoked certificate")
	}
	h.expect(h.do("POST", "/api/v1/devices/"+e.id+"/revoke", tok, nil), 409, api.CodeConflict, "revoke twice")

	// The signed CRL, public, lists both certificates.
	resp, err := h.mtls(nil).Get("https://" + h.addr + "/pki/crl")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET /pki/crl: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(e.chain[1]); err != nil {
		t.Fatalf("CRL not signed by the device CA: %v", err)
	}
	listed := map[string]bool{}
	for _, rc := range crl.RevokedCertificateEntries {
		listed[rc.SerialNumber.String()] = true
	}
	if !listed[e.chain[0].SerialNumber.String()] || !listed[renewed.chain[0].SerialNumber.String()] {
		t.Fatalf("CRL misses a revoked certificate: %v", listed)
	}

	// Three attempts by the revoked identity raise a finding.
	found := false
	for _, f := range h.findings(tok) {
		found = found || (f.Kind == "revoked_identity_seen" && f.DeviceID == e.id)
	}
	if !found {
		t.Fatalf("no finding for a revoked identity that keeps trying: %+v", h.findings(tok))
	}
	wantActions(t, h.journalActions(), "device.renewed/success", "device.renew_refused/denied", "device.revoked/success", "finding.raised/denied")
}

// A claim: a batch credential whose only power is to be exchanged for new
// unique identities, within its limits.
func TestClaimEnrollment(t *testing.T) {
	clock := testkit.NewClock(time.Now())
	h := startHub(t, testConfig(t, t.TempDir()), WithClock(clock.Now))
	tok := h.setupAndLogin()
	r := h.do("POST", "/api/v1/claims", tok, api.CreateClaimRequest{Name: "batch 7", Model: "T-100", MaxUses: 2, TTL: "48h", Serials: []string{"SN1", "SN2", "SN3"}})
	h.expect(r, 201, "", "create claim")
	c := decodeJSON[api.Claim](t, r)
	if !strings.HasPrefix(c.Token, "rpc_") {
		t.Fatalf("claim: %+v", c)
	}
	use := func(serial string) reply {
		return h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Claim: c.Token, SerialNumber: serial, CSR: csrPEM(t, p256(t), "x")})
	}
	r = use("SN1")
	h.expect(r, 200, "", "first use")
	first := decodeJSON[api.EnrollResponse](t, r)
	h.expect(use("SN1"), 409, api.CodeConflict, "same serial twice")
	h.expect(use("SN9"), 403, api.CodeForbidden, "serial not on the allow-list")
	h.expect(use(""), 400, api.CodeInvalid, "no serial with an allow-list")
	r = use("SN2")
	h.expect(r, 200, "", "second use")
	second := decodeJSON[api.EnrollResponse](t, r)
	if first.DeviceID == second.DeviceID {
		t.Fatal("a claim gave two devices the same identity")
	}
	h.expect(use("SN3"), 403, api.CodeForbidden, "beyond max_uses")
	if d := h.device(tok, first.DeviceID); d.Status != "active" || d.Method != "claim" || d.SerialNumber != "SN1" || d.Model != "T-100" {
		t.Fatalf("claimed device: %+v", d)
	}

	// A claim is no login: not as a bearer token, not as a device secret.
	h.expect(h.do("GET", "/api/v1/devices", c.Token, nil), 401, api.CodeUnauthenticated, "claim as bearer token")
	h.expect(h.do("POST", "/api/v1/device-secret", "", api.RotateSecretRequest{DeviceID: c.ID, Secret: c.Token, NewSecret: strings.Repeat("x", 40)}), 401, api.CodeUnauthenticated, "claim as device secret")
	h.expect(h.do("POST", "/api/v1/device-secret", "", api.RotateSecretRequest{DeviceID: first.DeviceID, Secret: c.Token, NewSecret: strings.Repeat("x", 40)}), 401, api.CodeUnauthenticated, "claim as a device's secret")

	// Expired.
	r = h.do("POST", "/api/v1/claims", tok, api.CreateClaimRequest{Name: "short", MaxUses: 5, TTL: "1h"})
	short := decodeJSON[api.Claim](t, r)
	clock.Advance(2 * time.Hour)
	tok = h.login(ownerEmail, ownerPassword) // sessions have an idle limit
	h.expect(h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Claim: short.Token, CSR: csrPEM(t, p256(t), "x")}), 410, api.CodeExpired, "expired claim")
	// Revoked.
	r = h.do("POST", "/api/v1/claims", tok, api.CreateClaimRequest{Name: "revoked", MaxUses: 5, TTL: "1h"})
	rc := decodeJSON[api.Claim](t, r)
	h.expect(h.do("POST", "/api/v1/claims/"+rc.ID+"/revoke", tok, nil), 200, "", "revoke claim")
	h.expect(h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Claim: rc.Token, CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "revoked claim")

	list := decodeJSON[api.ClaimList](t, h.do("GET", "/api/v1/claims", tok, nil))
	for _, cl := range list.Claims {
		if cl.Token != "" {
			t.Fatal("claim list shows a token")
		}
		if cl.ID == c.ID && cl.Uses != 2 {
			t.Fatalf("claim uses %d, want 2", cl.Uses)
		}
	}
	wantActions(t, h.journalActions(), "claim.created/success", "claim.used/success", "claim.use_refused/denied", "claim.revoked/success")
}

// manufacturer is a factory CA for the attestation tests.
type manufacturer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newManufacturer(t testing.TB, notBefore, notAfter time.Time) manufacturer {
	k := p256(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Acme Factory CA", Organization: []string{"Acme"}},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return manufacturer{cert: c, key: k}
}

func (m manufacturer) pem() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: m.cert.Raw}))
}

// factory issues an IDevID-style factory certificate: serial number and
// model (OU) in the subject.
func (m manufacturer) factory(t testing.TB, serial, model string, notBefore, notAfter time.Time) *tls.Certificate {
	k := p256(t)
	sn, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: sn, Subject: pkix.Name{CommonName: "Acme device", SerialNumber: serial, OrganizationalUnit: []string{model}},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	issuer, signer := m.cert, crypto.Signer(m.key)
	if m.key == nil { // self-signed
		issuer, signer = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, k.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: c}
}

// Manufacturer attestation: only factory certificates of a registered CA,
// valid, for the registered model, and once per factory identity.
func TestAttestedEnrollment(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	tok := h.setupAndLogin()
	now := time.Now()
	acme := newManufacturer(t, now.Add(-365*24*time.Hour), now.Add(10*365*24*time.Hour))
	r := h.do("POST", "/api/v1/manufacturers", tok, api.CreateManufacturerRequest{Name: "Acme", Model: "T-100", CAPEM: acme.pem()})
	h.expect(r, 201, "", "register manufacturer")
	h.expect(h.do("POST", "/api/v1/manufacturers", tok, api.CreateManufacturerRequest{Name: "x", Model: "y", CAPEM: "junk"}), 400, api.CodeInvalid, "bad CA PEM")

	attest := func(cert *tls.Certificate) reply {
		return h.post(h.mtls(cert), "/api/v1/enroll/attest", api.CSRRequest{CSR: csrPEM(t, p256(t), "x")})
	}
	valid := func() (time.Time, time.Time) { return now.Add(-24 * time.Hour), now.Add(5 * 365 * 24 * time.Hour) }
	nb, na := valid()

	h.expect(attest(nil), 401, api.CodeUnauthenticated, "no factory certificate")
	rogue := newManufacturer(t, nb, na)
	for _, tc := range []struct {
		name, why string
		cert      *tls.Certificate
	}{
		{"fail/unregistered_ca", "not issued by a registered manufacturer CA", rogue.factory(t, "SN1", "T-100", nb, na)},
		{"fail/self_signed", "self-signed", manufacturer{}.factory(t, "SN1", "T-100", nb, na)},
		{"fail/expired", "expired", acme.factory(t, "SN1", "T-100", now.Add(-48*time.Hour), now.Add(-time.Hour))},
		{"fail/other_model", "model", acme.factory(t, "SN1", "T-999", nb, na)},
		{"fail/issued_before_the_ca_existed", "not issued by a registered", acme.factory(t, "SN1", "T-100", now.Add(-2*365*24*time.Hour), na)},
	} {
		r := attest(tc.cert)
		h.expect(r, 401, api.CodeUnauthenticated, tc.name)
		if !strings.Contains(string(r.body), tc.why) {
			t.Errorf("%s: refused for another reason: %s", tc.name, r.body)
		}
	}

	r = attest(acme.factory(t, "SN1", "T-100", nb, na))
	h.expect(r, 200, "", "genuine device")
	first := decodeJSON[api.EnrollResponse](t, r)
	d := h.device(tok, first.DeviceID)
	if d.Method != "attestation" || d.SerialNumber != "SN1" || d.Model != "T-100" || d.Status != "active" {
		t.Fatalf("attested device: %+v", d)
	}
	// Same factory identity, another key (a clone): refused, finding raised.
	h.expect(attest(acme.factory(t, "SN1", "T-100", nb, na)), 409, api.CodeConflict, "second key for an enrolled factory identity")
	var clone api.Finding
	for _, f := range h.findings(tok) {
		if f.Kind == "possible_clone" && f.DeviceID == first.DeviceID {
			clone = f
		}
	}
	if clone.ID == "" {
		t.Fatal("no possible_clone finding")
	}
	// An admin approves a re-provision (board swap): the same device gets a
	// new certificate, the old one is revoked.
	h.expect(h.do("POST", "/api/v1/findings/"+clone.ID+"/approve", tok, nil), 200, "", "approve re-provision")
	r = attest(acme.factory(t, "SN1", "T-100", nb, na))
	h.expect(r, 200, "", "re-provision")
	again := decodeJSON[api.EnrollResponse](t, r)
	if again.DeviceID != first.DeviceID {
		t.Fatalf("re-provision made a new device %s, want %s", again.DeviceID, first.DeviceID)
	}
	// The approval is spent.
	h.expect(attest(acme.factory(t, "SN1", "T-100", nb, na)), 409, api.CodeConflict, "approval used twice")
	wantActions(t, h.journalActions(), "manufacturer.registered/success", "device.attest_refused/denied", "finding.raised/denied",
		"finding.reprovision_approved/success", "device.enrolled/success")
}

// A device that cannot do X.509 gets a unique secret that can do nothing
// until the device replaces it.
func TestSecretDeviceMustRotateFirst(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	tok := h.setupAndLogin()
	d := h.createDevice(tok, "legacy sensor", "secret")
	d2 := h.createDevice(tok, "legacy sensor 2", "secret")
	if d.Secret == "" || d.Secret == d2.Secret || d.EnrollmentToken != "" || !d.MustRotate || d.Status != "pending" {
		t.Fatalf("secret device: %+v", d)
	}
	if got := h.device(tok, d.ID); got.Secret != "" {
		t.Fatal("GET shows the secret again")
	}
	newSecret := strings.Repeat("k", 20) + "0123456789abcdef"
	rot := func(id, cur, next string) reply {
		return h.do("POST", "/api/v1/device-secret", "", api.RotateSecretRequest{DeviceID: id, Secret: cur, NewSecret: next})
	}
	h.expect(rot(d.ID, d2.Secret, newSecret), 401, api.CodeUnauthenticated, "another device's secret")
	h.expect(rot(d.ID, d.Secret, "short"), 400, api.CodeInvalid, "short new secret")
	h.expect(rot(d.ID, d.Secret, d.Secret), 400, api.CodeInvalid, "same secret")
	if got := h.device(tok, d.ID); got.Status != "pending" || !got.MustRotate {
		t.Fatalf("refused rotation changed the device: %+v", got)
	}
	h.expect(rot(d.ID, d.Secret, newSecret), 200, "", "rotate")
	if got := h.device(tok, d.ID); got.Status != "active" || got.MustRotate {
		t.Fatalf("after rotation: %+v", got)
	}
	h.expect(rot(d.ID, d.Secret, newSecret+"x"), 401, api.CodeUnauthenticated, "initial secret after rotation")
	// Revocation deletes the credential.
	h.expect(h.do("POST", "/api/v1/devices/"+d.ID+"/revoke", tok, nil), 200, "", "revoke")
	h.expect(rot(d.ID, newSecret, newSecret+"x"), 401, api.CodeUnauthenticated, "secret of a revoked device")
	wantActions(t, h.journalActions(), "device.secret_rotated/success", "device.secret_rotate_refused/denied")
}

// Lifecycle moves: suspend, quarantine, reactivate, decommission.
func TestDeviceLifecycle(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	tok := h.setupAndLogin()
	d := h.createDevice(tok, "valve", "")
	h.expect(h.do("POST", "/api/v1/devices/"+d.ID+"/suspend", tok, nil), 409, api.CodeConflict, "suspend a pending device")
	e := h.enrollToken(d.EnrollmentToken, p256(t))
	for _, step := range []struct{ action, want string }{{"suspend", "suspended"}, {"reactivate", "active"}, {"quarantine", "quarantined"}, {"reactivate", "active"}} {
		r := h.do("POST", "/api/v1/devices/"+d.ID+"/"+step.action, tok, nil)
		h.expect(r, 200, "", step.action)
		if got := decodeJSON[api.Device](t, r).Status; got != step.want {
			t.Fatalf("%s: status %s", step.action, got)
		}
	}
	// A suspended device cannot renew.
	h.do("POST", "/api/v1/devices/"+d.ID+"/suspend", tok, nil)
	h.expect(h.post(h.mtls(e.tlsCert()), "/api/v1/renew", api.CSRRequest{CSR: csrPEM(t, p256(t), "x")}), 403, api.CodeForbidden, "renew while suspended")
	h.expect(h.do("DELETE", "/api/v1/devices/"+d.ID, tok, nil), 200, "", "decommission")
	if got := h.device(tok, d.ID); got.Status != "decommissioned" {
		t.Fatalf("after decommission: %s", got.Status)
	}
	h.expect(h.do("POST", "/api/v1/devices/"+d.ID+"/reactivate", tok, nil), 409, api.CodeConflict, "reactivate a decommissioned device")
	h.expect(h.post(h.mtls(e.tlsCert()), "/api/v1/renew", api.CSRRequest{CSR: csrPEM(t, p256(t), "x")}), 401, api.CodeUnauthenticated, "renew after decommission")
}

// A real client: openssl makes the key and the CSR; the hub's chain
// verifies with openssl against ca.pem.
func TestEnrollWithOpenSSL(t *testing.T) {
	openssl := testkit.NeedTool(t, "openssl")
	h := startHub(t, testConfig(t, t.TempDir()))
	tok := h.setupAndLogin()
	d := h.createDevice(tok, "openssl device", "")
	dir := t.TempDir()
	key, csr := filepath.Join(dir, "key.pem"), filepath.Join(dir, "csr.pem")
	out, err := exec.Command(openssl, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=i-am-someone-else", "-keyout", key, "-out", csr).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	csrBytes, _ := os.ReadFile(csr)
	r := h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: d.EnrollmentToken, CSR: string(csrBytes)})
	h.expect(r, 200, "", "enroll with an openssl CSR")
	er := decodeJSON[api.EnrollResponse](t, r)
	chain := parseChain(t, er.Certificate)
	leafPath, interPath := filepath.Join(dir, "leaf.pem"), filepath.Join(dir, "inter.pem")
	os.WriteFile(leafPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[0].Raw}), 0o600)
	os.WriteFile(interPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: chain[1].Raw}), 0o600)
	out, err = exec.Command(openssl, "verify", "-CAfile", filepath.Join(h.cfg.DataDir, "ca.pem"), "-untrusted", interPath,
		"-purpose", "sslclient", leafPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	out, err = exec.Command(openssl, "x509", "-in", leafPath, "-noout", "-subject", "-ext", "subjectAltName").CombinedOutput()
	if err != nil || !strings.Contains(string(out), d.ID) || strings.Contains(string(out), "someone-else") {
		t.Fatalf("openssl x509: %v\n%s", err, out)
	}
}
