package app

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/simonvetter/modbus"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/gateway"
	"github.com/rampart-iot/rampart/internal/gateway/plcsim"
	"github.com/rampart-iot/rampart/internal/testkit"
)

// plcModel is the PLC's model on the hub; the gateway keeps a stricter
// copy (speed at most gwMax) to show it judging for itself.
func plcModel(max float64) api.DeviceModel {
	return api.DeviceModel{
		Name: "pump-plc",
		Commands: []api.CommandSpec{
			{Name: "set_speed", Params: []api.ParamSpec{{Name: "rpm", Type: api.ParamNumber, Unit: "rpm", Min: fp(0), Max: fp(max), MaxRate: 1e6}}},
			{Name: "set_mode", Params: []api.ParamSpec{{Name: "mode", Type: api.ParamInteger, Min: fp(0), Max: fp(3)}}},
			{Name: "estop", EmergencyStop: true},
			{Name: "rearm", Rearm: true},
		},
		SafeState:  &api.SafeState{Outputs: map[string]float64{"rpm": 0}},
		CommandTTL: "10s", AckTimeout: "3s",
	}
}

// scadaPKI is a SCADA site's CA with a server certificate for the
// gateway and client certificates carrying Modbus roles.
type scadaPKI struct {
	t    *testing.T
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	n    int64
}

func newSCADAPKI(t *testing.T) *scadaPKI {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plant SCADA CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &scadaPKI{t: t, ca: ca, key: key, pool: pool, n: 1}
}

func (p *scadaPKI) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw})
}

