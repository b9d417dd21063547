package broker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/testkit"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// registry is a test double of the device registry and token store behind
// the Authenticator interface (the real one is wired in internal/app).
type registry struct {
	mu      sync.Mutex
	devices map[string]Identity
	apps    map[string]Identity // token -> identity
}

func (r *registry) AuthenticateDevice(_ context.Context, id string, _ *x509.Certificate) (Identity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.devices[id]
	if !ok {
		return Identity{}, errors.New("unknown device")
	}
	return d, nil
}

func (r *registry) TenantOf(_ context.Context, id string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.devices[id]
	if !ok {
		return "", errors.New("unknown device")
	}
	return d.TenantID, nil
}

func (r *registry) AuthenticatePassword(_ context.Context, user string, pw secrets.Text) (Identity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.apps[pw.Reveal()]
	if !ok || user != a.AppID {
		return Identity{}, errors.New("bad credentials")
	}
	return a, nil
}

type events struct {
	mu sync.Mutex
	ev []journal.Event
}

func (e *events) Record(_ context.Context, ev journal.Event) error {
	e.mu.Lock()
	e.ev = append(e.ev, ev)
	e.mu.Unlock()
	return nil
}

func (e *events) has(action string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.ev {
		if ev.Action == action {
			return true
		}
	}
	return false
}

type sink struct {
	mu   sync.Mutex
	msgs []Message
}

func (s *sink) Ingest(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	s.mu.Unlock()
}

type env struct {
	t        testing.TB
	b        *Broker
	addr     string
	ca       *testkit.CA
	serverCA *testkit.CA
	reg      *registry
	journal  *events
	sink     *sink
	promReg  *prometheus.Registry
}

