package devices_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/pki"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/store/sqlite"
	"github.com/rampart-iot/rampart/internal/testkit"
)

type events struct {
	mu  sync.Mutex
	all []journal.Event
}

func (e *events) Record(_ context.Context, ev journal.Event) error {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	return nil
}

func (e *events) count(action string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Action == action {
			n++
		}
	}
	return n
}

type vault map[string][]byte

func (v vault) Get(_ context.Context, n string) ([]byte, error) {
	b, ok := v[n]
	if !ok {
		return nil, secrets.ErrNotFound
	}
	return b, nil
}
func (v vault) Put(_ context.Context, n string, b []byte) error { v[n] = b; return nil }

type disconnects struct {
	mu  sync.Mutex
	got []string
}

func (d *disconnects) Disconnect(id, remote, reason string) {
	d.mu.Lock()
	d.got = append(d.got, id+"|"+remote)
	d.mu.Unlock()
}

type fixture struct {
	svc   *devices.Service
	clock *testkit.Clock
	ev    *events
	disc  *disconnects
}

func newFixture(t testing.TB, policy devices.ClonePolicy) fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := testkit.NewClock(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	root, _, err := pki.NewRoot(clock.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dca, _, err := pki.LoadOrCreateDeviceCA(ctx, pki.Options{Vault: vault{}, NotFound: func(err error) bool { return errors.Is(err, secrets.ErrNotFound) },
		Now: clock.Now, Rand: rand.Reader}, root)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	svc, err := devices.New(devices.Options{Store: db.Devices(), CA: dca, Journal: ev, Now: clock.Now, Rand: rand.Reader, ClonePolicy: policy})
	if err != nil {
		t.Fatal(err)
	}
	d := &disconnects{}
	svc.SetDisconnector(d)
	return fixture{svc: svc, clock: clock, ev: ev, disc: d}
}

func csr(t testing.TB) ([]byte, *ecdsa.PrivateKey) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), k
}

