package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/testkit"
)

func (h *testHub) mqttTLS(cert *tls.Certificate) *tls.Config {
	h.t.Helper()
	pemBytes, err := os.ReadFile(filepath.Join(h.cfg.DataDir, "ca.pem"))
	if err != nil {
		h.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	if cert != nil {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c
}

// mqttConnect connects a paho (MQTT 3.1.1) client; it returns the connect error.
func (h *testHub) mqttConnect(clientID string, cert *tls.Certificate, user, pass string, lost chan<- error) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("ssl://" + h.mqttAddr).SetClientID(clientID).SetTLSConfig(h.mqttTLS(cert)).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second)
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	if lost != nil {
		o.SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	h.t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

func (h *testHub) telemetry(token, id string, want int) api.TelemetryList {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := h.do("GET", "/api/v1/devices/"+id+"/telemetry", token, nil)
		if r.status != http.StatusOK {
			h.t.Fatalf("telemetry: %d %s", r.status, r.body)
		}
		var l api.TelemetryList
		if err := json.Unmarshal(r.body, &l); err != nil {
			h.t.Fatal(err)
		}
		if len(l.Messages) >= want || time.Now().After(deadline) {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *testHub) newDevice(token string, req api.CreateDeviceRequest) api.Device {
	h.t.Helper()
	r := h.do("POST", "/api/v1/devices", token, req)
	if r.status != http.StatusCreated {
		h.t.Fatalf("create device: %d %s", r.status, r.body)
	}
	return decodeJSON[api.Device](h.t, r)
}

func TestEnrolledDeviceOverMQTTEndToEnd(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	if h.mqttAddr == "" {
		t.Fatal("the ready line has no mqtt= address")
	}
	owner := h.setupAndLogin()
	dev := h.newDevice(owner, api.CreateDeviceRequest{Name: "thermostat-1", Model: "t1000"})
	id := h.enrollToken(dev.EnrollmentToken, p256(t))

	// A spoofed client ID with a genuine certificate is refused.
	if _, err := h.mqttConnect("someone-else", id.tlsCert(), "", "", nil); err == nil {
		t.Fatal("a device connected under another client ID")
	}
	lost := make(chan error, 1)
	c, err := h.mqttConnect(id.id, id.tlsCert(), "", "", lost)
	if err != nil {
		t.Fatalf("enrolled device cannot connect: %v", err)
	}
	for i := 0; i < 3; i++ {
		if tok := c.Publish("devices/"+id.id+"/telemetry/temp", 1, false, fmt.Sprintf(`{"celsius":%d}`, 20+i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	c.Publish("devices/not-me/telemetry/temp", 1, false, `{"forged":true}`).WaitTimeout(5 * time.Second)
	l := h.telemetry(owner, id.id, 3)
	if len(l.Messages) != 3 || string(l.Messages[2].JSON) != `{"celsius":22}` || l.Messages[0].ContentType != "application/json" {
		t.Fatalf("telemetry API: %+v", l)
	}

	// Revocation closes the live session within a second, and the
	// certificate no longer connects.
	start := time.Now()
	if r := h.do("POST", "/api/v1/devices/"+id.id+"/revoke", owner, api.RevokeRequest{Reason: "stolen"}); r.status != http.StatusOK {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	select {
	case <-lost:
		if d := time.Since(start); d > time.Second {
			t.Fatalf("revoked session closed after %v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the revoked device's live session stayed open")
	}
	if _, err := h.mqttConnect(id.id, id.tlsCert(), "", "", nil); err == nil {
		t.Fatal("a revoked certificate connected")
	}
	// Another tenant's (here: nobody's) device ID answers 404 on the telemetry route.
	if r := h.do("GET", "/api/v1/devices/dev_doesnotexist/telemetry", owner, nil); r.status != http.StatusNotFound {
		t.Fatalf("telemetry of a missing device: %d", r.status)
	}
}

func TestSecretDeviceMustRotateOverMQTT(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	dev := h.newDevice(owner, api.CreateDeviceRequest{Name: "legacy-sensor", Credential: "secret"})
	if dev.Secret == "" || !dev.MustRotate {
		t.Fatalf("secret device: %+v", dev)
	}
	lost := make(chan error, 1)
	c, err := h.mqttConnect(dev.ID, nil, dev.ID, dev.Secret, lost)
	if err != nil {
		t.Fatalf("connect with the initial secret: %v", err)
	}
	// Before rotating, telemetry is refused; MQTT 3.1.1 has no negative
	// PUBACK, so the hub disconnects the client.
	c.Publish("devices/"+dev.ID+"/telemetry/t", 1, false, `{"before":"rotation"}`).WaitTimeout(2 * time.Second)
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("a must_rotate device publishing telemetry was not cut off")
	}
	c, err = h.mqttConnect(dev.ID, nil, dev.ID, dev.Secret, nil)
	if err != nil {
		t.Fatalf("reconnect with the initial secret: %v", err)
	}
	newSecret := "a-new-device-secret-of-forty-characters!"
	body := fmt.Sprintf(`{"current":%q,"new":%q}`, dev.Secret, newSecret)
	if tok := c.Publish("devices/"+dev.ID+"/credentials/rotate", 1, false, body); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("rotate: %v", tok.Error())
	}
	c.Publish("devices/"+dev.ID+"/telemetry/t", 1, false, `{"after":"rotation"}`).WaitTimeout(5 * time.Second)
	l := h.telemetry(owner, dev.ID, 1)
	if len(l.Messages) != 1 || string(l.Messages[0].JSON) != `{"after":"rotation"}` {
		t.Fatalf("stored telemetry %+v; want only the message sent after rotation", l.Messages)
	}
	for _, m := range l.Messages {
		if strings.Contains(string(m.JSON)+string(m.Payload), newSecret) {
			t.Fatal("the rotation message was stored")
		}
	}
	c.Disconnect(50)
	if _, err := h.mqttConnect(dev.ID, nil, dev.ID, dev.Secret, nil); err == nil {
		t.Fatal("the old secret still connects")
	}
	if _, err := h.mqttConnect(dev.ID, nil, dev.ID, newSecret, nil); err != nil {
		t.Fatalf("the new secret does not connect: %v", err)
	}
}

func TestMosquittoWithEnrolledCertificate(t *testing.T) {
	pub := testkit.NeedTool(t, "mosquitto_pub")
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	dev := h.newDevice(owner, api.CreateDeviceRequest{Name: "m1"})
	id := h.enrollToken(dev.EnrollmentToken, p256(t))
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "dev.crt"), filepath.Join(dir, "dev.key")
	var chain []byte
	for _, c := range id.chain[:2] {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(id.key)
	os.WriteFile(certPath, chain, 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	host, port, _ := strings.Cut(h.mqttAddr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "--cafile", filepath.Join(h.cfg.DataDir, "ca.pem"),
		"--cert", certPath, "--key", keyPath, "-i", id.id, "-V", "mqttv5", "-q", "1",
		"-t", "devices/"+id.id+"/telemetry/t", "-m", `{"from":"mosquitto"}`).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
	if l := h.telemetry(owner, id.id, 1); len(l.Messages) != 1 || string(l.Messages[0].JSON) != `{"from":"mosquitto"}` {
		t.Fatalf("telemetry: %+v", l)
	}
}

// Applications subscribe with API tokens (mqtt:subscribe scope) and never
// receive another tenant's messages, whatever filter they use.
func TestApplicationTokensSeeOnlyTheirTenant(t *testing.T) {
	h := startAccountsHub(t, nil)
	ownerA := h.setupAndLogin()
	h.signup("bea@beta.example", "another long passphrase for beta", "Beta")
	ownerB := h.login("bea@beta.example", "another long passphrase for beta")

	tokA := h.newToken(ownerA, api.TokenRequest{Name: "backend-a", Scopes: []string{"mqtt:subscribe"}})
	tokB := h.newToken(ownerB, api.TokenRequest{Name: "backend-b", Scopes: []string{"mqtt:subscribe"}})
	noScope := h.newToken(ownerB, api.TokenRequest{Name: "reader", Scopes: []string{"devices:read"}})

	gotA, gotB := make(chan string, 10), make(chan string, 10)
	appA, err := h.mqttConnect("backend-a", nil, tokA.ID, tokA.Token, nil)
	if err != nil {
		t.Fatalf("app A: %v", err)
	}
	appB, err := h.mqttConnect("backend-b", nil, tokB.ID, tokB.Token, nil)
	if err != nil {
		t.Fatalf("app B: %v", err)
	}
	appA.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { gotA <- m.Topic() }).WaitTimeout(5 * time.Second)
	for _, f := range []string{"#", "devices/#", "devices/+/telemetry/#", "$share/g/#"} {
		appB.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { gotB <- m.Topic() }).WaitTimeout(5 * time.Second)
	}
	for name, cred := range map[string][2]string{
		"fail/token without mqtt:subscribe": {noScope.ID, noScope.Token},
		"fail/a person's session token":     {"bea", ownerB},
		"fail/made-up token":                {"x", "rpt_" + strings.Repeat("A", 43)},
	} {
		if _, err := h.mqttConnect("app-"+strings.ReplaceAll(name, " ", "-")[:12], nil, cred[0], cred[1], nil); err == nil {
			t.Errorf("%s connected", name)
		}
	}

	dev := h.newDevice(ownerA, api.CreateDeviceRequest{Name: "a-thermostat"})
	id := h.enrollToken(dev.EnrollmentToken, p256(t))
	c, err := h.mqttConnect(id.id, id.tlsCert(), "", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Publish("devices/"+id.id+"/telemetry/t", 1, true, `{"private":1}`).WaitTimeout(5 * time.Second)
	select {
	case topic := <-gotA:
		if topic != "devices/"+id.id+"/telemetry/t" {
			t.Fatalf("A got %s", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tenant A's application did not receive its device's message")
	}
	select {
	case topic := <-gotB:
		t.Fatalf("tenant B's application received %s of tenant A", topic)
	case <-time.After(500 * time.Millisecond):
	}
	// Retained messages obey the same rule: a late subscriber of tenant B
	// gets nothing, one of tenant A gets the retained message.
	lateB, err := h.mqttConnect("backend-b-late", nil, tokB.ID, tokB.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	lateGotB := make(chan string, 10)
	lateB.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { lateGotB <- m.Topic() }).WaitTimeout(5 * time.Second)
	lateB.Subscribe("devices/"+id.id+"/telemetry/t", 1, func(_ paho.Client, m paho.Message) { lateGotB <- m.Topic() }).WaitTimeout(5 * time.Second)
	lateA, err := h.mqttConnect("backend-a-late", nil, tokA.ID, tokA.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	lateGotA := make(chan string, 10)
	lateA.Subscribe("devices/#", 1, func(_ paho.Client, m paho.Message) { lateGotA <- m.Topic() }).WaitTimeout(5 * time.Second)
	select {
	case <-lateGotA:
	case <-time.After(5 * time.Second):
		t.Fatal("tenant A's late subscriber did not get the retained message")
	}
	select {
	case topic := <-lateGotB:
		t.Fatalf("tenant B's late subscriber got tenant A's retained %s", topic)
	case <-time.After(500 * time.Millisecond):
	}
	// A token revoked later no longer connects.
	if r := h.do("DELETE", "/api/v1/tokens/"+tokB.ID, ownerB, nil); r.status >= 300 {
		t.Fatalf("revoke token: %d %s", r.status, r.body)
	}
	if _, err := h.mqttConnect("backend-b2", nil, tokB.ID, tokB.Token, nil); err == nil {
		t.Fatal("a revoked API token connected")
	}
}

// The enrollment answer carries the hub's command key for the device to
// pin, the same one GET /pki/command-key serves.
func TestEnrollmentPinsTheCommandKey(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	dev := h.newDevice(owner, api.CreateDeviceRequest{Name: "pin-me"})
	r := h.do("POST", "/api/v1/enroll", "", api.EnrollRequest{Token: dev.EnrollmentToken, CSR: csrPEM(t, p256(t), "x")})
	er := decodeJSON[api.EnrollResponse](t, r)
	pub := decodeJSON[api.CommandKey](t, h.do("GET", "/pki/command-key", "", nil))
	if er.CommandKey == nil || er.CommandKey.PublicKey == "" || *er.CommandKey != pub {
		t.Fatalf("enroll command key %+v, published %+v", er.CommandKey, pub)
	}
}

// A device model's MQTT quota applies to its devices only.
func TestQuotaPerDeviceModel(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	ping := []api.CommandSpec{{Name: "ping"}}
	if r := h.do("POST", "/api/v1/models", owner, api.DeviceModel{Name: "slow-sensor", Commands: ping,
		MQTTQuota: &api.MQTTQuota{PublishPerSec: 1, PublishBurst: 3}}); r.status != http.StatusCreated && r.status != http.StatusOK {
		t.Fatalf("model: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/api/v1/models", owner, api.DeviceModel{Name: "bad", Commands: ping,
		MQTTQuota: &api.MQTTQuota{PublishPerSec: -1}}); r.status != http.StatusBadRequest {
		t.Fatalf("negative quota: %d %s", r.status, r.body)
	}
	run := func(model string) bool {
		d := h.newDevice(owner, api.CreateDeviceRequest{Name: "d-" + model, Model: model})
		id := h.enrollToken(d.EnrollmentToken, p256(t))
		lost := make(chan error, 1)
		c, err := h.mqttConnect(id.id, id.tlsCert(), "", "", lost)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			c.Publish("devices/"+id.id+"/telemetry/t", 0, false, "1")
		}
		select {
		case <-lost:
			return true
		case <-time.After(2 * time.Second):
			return false
		}
	}
	if !run("slow-sensor") {
		t.Fatal("a device of the slow model published 10 messages at once and was not cut off")
	}
	if run("default-model") {
		t.Fatal("a device of a model without a quota was cut off by another model's quota")
	}
}