func newEnv(t testing.TB, lim Limits) *env {
	t.Helper()
	ca := testkit.NewCA(t, "device CA")
	serverCA := testkit.NewCA(t, "hub root")
	srvLeaf := serverCA.Server(t)
	cfg, err := tlsconf.Server(tlsconf.ServerOptions{
		Certificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &srvLeaf.TLS, nil },
		ClientCAs:   ca.Pool(), ClientCertOptional: true, MinVersion: tlsconf.TLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ca: ca, serverCA: serverCA, journal: &events{}, sink: &sink{}, promReg: prometheus.NewRegistry(),
		reg: &registry{devices: map[string]Identity{}, apps: map[string]Identity{}}}
	b, err := New(Options{Addr: "127.0.0.1:0", TLS: cfg, Auth: e.reg, Tenants: e.reg, Journal: e.journal, Sink: e.sink, Registry: e.promReg, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	e.b, e.addr = b, b.Addr().String()
	return e
}

func (e *env) device(id, tenant string) testkit.Leaf {
	e.reg.mu.Lock()
	e.reg.devices[id] = Identity{Kind: KindDevice, DeviceID: id, TenantID: tenant}
	e.reg.mu.Unlock()
	return e.ca.Device(e.t, id)
}

func (e *env) app(id, tenant, token string) {
	e.reg.mu.Lock()
	e.reg.apps[token] = Identity{Kind: KindApp, AppID: id, TenantID: tenant}
	e.reg.mu.Unlock()
}

func (e *env) tlsConfig(cert *tls.Certificate) *tls.Config {
	c := &tls.Config{RootCAs: e.serverCA.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Always send the certificate (an attacker would), even when the
		// server's acceptable-CA list does not name its issuer.
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return c
}

// pahoClient connects an MQTT 3.1.1 client (paho) and fails the test if it cannot.
func (e *env) paho(clientID string, cert *tls.Certificate, user, pass string) paho.Client {
	e.t.Helper()
	o := paho.NewClientOptions().AddBroker("ssl://" + e.addr).SetClientID(clientID).SetTLSConfig(e.tlsConfig(cert)).
		SetConnectTimeout(5 * time.Second).SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second)
	if user != "" {
		o.SetUsername(user).SetPassword(pass)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		e.t.Fatalf("paho connect %s: %v", clientID, tok.Error())
	}
	e.t.Cleanup(func() { c.Disconnect(50) })
	return c
}

// raw is a hand-driven MQTT connection for attack tests.
type raw struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func (e *env) raw(cert *tls.Certificate) *raw { return e.rawFor(e.t, cert) }

// rawFor dials for test t (fuzz targets must not use the F's helpers).
func (e *env) rawFor(t testing.TB, cert *tls.Certificate) *raw {
	t.Helper()
	c, err := tls.Dial("tcp", e.addr, e.tlsConfig(cert))
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &raw{t: t, c: c, r: bufio.NewReader(c)}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func (r *raw) write(pk packets.Packet) {
	r.t.Helper()
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.c.Write(buf.Bytes())
}

// read returns the next packet's type and body, or an error (EOF on close).
func (r *raw) read() (byte, []byte, error) {
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := r.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		b, err := r.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
		mul *= 128
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r.r, body)
	return h >> 4, body, err
}

func connectPacket(v byte, clientID string) packets.Packet {
	name := "MQTT"
	if v == 3 {
		name = "MQIsdp"
	}
	return packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: v,
		Connect: packets.ConnectParams{ProtocolName: []byte(name), ClientIdentifier: clientID, Keepalive: 30, Clean: true}}
}

// connack sends CONNECT and returns the CONNACK reason code.
func (r *raw) connack(pk packets.Packet) byte {
	r.t.Helper()
	r.write(pk)
	typ, body, err := r.read()
	if err != nil || typ != packets.Connack || len(body) < 2 {
		r.t.Fatalf("no CONNACK: type %d body %x err %v", typ, body, err)
	}
	return body[1]
}

func TestDeviceWithCertificatePublishesAndSameTenantAppReceives(t *testing.T) {
	e := newEnv(t, Limits{})
	leaf := e.device("dev1", "tenantA")
	e.app("app1", "tenantA", "tokA")
	got := make(chan paho.Message, 10)
	app := e.paho("app1", nil, "app1", "tokA")
	if tok := app.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { got <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	dev := e.paho("dev1", &leaf.TLS, "", "")
	for _, qos := range []byte{0, 1, 2} {
		tok := dev.Publish("devices/dev1/telemetry/temp", qos, false, fmt.Sprintf(`{"c":21.%d}`, qos))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish qos %d: %v", qos, tok.Error())
		}
		select {
		case m := <-got:
			if m.Topic() != "devices/dev1/telemetry/temp" {
				t.Fatalf("app got %s", m.Topic())
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("app did not receive the qos %d message", qos)
		}
	}
	e.sink.mu.Lock()
	n := len(e.sink.msgs)
	first := e.sink.msgs[0]
	e.sink.mu.Unlock()
	if n != 3 || first.TenantID != "tenantA" || first.DeviceID != "dev1" {
		t.Fatalf("sink got %d messages, first %+v", n, first)
	}
}

func TestTenantIsolationForWildcardSubscribers(t *testing.T) {
	e := newEnv(t, Limits{})
	leafA := e.device("devA", "tenantA")
	e.app("appB", "tenantB", "tokB")
	e.app("appA", "tenantA", "tokA")
	gotB := make(chan string, 10)
	gotA := make(chan string, 10)
	b := e.paho("appB", nil, "appB", "tokB")
	a := e.paho("appA", nil, "appA", "tokA")
	for _, f := range []string{"#", "devices/#", "devices/+/telemetry/#", "$share/g/#"} {
		b.Subscribe(f, 1, func(_ paho.Client, m paho.Message) { gotB <- m.Topic() }).WaitTimeout(5 * time.Second)
	}
	a.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { gotA <- m.Topic() }).WaitTimeout(5 * time.Second)
	dev := e.paho("devA", &leafA.TLS, "", "")
	dev.Publish("devices/devA/telemetry/x", 1, true, "secret reading").WaitTimeout(5 * time.Second)
	select {
	case <-gotA:
	case <-time.After(5 * time.Second):
		t.Fatal("own tenant did not receive")
	}
	select {
	case topic := <-gotB:
		t.Fatalf("tenant B received tenant A's %s", topic)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, Limits{})
	leaf := e.device("dev1", "tenantA")
	other := testkit.NewCA(t, "another hub").Device(t, "dev1")

	t.Run("fail/v3 without credentials gets a 3.1.1 return code", func(t *testing.T) {
		r := e.raw(nil)
		if code := r.connack(connectPacket(4, "dev1")); code != 0x05 {
			t.Fatalf("v3 return code 0x%x, want 0x05", code)
		}
	})
	t.Run("fail/no certificate and no credentials", func(t *testing.T) {
		r := e.raw(nil)
		if code := r.connack(connectPacket(5, "dev1")); code != packets.ErrNotAuthorized.Code {
			t.Fatalf("reason 0x%x, want 0x87 not authorized", code)
		}
		if _, _, err := r.read(); err == nil {
			t.Fatal("connection stayed open after refusal")
		}
	})
	t.Run("fail/bad password", func(t *testing.T) {
		e.app("app1", "tenantA", "right")
		r := e.raw(nil)
		pk := connectPacket(4, "app1")
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte("app1")
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte("wrong")
		if code := r.connack(pk); code != 0x05 {
			t.Fatalf("v3 return code 0x%x, want 0x05 not authorized", code)
		}
	})
	t.Run("fail/another CA's certificate", func(t *testing.T) {
		c, err := tls.Dial("tcp", e.addr, e.tlsConfig(&other.TLS))
		if err == nil {
			// TLS 1.3 reports the client-certificate refusal on first read.
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("another CA's certificate: %v; want a TLS certificate error", err)
		}
	})
	t.Run("fail/spoofed client ID", func(t *testing.T) {
		for _, v := range []byte{5, 4} {
			r := e.raw(&leaf.TLS)
			code := r.connack(connectPacket(v, "dev2"))
			want := packets.ErrClientIdentifierNotValid.Code
			if v == 4 {
				want = 0x02
			}
			if code != want {
				t.Fatalf("v%d spoofed client ID: reason 0x%x want 0x%x", v, code, want)
			}
		}
		if _, ok := e.b.srv.Clients.Get("dev2"); ok {
			t.Fatal("a refused CONNECT left a session")
		}
	})
	t.Run("fail/will to a forbidden topic", func(t *testing.T) {
		r := e.raw(&leaf.TLS)
		pk := connectPacket(5, "dev1")
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillRetain = true, "devices/dev9/commands", []byte("x"), true
		if code := r.connack(pk); code != packets.ErrNotAuthorized.Code {
			t.Fatalf("forbidden will: reason 0x%x", code)
		}
	})
	t.Run("fail/plaintext MQTT on the TLS port", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var buf bytes.Buffer
		pk := connectPacket(4, "dev1")
		pk.ConnectEncode(&buf)
		c.Write(buf.Bytes())
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		if len(b) > 0 && b[0]>>4 == packets.Connack {
			t.Fatalf("plaintext CONNECT got a CONNACK: %x", b)
		}
	})
	if !e.journal.has("mqtt.connect") {
		t.Fatal("refusals were not journaled")
	}
}