// issue makes a certificate; roles become Modbus role extensions (one
// each), server makes it a server certificate for 127.0.0.1.
func (p *scadaPKI) issue(server bool, roles ...string) tls.Certificate {
	p.n++
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.n), Subject: pkix.Name{CommonName: fmt.Sprint("scada-", p.n)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	for _, r := range roles {
		v, _ := asn1.MarshalWithParams(r, "utf8")
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: gateway.RoleOID, Value: v})
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writePEMPair(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	kb, _ := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	mustWrite(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}))
	mustWrite(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
	return certFile, keyFile
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// scadaClient is a Modbus/TCP Security client (simonvetter/modbus, tcp+tls).
func scadaClient(t *testing.T, addr string, cert *tls.Certificate, roots *x509.CertPool) (*modbus.ModbusClient, error) {
	t.Helper()
	c, err := modbus.NewClient(&modbus.ClientConfiguration{URL: "tcp+tls://" + addr, Timeout: 2 * time.Second,
		TLSClientCert: cert, TLSRootCAs: roots, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Open(); err != nil {
		return nil, err
	}
	_ = c.SetUnitId(7)
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// lastRegisters returns the newest devices/{id}/telemetry/registers reading.
func (h *testHub) lastRegisters(tok, id string) map[string]any {
	var out map[string]any
	for _, m := range h.telemetry(tok, id, 1).Messages {
		if strings.HasSuffix(m.Topic, "/telemetry/registers") {
			out = nil
			_ = json.Unmarshal(m.JSON, &out)
		}
	}
	return out
}

type gwFixture struct {
	h        *testHub
	owner    string
	plc      *plcsim.PLC
	gw       *gateway.Gateway
	pki      *scadaPKI
	plcID    string
	gwID     string
	dir      string
	yamlPath string
}

// startGateway runs a hub, a simulated PLC and `rampart gateway`'s
// engine with one PLC: speed (holding 100, writable by set_speed.rpm),
// mode (holding 101, read-only), temp (input 0, int16, scale 0.1 °C),
// flow (holding 200, float32), running (coil 5).
func startGateway(t *testing.T) *gwFixture {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	decodeInto[api.DeviceModel](t, h.do("POST", "/api/v1/models", owner, plcModel(1500)), http.StatusCreated)
	gwDev := h.newDevice(owner, api.CreateDeviceRequest{Name: "gw-1"})
	plcDev := h.newDevice(owner, api.CreateDeviceRequest{Name: "pump-1", Model: "pump-plc"})

	plc, err := plcsim.Start("127.0.0.1:0", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(plc.Stop)
	plc.SetInput(0, uint16(0xFFFF&int(int16(215)))) // 21.5 °C
	plc.SetHolding(101, 1)

	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "ca.pem"), h.caPEM())
	mustWrite(t, filepath.Join(dir, "command-key.json"), h.do("GET", "/pki/command-key", "", nil).body)
	mustWrite(t, filepath.Join(dir, "gw.token"), []byte(gwDev.EnrollmentToken))
	mustWrite(t, filepath.Join(dir, "pump.token"), []byte(plcDev.EnrollmentToken))
	m, _ := json.Marshal(plcModel(1000))
	mustWrite(t, filepath.Join(dir, "pump-plc.json"), m)
	pki := newSCADAPKI(t)
	mustWrite(t, filepath.Join(dir, "scada-ca.pem"), pki.caPEM())
	writePEMPair(t, dir, "server", pki.issue(true))

	yml := fmt.Sprintf(`name: gw-1
hub:
  url: https://%s
  mqtt: %s
  ca_file: ca.pem
  command_key_file: command-key.json
state:
  dir: state
  key_file: state.key
enroll:
  token_files: {gw-1: gw.token, pump-1: pump.token}
plcs:
  - name: pump-1
    address: %s
    unit_id: 1
    model_file: pump-plc.json
    poll_interval: 50ms
    timeout: 200ms
    retries: 1
    backoff_max: 200ms
    scada_unit_id: 7
    registers:
      - {name: speed, function: holding, address: 100, type: uint16, unit: rpm, write: {command: set_speed, param: rpm}}
      - {name: mode, function: holding, address: 101, type: uint16}
      - {name: temp, function: input, address: 0, type: int16, scale: 0.1, unit: °C}
      - {name: flow, function: holding, address: 200, type: float32, unit: l/min}
      - {name: running, function: coil, address: 5, type: bool}
secure:
  addr: 127.0.0.1:0
  cert_file: server.crt
  key_file: server.key
  client_ca_file: scada-ca.pem
  roles:
    operator:
      - {plc: pump-1, functions: [3, 6, 16], ranges: ["100"]}
      - {plc: pump-1, functions: [3], ranges: ["0-299"]}
    viewer:
      - {plc: pump-1, functions: [3, 4], ranges: ["0-299"]}
`, h.addr, h.mqttAddr, plc.Addr())
	path := filepath.Join(dir, "gw.yaml")
	mustWrite(t, path, []byte(yml))
	cfg, err := gateway.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gw.Close() })
	if err := gw.WaitOnline(ctx); err != nil {
		t.Fatal(err)
	}
	ids := gw.DeviceIDs()
	if ids["pump-1"] != plcDev.ID || ids["gw-1"] != gwDev.ID {
		t.Fatalf("identities %v", ids)
	}
	return &gwFixture{h: h, owner: owner, plc: plc, gw: gw, pki: pki, plcID: plcDev.ID, gwID: gwDev.ID, dir: dir, yamlPath: path}
}

// TestGatewayEndToEnd: a simulated PLC on Modbus/TCP, the gateway with a
// PLC identity and its own, the real hub. Readings arrive scaled as the
// PLC's own telemetry; a command within the hub's and the gateway's
// policy becomes a Modbus write; commands off the allow-list or beyond
// the gateway's policy are refused and the register is unchanged; SCADA
// clients over Modbus/TCP Security are held to their role; the PLC going
// away and coming back is a fault and a recovery; all of it is journaled.
func TestGatewayEndToEnd(t *testing.T) {
	f := startGateway(t)
	h, owner := f.h, f.owner

	// Telemetry, scaled, under the PLC's own device.
	waitFor(t, "scaled PLC telemetry", 10*time.Second, func() bool {
		r := h.lastRegisters(owner, f.plcID)
		return r != nil && r["temp"] == 21.5 && r["mode"] == 1.0 && r["running"] == false
	})

	// A command within both policies: executed, the register written.
	c := mustCommand(t, h.command(owner, f.plcID, "set_speed", map[string]any{"rpm": 500}), http.StatusCreated)
	h.waitStatus(owner, c.ID, api.CommandExecuted)
	if got := f.plc.Holding(100); got != 500 {
		t.Fatalf("speed register %d after set_speed 500", got)
	}
	waitFor(t, "the new speed in telemetry", 5*time.Second, func() bool { return h.lastRegisters(owner, f.plcID)["speed"] == 500.0 })

	// Within the hub's policy (1500), beyond the gateway's copy (1000): refused at the gateway.
	writes := f.plc.Writes()
	c = mustCommand(t, h.command(owner, f.plcID, "set_speed", map[string]any{"rpm": 1200}), http.StatusCreated)
	if c = h.waitStatus(owner, c.ID, api.CommandRejected); c.AckCode != "policy" {
		t.Fatalf("gateway policy refusal: %+v", c)
	}
	// In the model, not on the gateway's write allow-list: refused.
	c = mustCommand(t, h.command(owner, f.plcID, "set_mode", map[string]any{"mode": 2}), http.StatusCreated)
	if c = h.waitStatus(owner, c.ID, api.CommandRejected); c.AckCode != "not_allowed" {
		t.Fatalf("allow-list refusal: %+v", c)
	}
	// Out of the hub's bounds: never sent.
	mustCommand(t, h.command(owner, f.plcID, "set_speed", map[string]any{"rpm": 5000}), http.StatusUnprocessableEntity)
	if f.plc.Holding(100) != 500 || f.plc.Holding(101) != 1 || f.plc.Writes() != writes {
		t.Fatalf("a refused command reached the PLC: speed %d mode %d", f.plc.Holding(100), f.plc.Holding(101))
	}

	// SCADA over Modbus/TCP Security.
	addr := f.gw.SecureAddr()
	opCert := f.pki.issue(false, "operator")
	op, err := scadaClient(t, addr, &opCert, f.pki.pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := op.WriteRegister(100, 700); err != nil {
		t.Fatalf("operator write: %v", err)
	}
	if v, err := op.ReadRegister(101, modbus.HOLDING_REGISTER); err != nil || v != 1 {
		t.Fatalf("operator read: %d %v", v, err)
	}
	if err := op.WriteRegister(101, 3); err != modbus.ErrIllegalDataAddress {
		t.Fatalf("operator write outside its range: %v", err)
	}
	// A SCADA write to a register a command drives obeys that command's
	// bounds in the model too: the operator may write speed, not 5000 rpm.
	if err := op.WriteRegister(100, 5000); err != modbus.ErrIllegalDataValue {
		t.Fatalf("operator write beyond the model's bounds: %v", err)
	}
	if v, err := op.ReadRegister(100, modbus.HOLDING_REGISTER); err != nil || v != 700 {
		t.Fatalf("speed after the refused write: %d %v", v, err)
	}
	viewerCert := f.pki.issue(false, "viewer")
	viewer, err := scadaClient(t, addr, &viewerCert, f.pki.pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := viewer.WriteRegister(100, 900); err != modbus.ErrIllegalFunction {
		t.Fatalf("viewer write: %v", err)
	}
	if v, err := viewer.ReadRegister(100, modbus.HOLDING_REGISTER); err != nil || v != 700 {
		t.Fatalf("viewer read: %d %v", v, err)
	}
	if f.plc.Holding(100) != 700 || f.plc.Holding(101) != 1 {
		t.Fatalf("registers after SCADA: speed %d mode %d", f.plc.Holding(100), f.plc.Holding(101))
	}
	// Refused clients: no certificate, another CA's, no role, two roles, an unknown role.
	other := newSCADAPKI(t)
	for name, cert := range map[string]*tls.Certificate{
		"another CA": ptr(other.issue(false, "operator")), "no role": ptr(f.pki.issue(false)),
		"two roles": ptr(f.pki.issue(false, "operator", "viewer")), "unknown role": ptr(f.pki.issue(false, "admin")),
	} {
		c, err := scadaClient(t, addr, cert, f.pki.pool)
		if err == nil {
			err = c.WriteRegister(100, 1)
		}
		if err == nil {
			t.Errorf("%s: the write was accepted", name)
		}
	}
	// No certificate at all (the library's client cannot even be configured
	// so): a raw TLS client sends a write frame and gets no answer.
	if tc, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: f.pki.pool, ServerName: "127.0.0.1"}); err == nil {
		_, _ = tc.Write([]byte{0, 1, 0, 0, 0, 6, 7, 6, 0, 100, 0, 1}) // FC6 register 100 = 1
		_ = tc.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := tc.Read(make([]byte, 64)); err == nil {
			t.Errorf("a client without a certificate got %d bytes back", n)
		}
		tc.Close()
	}
	if f.plc.Holding(100) != 700 {
		t.Fatalf("a refused SCADA client changed the PLC: %d", f.plc.Holding(100))
	}

	// A real Modbus client (mbpoll): plain Modbus/TCP to the secure port gets
	// nothing; on the PLC's own segment it changes a register, and the hub sees it.
	t.Run("mbpoll", func(t *testing.T) { // a subtest: a skip here skips only this part
		mbpoll := testkit.NeedTool(t, "mbpoll")
		host, port, _ := net.SplitHostPort(addr)
		out, err := exec.Command(mbpoll, "-m", "tcp", "-a", "7", "-r", "101", "-p", port, "-1", "-0", "-o", "1", host).CombinedOutput()
		if err == nil {
			t.Fatalf("mbpoll read the secure port in plaintext: %s", out)
		}
		host, port, _ = net.SplitHostPort(f.plc.Addr())
		out, err = exec.Command(mbpoll, "-m", "tcp", "-a", "1", "-r", "101", "-p", port, "-0", "-o", "1", host, "2").CombinedOutput()
		if err != nil {
			t.Fatalf("mbpoll write to the PLC: %v %s", err, out)
		}
		waitFor(t, "mbpoll's write in telemetry", 5*time.Second, func() bool { return h.lastRegisters(owner, f.plcID)["mode"] == 2.0 })
	})

	// The PLC goes away and comes back.
	f.plc.Stop()
	waitFor(t, "a failed poll", 5*time.Second, func() bool { return f.gw.Stats().PollsFailed > 0 })
	f.plc.SetInput(0, 230)
	if err := f.plc.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "readings after the PLC came back", 10*time.Second, func() bool { return h.lastRegisters(owner, f.plcID)["temp"] == 23.0 })

	time.Sleep(300 * time.Millisecond) // events in flight reach the hub
	f.gw.Close()
	wantActions(t, h.journalActions(),
		"gateway.write/success",           // set_speed and the operator's write
		"gateway.refused/denied",          // allow-list, SCADA rights, handshakes, roles
		"safety.device_refused/denied",    // the gateway's Guard (policy)
		"gateway.fault/failure",           // the PLC went away
		"gateway.recovered/success",       // and came back
		"safety.command_executed/success", // the hub's record of the executed command
	)
	// Each kind of refusal is there, with who and why.
	var buf strings.Builder
	if err := ExportJournal(t.Context(), h.cfg, &buf); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for line := range strings.SplitSeq(buf.String(), "\n") {
		var e struct {
			Actor  string            `json:"actor"`
			Action string            `json:"action"`
			Detail map[string]string `json:"detail"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || !strings.HasPrefix(e.Action, "gateway.") {
			continue
		}
		seen[e.Action+" "+e.Detail["source"]+" "+e.Detail["code"]+" "+e.Detail["role"]] = true
		if e.Actor != "device:"+f.plcID && e.Actor != "device:"+f.gwID {
			t.Errorf("gateway event from %s", e.Actor)
		}
	}
	for _, want := range []string{
		"gateway.refused command not_allowed ", // set_mode
		"gateway.write command  ",              // set_speed 500
		"gateway.write scada  operator",        // FC6 by the operator
		"gateway.refused scada not_allowed operator",
		"gateway.refused scada not_allowed viewer",
		"gateway.refused scada tls ",          // no certificate, another CA
		"gateway.refused scada no_role ",      // no role, two roles
		"gateway.refused scada no_role admin", // a role with no rights here
		"gateway.fault poll unreachable ",
		"gateway.recovered poll  ",
	} {
		if !seen[want] {
			t.Errorf("journal lacks %q; has %v", want, seen)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// TestGatewayLatencyFigures logs the time from a PLC register change to
// the reading being served by the hub's API (a figure, not an assertion):
// poll interval (50 ms here) + MQTT + the hub's telemetry batching (up to
// 100 ms) + this test's API polling (20 ms). RAMPART_FIGURES=N for N samples.
func TestGatewayLatencyFigures(t *testing.T) {
	n := 10
	if s := os.Getenv("RAMPART_FIGURES"); s != "" {
		fmt.Sscan(s, &n)
	}
	f := startGateway(t)
	var lat []time.Duration
	for i := range n {
		v := uint16(1000 + i)
		start := time.Now()
		f.plc.SetHolding(101, v)
		waitFor(t, "the change at the hub", 10*time.Second, func() bool { return f.h.lastRegisters(f.owner, f.plcID)["mode"] == float64(v) })
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("%d samples: PLC register change -> hub API p50 %v, max %v (poll interval 50ms)", n, lat[len(lat)/2], lat[len(lat)-1])
}