func (f fixture) enrolled(t testing.TB, tenant string) devices.Enrolled {
	t.Helper()
	ctx := context.Background()
	c, err := f.svc.Create(ctx, tenant, "user:test", devices.CreateRequest{Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := csr(t)
	e, err := f.svc.EnrollToken(ctx, c.Token, p, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func code(err error) api.Code {
	if err == nil {
		return ""
	}
	return api.ErrorCode(err)
}

func TestAnotherTenantsDeviceIsNotFound(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	e := f.enrolled(t, "ten_a")
	if _, err := f.svc.Get(ctx, "ten_b", e.Device.ID); code(err) != api.CodeNotFound {
		t.Fatalf("Get from another tenant: %v", err)
	}
	if _, err := f.svc.Get(ctx, "ten_b", "dev_missing"); code(err) != api.CodeNotFound {
		t.Fatalf("Get missing: %v", err)
	}
	for name, err := range map[string]error{
		"revoke": func() error { _, err := f.svc.Revoke(ctx, "ten_b", "u", e.Device.ID, ""); return err }(),
		"suspend": func() error {
			_, err := f.svc.SetStatus(ctx, "ten_b", "u", e.Device.ID, devices.StatusSuspended)
			return err
		}(),
		"decommission": func() error { _, err := f.svc.Decommission(ctx, "ten_b", "u", e.Device.ID); return err }(),
		"token":        func() error { _, _, err := f.svc.NewEnrollmentToken(ctx, "ten_b", "u", e.Device.ID); return err }(),
	} {
		if code(err) != api.CodeNotFound {
			t.Errorf("%s from another tenant: %v", name, err)
		}
	}
	if l, _ := f.svc.List(ctx, "ten_b"); len(l) != 0 {
		t.Fatalf("tenant b lists %d devices", len(l))
	}
	if d, _ := f.svc.Get(ctx, "ten_a", e.Device.ID); d.Status != devices.StatusActive {
		t.Fatalf("another tenant changed the device: %s", d.Status)
	}
}

// Ten devices racing with one token: exactly one certificate.
func TestTokenIsSingleUseUnderRace(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	c, err := f.svc.Create(ctx, "ten", "u", devices.CreateRequest{Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := csr(t)
			if _, err := f.svc.EnrollToken(ctx, c.Token, p, "10.0.0.1"); err == nil {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d enrollments succeeded with one token", ok.Load())
	}
	certs, _ := f.svc.Certificates(ctx, "ten", c.Device.ID)
	if len(certs) != 1 {
		t.Fatalf("%d certificates issued", len(certs))
	}
}

func TestAuthorizeFollowsTheRegistry(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	e := f.enrolled(t, "ten")
	id, fp := e.Device.ID, e.Cert.Fingerprint
	if d, err := f.svc.Authorize(ctx, id, fp); err != nil || d.TenantID != "ten" {
		t.Fatalf("active device: %v", err)
	}
	if d, err := f.svc.AuthorizeCert(ctx, e.Cert.Cert); err != nil || d.ID != id {
		t.Fatalf("AuthorizeCert: %v", err)
	}
	if _, err := f.svc.Authorize(ctx, id, "00"); err == nil {
		t.Fatal("a certificate the hub did not issue to this device passed")
	}
	// Renewal: the old certificate keeps working for the grace hour only.
	p, _ := csr(t)
	r, err := f.svc.Renew(ctx, []*x509.Certificate{e.Cert.Cert}, p, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authorize(ctx, id, fp); err != nil {
		t.Fatalf("old certificate refused right after renewal: %v", err)
	}
	f.clock.Advance(2 * time.Hour)
	if _, err := f.svc.Authorize(ctx, id, fp); err == nil {
		t.Fatal("superseded certificate still accepted after the grace period")
	}
	fp = r.Cert.Fingerprint
	// Quarantined: admitted, marked so the broker confines it. Suspended: refused.
	f.svc.SetStatus(ctx, "ten", "u", id, devices.StatusQuarantined)
	if d, err := f.svc.Authorize(ctx, id, fp); err != nil || d.Status != devices.StatusQuarantined {
		t.Fatalf("quarantined: %v %s", err, d.Status)
	}
	f.svc.SetStatus(ctx, "ten", "u", id, devices.StatusSuspended)
	if _, err := f.svc.Authorize(ctx, id, fp); code(err) != api.CodeForbidden {
		t.Fatalf("suspended device: %v", err)
	}
	f.svc.SetStatus(ctx, "ten", "u", id, devices.StatusActive)
	// Revoke: refused at once, live sessions closed through the Disconnector.
	if _, err := f.svc.Revoke(ctx, "ten", "u", id, "stolen"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Authorize(ctx, id, fp); code(err) != api.CodeUnauthenticated {
		t.Fatalf("revoked device: %v", err)
	}
	f.disc.mu.Lock()
	got := append([]string(nil), f.disc.got...)
	f.disc.mu.Unlock()
	if len(got) == 0 || got[len(got)-1] != id+"|" {
		t.Fatalf("revocation closed no session: %v", got)
	}
	if f.ev.count("device.revoked") != 1 || f.ev.count("device.auth_refused") < 3 {
		t.Fatalf("journal: revoked=%d refused=%d", f.ev.count("device.revoked"), f.ev.count("device.auth_refused"))
	}
}

func TestCloneDetectionRefusePolicy(t *testing.T) {
	f := newFixture(t, devices.CloneRefuse)
	ctx := context.Background()
	id := f.enrolled(t, "ten").Device.ID
	open := func(addr string) bool {
		ok, err := f.svc.ConnectionOpened(ctx, id, addr)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !open("198.51.100.1:4000") {
		t.Fatal("first session refused")
	}
	if open("203.0.113.9:5000") {
		t.Fatal("second live session of one identity admitted")
	}
	f.svc.ConnectionClosed(ctx, id, "203.0.113.9:5000") // not admitted: no effect
	f.svc.ConnectionClosed(ctx, id, "198.51.100.1:4000")
	f.clock.Advance(time.Second)
	if open("203.0.113.9:5001") {
		t.Fatal("a connection from another address a second after the last closed was admitted")
	}
	if !open("198.51.100.1:4001") {
		t.Fatal("the same device reconnecting from its own address was refused")
	}
	f.svc.ConnectionClosed(ctx, id, "198.51.100.1:4001")
	f.clock.Advance(devices.DefaultCloneWindow + time.Second)
	if !open("203.0.113.9:5002") {
		t.Fatal("a device that moved networks after the window was refused")
	}
	fs, _ := f.svc.Findings(ctx, "ten")
	if len(fs) != 2 || fs[0].Kind != devices.FindingCloneConnection {
		t.Fatalf("findings: %+v", fs)
	}
}

func TestCloneDetectionReplacePolicy(t *testing.T) {
	f := newFixture(t, devices.CloneReplace)
	ctx := context.Background()
	id := f.enrolled(t, "ten").Device.ID
	f.svc.ConnectionOpened(ctx, id, "198.51.100.1:4000")
	ok, _ := f.svc.ConnectionOpened(ctx, id, "203.0.113.9:5000")
	if !ok {
		t.Fatal("replace policy refused the new session")
	}
	f.disc.mu.Lock()
	got := f.disc.got
	f.disc.mu.Unlock()
	if len(got) != 1 || got[0] != id+"|198.51.100.1:4000" {
		t.Fatalf("old session not closed: %v", got)
	}
	if fs, _ := f.svc.Findings(ctx, "ten"); len(fs) != 1 {
		t.Fatalf("findings: %+v", fs)
	}
}

// The secret path: must_rotate until the device sets its own; enrollment
// and claim tokens never pass as a device secret.
func TestValidateSecret(t *testing.T) {
	f := newFixture(t, "")
	ctx := context.Background()
	c, err := f.svc.Create(ctx, "ten", "u", devices.CreateRequest{Name: "legacy", Credential: devices.MethodSecret})
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.svc.ValidateSecret(ctx, c.Device.ID, c.Secret)
	if err != nil || !d.MustRotate || d.Status != devices.StatusPending {
		t.Fatalf("fresh secret: %v %+v", err, d)
	}
	_, claimTok, _ := f.svc.CreateClaim(ctx, "ten", "u", devices.ClaimSpec{Name: "b", MaxUses: 1, TTL: time.Hour})
	tokDev, _ := f.svc.Create(ctx, "ten", "u", devices.CreateRequest{Name: "t"})
	for name, pw := range map[string]secrets.Text{"claim": claimTok, "enrollment token": tokDev.Token, "empty": ""} {
		if _, err := f.svc.ValidateSecret(ctx, c.Device.ID, pw); err == nil {
			t.Errorf("%s passed as a device secret", name)
		}
	}
	if _, err := f.svc.ValidateSecret(ctx, tokDev.Device.ID, tokDev.Token); err == nil {
		t.Error("an enrollment token passed as its device's secret")
	}
	next := secrets.Text("0123456789abcdef0123456789abcdef")
	if _, err := f.svc.RotateSecret(ctx, c.Device.ID, c.Secret, next, "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if d, err := f.svc.ValidateSecret(ctx, c.Device.ID, next); err != nil || d.MustRotate || d.Status != devices.StatusActive {
		t.Fatalf("after rotation: %v %+v", err, d)
	}
	if _, err := f.svc.ValidateSecret(ctx, c.Device.ID, c.Secret); err == nil {
		t.Fatal("the initial secret still works")
	}
}