func TestDeviceLeastPrivilege(t *testing.T) {
	e := newEnv(t, Limits{})
	leaf := e.device("dev1", "tenantA")
	e.device("dev2", "tenantA")
	e.app("appA", "tenantA", "tokA")
	got := make(chan string, 10)
	app := e.paho("appA", nil, "appA", "tokA")
	app.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() }).WaitTimeout(5 * time.Second)

	r := e.raw(&leaf.TLS)
	if code := r.connack(connectPacket(5, "dev1")); code != 0 {
		t.Fatalf("connect: 0x%x", code)
	}
	filters := []string{"#", "+/dev1/commands", "devices/+/commands", "$SYS/#", "devices/dev2/commands", "devices/dev1/telemetry", "$share/g/devices/dev2/commands", "devices/dev1/commands"}
	sub := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 5, PacketID: 7}
	for _, f := range filters {
		sub.Filters = append(sub.Filters, packets.Subscription{Filter: f, Qos: 1})
	}
	r.write(sub)
	typ, body, err := r.read()
	if err != nil || typ != packets.Suback {
		t.Fatalf("suback: %d %v", typ, err)
	}
	codes := body[3:] // packet ID (2) + properties length (1, empty)
	for i, f := range filters {
		granted := codes[i] < 0x80
		if want := f == "devices/dev1/commands"; granted != want {
			t.Errorf("subscribe %q: code 0x%x, granted=%v want %v", f, codes[i], granted, want)
		}
	}
	// Publishing outside its subtree is refused (PUBACK 0x87) and never delivered.
	for i, topic := range []string{"devices/dev2/telemetry/x", "devices/dev1/commands", "other/topic"} {
		r.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5, PacketID: uint16(100 + i), TopicName: topic, Payload: []byte("x")})
		typ, body, err := r.read()
		if err != nil || typ != packets.Puback || len(body) < 3 || body[2] != packets.ErrNotAuthorized.Code {
			t.Errorf("publish to %s: type %d body %x err %v; want PUBACK 0x87", topic, typ, body, err)
		}
	}
	// $SYS from a client is dropped by the engine without an ack.
	r.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5, TopicName: "$SYS/x", Payload: []byte("x")})
	select {
	case topic := <-got:
		t.Fatalf("a forbidden publish was delivered: %s", topic)
	case <-time.After(300 * time.Millisecond):
	}
}

