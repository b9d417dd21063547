package app

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/devicesim"
	"github.com/rampart-iot/rampart/internal/telemetry"
	"github.com/rampart-iot/rampart/sdk"
	"github.com/rampart-iot/rampart/sdk/keystore"
)

// Tests of the device SDK against a real hub over real sockets.

var cheapArgon = keystore.Argon2Params{Time: 1, MemoryKiB: 64, Threads: 1}

func (h *testHub) caPEM() []byte {
	h.t.Helper()
	b, err := os.ReadFile(filepath.Join(h.cfg.DataDir, "ca.pem"))
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

func (h *testHub) hubURL() string { return "https://" + h.addr }

func newKeystore(t testing.TB, dir, name string) (*keystore.Store, keystore.KeyProtector) {
	t.Helper()
	p := &keystore.Passphrase{Secret: []byte("device passphrase for " + name), Params: cheapArgon}
	ks, err := keystore.Create(filepath.Join(dir, name+".keystore"), p)
	if err != nil {
		t.Fatal(err)
	}
	return ks, p
}

func (h *testHub) sdkEnroll(owner, name string, dir string) *sdk.Device {
	h.t.Helper()
	dev := h.newDevice(owner, api.CreateDeviceRequest{Name: name})
	ks, _ := newKeystore(h.t, dir, name)
	d, err := sdk.Enroll(context.Background(), ks, sdk.Enrollment{Hub: h.hubURL(), MQTT: h.mqttAddr,
		Trust: sdk.Trust{CABundle: h.caPEM()}, Token: keystore.NewSecret(dev.EnrollmentToken)})
	if err != nil {
		h.t.Fatalf("enroll %s: %v", name, err)
	}
	return d
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSDKLifecycle: enroll (token, key made in the keystore) -> connect
// (mTLS) -> telemetry stored -> renew without dropping the session ->
// revoke -> the session ends and every reconnection is refused.
func TestSDKLifecycle(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	dir := t.TempDir()
	created := h.newDevice(owner, api.CreateDeviceRequest{Name: "thermostat-1"})
	ks, prot := newKeystore(t, dir, "thermostat-1")
	d, err := sdk.Enroll(context.Background(), ks, sdk.Enrollment{Hub: h.hubURL(), MQTT: h.mqttAddr,
		Trust: sdk.Trust{CABundle: h.caPEM()}, Token: keystore.NewSecret(created.EnrollmentToken)})
	if err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if d.ID() != created.ID {
		t.Fatalf("enrolled as %s, created %s", d.ID(), created.ID)
	}
	// The identity survives a reopen of the keystore (a reboot).
	ks.Close()
	ks, err = keystore.Open(ks.Path(), prot)
	if err != nil {
		t.Fatal(err)
	}
	d, err = sdk.Load(ks)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(ks.Path())
	if strings.Contains(string(raw), "PRIVATE KEY") || strings.Contains(string(raw), d.ID()) {
		t.Fatal("the keystore file holds plaintext")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sdk.Connect(ctx, d, sdk.Options{DisableAutoRenew: true})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close()
	type temp struct {
		Celsius float64 `json:"celsius"`
	}
	stream := sdk.TelemetryStream[temp](c, "temperature")
	for i := 0; i < 3; i++ {
		if err := stream.Send(temp{Celsius: 20 + float64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	l := h.telemetry(owner, d.ID(), 3)
	if len(l.Messages) != 3 || string(l.Messages[2].JSON) != `{"celsius":22}` || l.Messages[0].Topic != "devices/"+d.ID()+"/telemetry/temperature" {
		t.Fatalf("stored telemetry: %+v", l.Messages)
	}

	// Renewal: a new key and certificate, committed; the session stays up.
	oldSerial := d.Certificate().SerialNumber
	if err := c.Renew(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	if d.Certificate().SerialNumber.Cmp(oldSerial) == 0 {
		t.Fatal("renewal kept the old certificate")
	}
	if st := c.Stats(); st.State != sdk.Online || st.Connects != 1 || st.Renewals != 1 {
		t.Fatalf("after renewal: %+v", st)
	}
	if err := c.Event("renewed", map[string]string{"serial": d.Certificate().SerialNumber.String()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h.telemetry(owner, d.ID(), 4)
	re, err := keystore.Open(ks.Path(), prot)
	if err != nil {
		t.Fatal(err)
	}
	if d2, err := sdk.Load(re); err != nil || d2.Certificate().SerialNumber.Cmp(d.Certificate().SerialNumber) != 0 {
		t.Fatalf("the keystore does not hold the renewed certificate: %v", err)
	}

	// Revocation: the live session ends; reconnections are refused.
	if r := h.do("POST", "/api/v1/devices/"+d.ID()+"/revoke", owner, api.RevokeRequest{Reason: "test"}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	waitFor(t, "the revoked session to end and reconnection to be refused", 15*time.Second, func() bool {
		st := c.Stats()
		return st.State == sdk.Offline && errors.Is(st.LastError, sdk.ErrRefused)
	})
	if _, err := sdk.Connect(ctx, d, sdk.Options{DisableAutoRenew: true}); !errors.Is(err, sdk.ErrRefused) {
		t.Fatalf("a revoked device connected (or failed otherwise): %v", err)
	}
	var he *sdk.HubError
	if err := d.Renew(ctx); !errors.As(err, &he) || he.Status != http.StatusUnauthorized {
		t.Fatalf("a revoked device renewed: %v", err)
	}
}

// TestSDKRefusesUnexpectedCA: a hub whose certificate comes from another CA
// than the one provisioned is refused, for enrollment and for MQTT; a
// fingerprint of the right root works, of a wrong one does not.
func TestSDKRefusesUnexpectedCA(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	other := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	dir := t.TempDir()
	ctx := context.Background()

	dev := h.newDevice(owner, api.CreateDeviceRequest{Name: "d1"})
	ks, _ := newKeystore(t, dir, "d1")
	_, err := sdk.Enroll(ctx, ks, sdk.Enrollment{Hub: h.hubURL(), MQTT: h.mqttAddr,
		Trust: sdk.Trust{CABundle: other.caPEM()}, Token: keystore.NewSecret(dev.EnrollmentToken)})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("enrolled with a hub whose CA is not the provisioned one: %v", err)
	}
	if _, err := sdk.Enroll(ctx, ks, sdk.Enrollment{Hub: h.hubURL(), Token: keystore.NewSecret(dev.EnrollmentToken)}); !errors.Is(err, sdk.ErrNoTrust) {
		t.Fatalf("enrolled without a trust anchor: %v", err)
	}
	otherRoot, err := x509FromPEM(other.caPEM())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.Enroll(ctx, ks, sdk.Enrollment{Hub: h.hubURL(), Trust: sdk.Trust{Fingerprint: sdk.Fingerprint(otherRoot)},
		Token: keystore.NewSecret(dev.EnrollmentToken)}); err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("enrolled with a wrong fingerprint: %v", err)
	}
	// The token was never spent: the right fingerprint enrolls, and the
	// keystore pins the root it matched.
	root, _ := x509FromPEM(h.caPEM())
	d, err := sdk.Enroll(ctx, ks, sdk.Enrollment{Hub: h.hubURL(), MQTT: h.mqttAddr, Trust: sdk.Trust{Fingerprint: sdk.Fingerprint(root)},
		Token: keystore.NewSecret(dev.EnrollmentToken)})
	if err != nil {
		t.Fatalf("enroll by fingerprint: %v", err)
	}

	// MQTT: point the enrolled device at the other hub's broker.
	ks.Put("hub.mqtt", []byte(other.mqttAddr))
	d2, err := sdk.Load(ks)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err = sdk.Connect(cctx, d2, sdk.Options{DisableAutoRenew: true, BackoffBase: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("connected to a broker with another CA's certificate: %v", err)
	}
	// And the genuine broker takes it.
	c, err := sdk.Connect(ctx, d, sdk.Options{DisableAutoRenew: true})
	if err != nil {
		t.Fatalf("connect to the genuine hub: %v", err)
	}
	c.Close()
}

// TestSDKSecretDeviceRotatesFirst: a must_rotate secret device replaces its
// secret inside Connect before anything else; the keystore keeps the new
// one; the old one no longer works.
func TestSDKSecretDeviceRotatesFirst(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	created := h.newDevice(owner, api.CreateDeviceRequest{Name: "legacy", Credential: "secret"})
	ks, _ := newKeystore(t, t.TempDir(), "legacy")
	d, err := sdk.ProvisionSecret(ks, sdk.SecretProvisioning{DeviceID: created.ID, Secret: keystore.NewSecret(created.Secret),
		MQTT: h.mqttAddr, Trust: sdk.Trust{CABundle: h.caPEM()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sdk.Connect(ctx, d, sdk.Options{})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if err := c.Telemetry("t", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if l := h.telemetry(owner, d.ID(), 1); len(l.Messages) != 1 {
		t.Fatalf("telemetry after rotation: %+v", l.Messages)
	}
	c.Close()
	s, _ := ks.Secret("mqtt.secret")
	if s.Reveal() == created.Secret || len(s.Reveal()) < 32 {
		t.Fatal("the keystore still holds the initial secret")
	}
	if h.device(owner, d.ID()).MustRotate {
		t.Fatal("the hub still marks the device must_rotate")
	}
	if _, err := h.mqttConnect(d.ID(), nil, d.ID(), created.Secret, nil); err == nil {
		t.Fatal("the initial secret still connects")
	}
	c, err = sdk.Connect(ctx, d, sdk.Options{})
	if err != nil {
		t.Fatalf("reconnect with the rotated secret: %v", err)
	}
	c.Close()
}

// allTelemetry returns the device's stored messages, waiting until at
// least want are there.
func (h *testHub) allTelemetry(token, id string, want int) []api.TelemetryMessage {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := h.do("GET", fmt.Sprintf("/api/v1/devices/%s/telemetry?limit=%d", id, telemetry.MaxListLimit), token, nil)
		if r.status != http.StatusOK {
			h.t.Fatalf("telemetry: %d %s", r.status, r.body)
		}
		var l api.TelemetryList
		if err := json.Unmarshal(r.body, &l); err != nil {
			h.t.Fatal(err)
		}
		if len(l.Messages) >= want || time.Now().After(deadline) {
			return l.Messages
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePort returns a free 127.0.0.1 port below the ephemeral range
// (32768+), so that no client socket can take it as its source port
// while the hub is down and block the restart.
func freePort(t testing.TB) string {
	t.Helper()
	for i := 0; i < 100; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+mrand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port in 20000-32000")
	return ""
}

type seqMsg struct {
	Seq int `json:"seq" cbor:"seq"`
}

// TestSDKHubRestart: the hub stops mid-stream and starts again on the same
// data folder and ports. Devices keep measuring while it is down (the
// queue holds the readings), come back spread out by jittered backoff,
// and every reading arrives at least once (QoS 1: duplicates only from
// messages whose PUBACK the outage swallowed).
func TestSDKHubRestart(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.HTTPS.Addr, cfg.MQTT.Addr = freePort(t), freePort(t)
	h := startHub(t, cfg)
	owner := h.setupAndLogin()
	dir := t.TempDir()
	const n = 12
	type devState struct {
		c        *sdk.Client
		sent     int
		mu       sync.Mutex
		connects []time.Time
	}
	devs := make([]*devState, n)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range devs {
		d := h.sdkEnroll(owner, fmt.Sprintf("dev-%02d", i), dir)
		ds := &devState{}
		enc := sdk.JSON
		if i%2 == 1 {
			enc = sdk.CBOR
		}
		ds.c = sdk.Start(d, sdk.Options{Encoding: enc, BackoffBase: 100 * time.Millisecond, BackoffMax: 2 * time.Second,
			DisableAutoRenew: true, OnConnect: func() { ds.mu.Lock(); ds.connects = append(ds.connects, time.Now()); ds.mu.Unlock() }})
		devs[i] = ds
		defer ds.c.Close()
		wg.Add(1)
		go func() { // the device's local loop: it never waits for the hub
			defer wg.Done()
			tk := time.NewTicker(40 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tk.C:
					if err := ds.c.Telemetry("seq", seqMsg{Seq: ds.sent}); err != nil {
						t.Error(err)
						return
					}
					ds.sent++
				}
			}
		}()
	}
	waitFor(t, "every device online", 20*time.Second, func() bool {
		for _, ds := range devs {
			if ds.c.Stats().State != sdk.Online {
				return false
			}
		}
		return true
	})
	time.Sleep(300 * time.Millisecond)
	if err := h.stop(); err != nil {
		t.Fatalf("hub stop: %v", err)
	}
	stopped := time.Now()
	time.Sleep(1200 * time.Millisecond) // devices queue while the hub is gone
	for _, ds := range devs {
		if st := ds.c.Stats(); st.State != sdk.Offline || st.Queued == 0 {
			t.Fatalf("while the hub is down: %+v", st)
		}
	}
	h = startHub(t, cfg)
	restarted := time.Now()
	owner = h.login(ownerEmail, ownerPassword)
	waitFor(t, "every device back", 30*time.Second, func() bool {
		for _, ds := range devs {
			ds.mu.Lock()
			k := len(ds.connects)
			ds.mu.Unlock()
			if k < 2 {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	var back []time.Duration
	for _, ds := range devs {
		ds.mu.Lock()
		back = append(back, ds.connects[len(ds.connects)-1].Sub(restarted))
		ds.mu.Unlock()
	}
	lo, hi := back[0], back[0]
	for _, b := range back {
		lo, hi = min(lo, b), max(hi, b)
	}
	t.Logf("hub down %v; devices back %v..%v after restart", restarted.Sub(stopped).Round(time.Millisecond), lo.Round(time.Millisecond), hi.Round(time.Millisecond))
	if hi-lo < 20*time.Millisecond {
		t.Errorf("all %d devices reconnected within %v of each other: no jitter", n, hi-lo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dups := 0
	for i, ds := range devs {
		if err := ds.c.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if st := ds.c.Stats(); st.Dropped != 0 {
			t.Fatalf("device %d dropped %d messages", i, st.Dropped)
		}
		id := ds.c.Device().ID()
		got := map[int]int{}
		for _, m := range h.allTelemetry(owner, id, ds.sent) {
			var v seqMsg
			if m.ContentType == "application/cbor" {
				if err := cbor.Unmarshal(m.Payload, &v); err != nil {
					t.Fatalf("cbor payload: %v", err)
				}
			} else if err := json.Unmarshal(m.JSON, &v); err != nil {
				t.Fatalf("json payload %q: %v", m.JSON, err)
			}
			got[v.Seq]++
		}
		for s := 0; s < ds.sent; s++ {
			if got[s] == 0 {
				t.Fatalf("device %d: reading %d of %d never arrived", i, s, ds.sent)
			}
			dups += got[s] - 1
		}
	}
	t.Logf("%d readings delivered, %d duplicates (QoS 1 redeliveries)", func() int {
		s := 0
		for _, ds := range devs {
			s += ds.sent
		}
		return s
	}(), dups)
}

func x509FromPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// TestDeviceSimFleet: the simulator enrolls a small fleet with one claim,
// connects it and its readings are stored; a second run on the same state
// folder reuses the identities without enrolling again.
func TestDeviceSimFleet(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	r := h.do("POST", "/api/v1/claims", owner, api.CreateClaimRequest{Name: "sim", MaxUses: 4, TTL: "1h"})
	h.expect(r, http.StatusCreated, "", "claim")
	claim := decodeJSON[api.Claim](t, r)
	cfg := devicesim.Config{Hub: h.hubURL(), MQTT: h.mqttAddr, Trust: sdk.Trust{CABundle: h.caPEM()},
		Count: 4, Claim: claim.Token, StateDir: t.TempDir(), Rate: 20}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fleet, err := devicesim.Enroll(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	fleet.Start(ctx)
	waitFor(t, "readings from every device", 15*time.Second, func() bool { return fleet.Counts().Acked >= 20 })
	ids := fleet.Devices()
	fleet.Close()
	m := h.telemetry(owner, ids[0], 1).Messages
	var th devicesim.ThermostatReading
	if len(m) == 0 || json.Unmarshal(m[0].JSON, &th) != nil || th.SetPoint == 0 || !strings.HasSuffix(m[0].Topic, "/telemetry/thermostat") {
		t.Fatalf("thermostat telemetry: %+v", m)
	}
	// The claim is used up: a second run must load, not enroll.
	again, err := devicesim.Enroll(ctx, cfg)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if got := again.Devices(); strings.Join(got, ",") != strings.Join(ids, ",") {
		t.Fatalf("second run has other identities: %v vs %v", got, ids)
	}
}

// TestSDKRenewsAtTwoThirds: when the device's clock says 2/3 of the
// certificate's lifetime has passed, the client renews by itself and the
// MQTT session stays up.
func TestSDKRenewsAtTwoThirds(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	d := h.sdkEnroll(owner, "renewer", t.TempDir())
	first := d.Certificate()
	// The device's clock is just past 2/3 of the first certificate's
	// lifetime; once renewed, the new certificate is fresh by that clock.
	skew := first.NotAfter.Sub(first.NotBefore)*2/3 + time.Minute
	now := func() time.Time {
		if d.Certificate().SerialNumber.Cmp(first.SerialNumber) == 0 {
			return time.Now().Add(skew)
		}
		return time.Now().Add(skew / 2)
	}
	c := sdk.Start(d, sdk.Options{Now: now})
	defer c.Close()
	waitFor(t, "the automatic renewal", 15*time.Second, func() bool { return c.Stats().Renewals >= 1 })
	if d.Certificate().SerialNumber.Cmp(first.SerialNumber) == 0 || d.RenewAt().Before(time.Now().Add(time.Hour)) {
		t.Fatalf("renewed certificate: serial %v renew at %v", d.Certificate().SerialNumber, d.RenewAt())
	}
	waitFor(t, "the session", 10*time.Second, func() bool { return c.Stats().State == sdk.Online })
	time.Sleep(200 * time.Millisecond)
	if st := c.Stats(); st.Renewals != 1 || st.Connects != 1 {
		t.Fatalf("after renewal: %+v (want one renewal, one session)", st)
	}
}