func TestQuarantinedDeviceMayOnlyReportEvents(t *testing.T) {
	st := DeviceState{Quarantined: true}
	if !DeviceMayPublish("d", st, "devices/d/events") || !DeviceMayPublish("d", st, "devices/d/events/alarm") {
		t.Fatal("quarantined device cannot report events")
	}
	if DeviceMayPublish("d", st, "devices/d/telemetry/t") {
		t.Fatal("quarantined device may publish telemetry")
	}
	mr := DeviceState{MustRotate: true}
	if DeviceMayPublish("d", mr, "devices/d/telemetry/t") || !DeviceMayPublish("d", mr, "devices/d/credentials/rotate") {
		t.Fatal("must_rotate device is not limited to rotating")
	}
}

func TestTruncatedSubscribeIsRecoveredAndOthersKeepWorking(t *testing.T) {
	e := newEnv(t, Limits{})
	bad := e.device("bad", "tenantA")
	good := e.device("good", "tenantA")
	e.app("appA", "tenantA", "tokA")
	got := make(chan string, 10)
	app := e.paho("appA", nil, "appA", "tokA")
	app.Subscribe("#", 0, func(_ paho.Client, m paho.Message) { got <- m.Topic() }).WaitTimeout(5 * time.Second)

	r := e.raw(&bad.TLS)
	if code := r.connack(connectPacket(5, "bad")); code != 0 {
		t.Fatalf("connect 0x%x", code)
	}
	// SUBSCRIBE v5: packet ID, empty properties, a filter and NO options
	// byte: mochi v2.7.9 indexes past the end of the buffer.
	filter := "devices/bad/commands"
	body := []byte{0, 1, 0, byte(len(filter) >> 8), byte(len(filter))}
	body = append(body, filter...)
	r.c.Write(append([]byte{0x82, byte(len(body))}, body...))
	if _, _, err := r.read(); err == nil {
		t.Fatal("the connection survived a malformed packet")
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(e.b.m.panics) < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if testutil.ToFloat64(e.b.m.panics) != 1 || !e.journal.has("mqtt.panic_recovered") {
		t.Fatalf("panic not recovered and journaled (panics=%v)", testutil.ToFloat64(e.b.m.panics))
	}
	if _, ok := e.b.srv.Clients.Get("bad"); ok {
		t.Fatal("the panicked client's session lingers")
	}
	dev := e.paho("good", &good.TLS, "", "")
	dev.Publish("devices/good/telemetry/t", 0, false, "1").WaitTimeout(5 * time.Second)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the hub stopped serving others after the panic")
	}
}

func TestHugeLengthClaimCostsNothing(t *testing.T) {
	e := newEnv(t, Limits{})
	leaf := e.device("dev1", "tenantA")
	r := e.raw(&leaf.TLS)
	if code := r.connack(connectPacket(5, "dev1")); code != 0 {
		t.Fatal(code)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	// PUBLISH claiming a 200 MB remaining length (varint 0x80 0x84 0xAF 0x5F).
	r.c.Write([]byte{0x30, 0x80, 0x84, 0xAF, 0x5F, 0, 1, 'x'})
	_, _, err := r.read()
	for err == nil {
		_, _, err = r.read()
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 32<<20 {
		t.Fatalf("a 200 MB length claim made the hub allocate %d MB", grew>>20)
	}
}

func TestSlowClientsAreCutOff(t *testing.T) {
	e := newEnv(t, Limits{HandshakeTimeout: 300 * time.Millisecond, ConnectTimeout: 300 * time.Millisecond})
	leaf := e.device("dev1", "tenantA")
	t.Run("silent TCP", func(t *testing.T) {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Fatalf("silent connection not closed by the hub: %v", err)
		}
	})
	t.Run("TLS but no CONNECT", func(t *testing.T) {
		r := e.raw(&leaf.TLS)
		if _, _, err := r.read(); err == nil || isTimeout(err) {
			t.Fatalf("connection without CONNECT not closed by the hub: %v", err)
		}
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPublishFloodIsCutAndOthersUnaffected(t *testing.T) {
	e := newEnv(t, Limits{PublishPerSec: 5, PublishBurst: 10})
	flood := e.device("flood", "tenantA")
	calm := e.device("calm", "tenantA")
	r := e.raw(&flood.TLS)
	if code := r.connack(connectPacket(5, "flood")); code != 0 {
		t.Fatal(code)
	}
	for i := 0; i < 50; i++ {
		r.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, ProtocolVersion: 5, TopicName: "devices/flood/telemetry/t", Payload: []byte("x")})
	}
	var reason byte
	for {
		typ, body, err := r.read()
		if err != nil {
			break
		}
		if typ == packets.Disconnect && len(body) > 0 {
			reason = body[0]
		}
	}
	if reason != packets.ErrMessageRateTooHigh.Code {
		t.Fatalf("flooding client got DISCONNECT reason 0x%x, want 0x96", reason)
	}
	dev := e.paho("calm", &calm.TLS, "", "")
	if tok := dev.Publish("devices/calm/telemetry/t", 1, false, "ok"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("a calm device was affected: %v", tok.Error())
	}
}

func TestConnectionFloodFromOneAddress(t *testing.T) {
	e := newEnv(t, Limits{MaxConnsPerIP: 20, NewConnsPerIPPerSec: 10, NewConnsBurst: 20})
	calm := e.device("calm", "tenantA")
	e.app("appA", "tenantA", "tokA")
	got := make(chan struct{}, 100)
	app := e.paho("appA", nil, "appA", "tokA")
	app.Subscribe("devices/calm/#", 0, func(paho.Client, paho.Message) { got <- struct{}{} }).WaitTimeout(5 * time.Second)
	dev := e.paho("calm", &calm.TLS, "", "")
	// 300 connections from 127.0.0.2 (loopback), bounded in count and time.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 2 * time.Second}
	var conns []net.Conn
	refused := 0
	for i := 0; i < 300; i++ {
		c, err := d.Dial("tcp", e.addr)
		if err != nil {
			refused++
			continue
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 10; i++ {
		dev.Publish("devices/calm/telemetry/t", 0, false, "ok").WaitTimeout(2 * time.Second)
	}
	received := 0
	timeout := time.After(5 * time.Second)
loop:
	for received < 10 {
		select {
		case <-got:
			received++
		case <-timeout:
			break loop
		}
	}
	if received < 10 {
		t.Fatalf("during the flood only %d of 10 messages of a calm device arrived", received)
	}
	if n := testutil.ToFloat64(e.b.m.connRefused); n < 200 {
		t.Fatalf("only %v of 300 flood connections were refused by the caps", n)
	}
}

func TestDisconnectDeviceClosesLiveSessions(t *testing.T) {
	e := newEnv(t, Limits{})
	leaf := e.device("dev1", "tenantA")
	lost := make(chan error, 1)
	o := paho.NewClientOptions().AddBroker("ssl://" + e.addr).SetClientID("dev1").SetTLSConfig(e.tlsConfig(&leaf.TLS)).
		SetAutoReconnect(false).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	start := time.Now()
	if n := e.b.DisconnectDevice("dev1"); n != 1 {
		t.Fatalf("closed %d sessions", n)
	}
	select {
	case <-lost:
		if d := time.Since(start); d > time.Second {
			t.Fatalf("session closed after %v, want < 1s", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the device's session stayed open")
	}
}

type rotator struct {
	mu      sync.Mutex
	current map[string]string
	onOK    func(id string)
}

func (r *rotator) RotateSecret(_ context.Context, id string, cur, next secrets.Text, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current[id] != cur.Reveal() || len(next.Reveal()) < 16 {
		return errors.New("wrong current secret")
	}
	r.current[id] = next.Reveal()
	r.onOK(id)
	return nil
}

func TestMustRotateDeviceCanOnlyRotateFirst(t *testing.T) {
	e := newEnv(t, Limits{})
	rot := &rotator{current: map[string]string{"sensor": "initial-secret-0001"}}
	rot.onOK = func(id string) {
		e.reg.mu.Lock()
		e.reg.apps["new-secret-0123456789"] = Identity{Kind: KindDevice, DeviceID: id, TenantID: "tenantA"}
		e.reg.mu.Unlock()
	}
	e.b.o.Rotator = rot
	e.reg.apps["initial-secret-0001"] = Identity{Kind: KindDevice, DeviceID: "sensor", TenantID: "tenantA", State: DeviceState{MustRotate: true}}
	e.app("appA", "tenantA", "tokA")
	got := make(chan string, 10)
	app := e.paho("appA", nil, "appA", "tokA")
	app.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { got <- m.Topic() + " " + string(m.Payload()) }).WaitTimeout(5 * time.Second)

	r := e.raw(nil)
	pk := connectPacket(5, "sensor")
	pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte("sensor")
	pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte("initial-secret-0001")
	// AuthenticatePassword of the test registry matches username to AppID;
	// register the device's username as well.
	e.reg.mu.Lock()
	id := e.reg.apps["initial-secret-0001"]
	id.AppID = "sensor"
	e.reg.apps["initial-secret-0001"] = id
	e.reg.mu.Unlock()
	if code := r.connack(pk); code != 0 {
		t.Fatalf("connect: 0x%x", code)
	}
	publish := func(id uint16, topic, payload string) byte {
		r.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, ProtocolVersion: 5, PacketID: id, TopicName: topic, Payload: []byte(payload)})
		typ, body, err := r.read()
		if err != nil || typ != packets.Puback {
			t.Fatalf("no PUBACK for %s: %v", topic, err)
		}
		if len(body) < 3 {
			return 0
		}
		return body[2]
	}
	if code := publish(1, "devices/sensor/telemetry/t", "1"); code != packets.ErrNotAuthorized.Code {
		t.Fatalf("telemetry before rotation: 0x%x, want 0x87", code)
	}
	if code := publish(2, "devices/sensor/credentials/rotate", `{"current":"wrong","new":"new-secret-0123456789"}`); code != packets.ErrNotAuthorized.Code {
		t.Fatalf("rotation with a wrong current secret: 0x%x", code)
	}
	if code := publish(3, "devices/sensor/credentials/rotate", `{"current":"initial-secret-0001","new":"new-secret-0123456789"}`); code != 0 {
		t.Fatalf("rotation: 0x%x", code)
	}
	if code := publish(4, "devices/sensor/telemetry/t", "2"); code != 0 {
		t.Fatalf("telemetry after rotation: 0x%x", code)
	}
	select {
	case m := <-got:
		if strings.Contains(m, "secret") || !strings.HasPrefix(m, "devices/sensor/telemetry/t") {
			t.Fatalf("subscriber saw %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("telemetry after rotation not delivered")
	}
	e.sink.mu.Lock()
	defer e.sink.mu.Unlock()
	for _, m := range e.sink.msgs {
		if strings.Contains(string(m.Payload), "secret") {
			t.Fatal("the rotation payload reached telemetry storage")
		}
	}
}

func TestHubPublishesOnlyToDeviceTopicsOfThatTenant(t *testing.T) {
	e := newEnv(t, Limits{})
	leaf := e.device("dev1", "tenantA")
	e.device("dev2", "tenantB")
	e.app("appB", "tenantB", "tokB")
	gotB := make(chan string, 10)
	appB := e.paho("appB", nil, "appB", "tokB")
	appB.Subscribe("#", 1, func(_ paho.Client, m paho.Message) { gotB <- m.Topic() }).WaitTimeout(5 * time.Second)
	got := make(chan string, 10)
	dev := e.paho("dev1", &leaf.TLS, "", "")
	dev.Subscribe("devices/dev1/commands", 1, func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) }).WaitTimeout(5 * time.Second)
	if err := e.b.PublishToDevice("dev1", "commands", []byte(`{"cmd":"open"}`), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if p != `{"cmd":"open"}` {
			t.Fatalf("device got %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the device did not receive the hub's command")
	}
	select {
	case topic := <-gotB:
		t.Fatalf("another tenant saw the command on %s", topic)
	case <-time.After(300 * time.Millisecond):
	}
	for _, sub := range []string{"telemetry/x", "../dev2/commands", "commands/#", ""} {
		if err := e.b.PublishToDevice("dev1", sub, []byte("x"), 1); err == nil {
			t.Errorf("hub published to devices/dev1/%s", sub)
		}
	}
	if err := e.b.PublishToDevice("dev1/+", "commands", []byte("x"), 0); err == nil {
		t.Error("hub published with a wildcard device ID")
	}
	r := e.raw(nil)
	e.app("spoof", "tenantA", "tokS")
	pk := connectPacket(5, hubClientID)
	pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte("spoof")
	pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte("tokS")
	if code := r.connack(pk); code != packets.ErrClientIdentifierNotValid.Code {
		t.Fatalf("a client posing as the hub: 0x%x", code)
	}
}

func TestSubscriptionQuotaAppliesToSubscribingNotDelivery(t *testing.T) {
	e := newEnv(t, Limits{MaxSubscriptions: 3})
	leaf := e.device("dev1", "tenantA")
	e.app("appA", "tenantA", "tokA")
	got := make(chan string, 10)
	app := e.paho("appA", nil, "appA", "tokA")
	for i, f := range []string{"devices/dev1/telemetry/a", "devices/dev1/telemetry/b", "devices/#"} {
		tok := app.Subscribe(f, 0, func(_ paho.Client, m paho.Message) { got <- m.Topic() })
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscription %d within the quota: %v", i, tok.Error())
		}
	}
	// The fourth is over the quota: refused in the SUBACK.
	tok := app.Subscribe("devices/dev1/events/#", 0, func(paho.Client, paho.Message) {})
	tok.WaitTimeout(5 * time.Second)
	if st, ok := tok.(*paho.SubscribeToken); !ok || st.Result()["devices/dev1/events/#"] != 0x80 {
		t.Fatalf("subscription over the quota: %+v", tok.(*paho.SubscribeToken).Result())
	}
	// An application at its quota still receives everything it subscribed to.
	dev := e.paho("dev1", &leaf.TLS, "", "")
	dev.Publish("devices/dev1/telemetry/a", 0, false, "1").WaitTimeout(5 * time.Second)
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("an application at its subscription quota received nothing")
	}
}
