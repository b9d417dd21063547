package app

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/sdk"
	"github.com/rampart-iot/rampart/sdk/keystore"
	"github.com/rampart-iot/rampart/sdk/safety"
)

func fp(v float64) *float64 { return &v }

// e2ePumpModel is the hub's policy; the device keeps a stricter copy
// (deviceMax) to show the device judging for itself.
func e2ePumpModel(max float64) api.DeviceModel {
	return api.DeviceModel{
		Name: "pump",
		Commands: []api.CommandSpec{
			{Name: "set_speed", Params: []api.ParamSpec{{Name: "rpm", Type: api.ParamNumber, Unit: "rpm", Min: fp(0), Max: fp(max), MaxRate: 1e6}}},
			{Name: "motor_start", Hazard: api.HazardHazardous, Approval: api.ApprovalSecondPerson,
				Interlocks: []api.Interlock{{Name: "door", Fact: "door_open", Op: "eq", Value: true}}},
			{Name: "stall"},
			{Name: "estop", EmergencyStop: true},
			{Name: "rearm", Rearm: true},
		},
		SafeState:  &api.SafeState{Outputs: map[string]float64{"rpm": 0}},
		CommandTTL: "10s",
		AckTimeout: "1s",
	}
}

// guardMiddleware is how the SDK's command pipeline calls the device-side
// safety Guard: before the handler, on the exact payload, keeping the
// Guard's refusal code in the ack.
func guardMiddleware(g *safety.Guard) sdk.Middleware {
	return sdk.Verify(sdk.VerifierFunc(func(_ context.Context, cmd *sdk.Command) error {
		_, err := g.Admit(cmd.Raw)
		var r *safety.Rejection
		if errors.As(err, &r) {
			return sdk.Reject(r.Code, "%s", r.Message)
		}
		return err
	}))
}

var pumpCount atomic.Int64

type pumpDevice struct {
	client *sdk.Client
	guard  *safety.Guard
	id     string
	mu     sync.Mutex
	ran    []string
	acked  chan time.Time // one per command the handler ran
}

// startPump enrolls a device of model "pump" with the SDK, pins the hub's
// command key from GET /pki/command-key, and connects it with the Guard in
// its command pipeline.
func (h *testHub) startPump(owner string, deviceMax float64) *pumpDevice {
	t := h.t
	t.Helper()
	r := h.do("GET", "/pki/command-key", "", nil) // public: a device has no bearer token
	if r.status != http.StatusOK {
		t.Fatalf("command key: %d %s", r.status, r.body)
	}
	ck := decodeJSON[api.CommandKey](t, r)
	pub, err := base64.StdEncoding.DecodeString(ck.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize || ck.KeyID != safety.KeyID(pub) {
		t.Fatalf("command key %+v", ck)
	}
	dev := h.newDevice(owner, api.CreateDeviceRequest{Name: fmt.Sprintf("pump-%d", pumpCount.Add(1)), Model: "pump"})
	ks, _ := newKeystore(t, t.TempDir(), "pump")
	d, err := sdk.Enroll(context.Background(), ks, sdk.Enrollment{Hub: h.hubURL(), MQTT: h.mqttAddr,
		Trust: sdk.Trust{CABundle: h.caPEM()}, Token: keystore.NewSecret(dev.EnrollmentToken)})
	if err != nil {
		t.Fatal(err)
	}
	p := &pumpDevice{id: d.ID(), acked: make(chan time.Time, 1024)}
	p.guard, err = safety.NewGuard(safety.GuardOptions{DeviceID: d.ID(), HubKey: pub, Model: e2ePumpModel(deviceMax),
		Facts: safety.MapFacts{Values: map[string]any{"door_open": false}},
		Report: func(ev safety.Event) {
			if p.client != nil {
				_ = p.client.Event("safety", ev.Wire()) // journaled by the hub as safety.device_*
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	handler := sdk.HandlerFunc(func(ctx context.Context, cmd *sdk.Command) (any, error) {
		if cmd.Name == "stall" {
			time.Sleep(1500 * time.Millisecond) // past the 1 s ack deadline
		}
		p.mu.Lock()
		p.ran = append(p.ran, cmd.Name)
		p.mu.Unlock()
		p.acked <- time.Now()
		return nil, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p.client, err = sdk.Connect(ctx, d, sdk.Options{DisableAutoRenew: true, Commands: sdk.Chain(handler, guardMiddleware(p.guard))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.client.Close() })
	return p
}

func (h *testHub) command(tok, device, name string, params any) reply {
	h.t.Helper()
	req := api.CommandRequest{Name: name}
	if params != nil {
		req.Params, _ = json.Marshal(params)
	}
	return h.do("POST", "/api/v1/devices/"+device+"/commands", tok, req)
}

func (h *testHub) commandStatus(tok, id string) api.Command {
	h.t.Helper()
	r := h.do("GET", "/api/v1/commands/"+id, tok, nil)
	if r.status != http.StatusOK {
		h.t.Fatalf("GET command: %d %s", r.status, r.body)
	}
	return decodeJSON[api.Command](h.t, r)
}

func (h *testHub) waitStatus(tok, id, want string) api.Command {
	h.t.Helper()
	var c api.Command
	waitFor(h.t, "command "+id+" "+want, 10*time.Second, func() bool {
		c = h.commandStatus(tok, id)
		return c.Status == want
	})
	return c
}

// waitTelemetry waits until the newest telemetry message is body.
func (h *testHub) waitTelemetry(tok, id, body string) {
	h.t.Helper()
	waitFor(h.t, "telemetry "+body, 5*time.Second, func() bool {
		var last string
		for _, m := range h.telemetry(tok, id, 1).Messages {
			if strings.Contains(m.Topic, "/telemetry/") {
				last = string(m.JSON)
			}
		}
		return last == body
	})
}

func mustCommand(t *testing.T, r reply, status int) api.Command {
	t.Helper()
	if r.status != status {
		t.Fatalf("want %d, got %d %s", status, r.status, r.body)
	}
	if status == http.StatusUnprocessableEntity {
		return decodeJSON[api.CommandRefusal](t, r).Command
	}
	return decodeJSON[api.Command](t, r)
}

// TestCommandsEndToEnd goes through the real hub: API -> policy -> signed
// envelope over MQTT QoS 1 -> the SDK with the safety Guard -> ack ->
// status executed; refusals by the hub (bounds, interlock on live
// telemetry) and by the device's own policy; select-before-operate with a
// second person (self-approval refused); an emergency stop that passes
// while a hazardous command waits and withdraws it; a missed deadline.
func TestCommandsEndToEnd(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	ah := &acctHub{testHub: h}
	ah.addUser(owner, "ada@alpha.example", "admin", "copper lantern river autumn")
	admin := h.login("ada@alpha.example", "copper lantern river autumn")
	ah.addUser(owner, "vic@alpha.example", "viewer", "quiet harbour maple tundra")
	viewer := h.login("vic@alpha.example", "quiet harbour maple tundra")

	if r := h.do("POST", "/api/v1/models", viewer, e2ePumpModel(3000)); r.status != http.StatusForbidden {
		t.Fatalf("viewer wrote a model: %d", r.status)
	}
	bad := e2ePumpModel(3000)
	bad.Commands[0].Params[0].Max = nil
	if r := h.do("POST", "/api/v1/models", owner, bad); r.status != http.StatusBadRequest {
		t.Fatalf("unbounded model: %d %s", r.status, r.body)
	}
	m := decodeInto[api.DeviceModel](t, h.do("POST", "/api/v1/models", owner, e2ePumpModel(3000)), http.StatusCreated)
	if m.Version != 1 {
		t.Fatalf("version %d", m.Version)
	}
	p := h.startPump(owner, 1000)

	// Accepted by the hub and the device: executed.
	c := mustCommand(t, h.command(owner, p.id, "set_speed", map[string]any{"rpm": 500}), http.StatusCreated)
	if c.Status != api.CommandSent || c.Seq != 1 {
		t.Fatalf("sent: %+v", c)
	}
	h.waitStatus(owner, c.ID, api.CommandExecuted)

	// Accepted by the hub, refused by the device's stricter copy.
	c = mustCommand(t, h.command(owner, p.id, "set_speed", map[string]any{"rpm": 2000}), http.StatusCreated)
	if c = h.waitStatus(owner, c.ID, api.CommandRejected); c.AckCode != safety.CodePolicy {
		t.Fatalf("device refusal code %q", c.AckCode)
	}

	// Refused by the hub: out of bounds (never clamped), nothing sent.
	c = mustCommand(t, h.command(owner, p.id, "set_speed", map[string]any{"rpm": 5000}), http.StatusUnprocessableEntity)
	if c.Status != api.CommandRefused || c.Verdict.Failures[0].Rule != "bounds" {
		t.Fatalf("bounds: %+v", c)
	}
	if r := h.command(viewer, p.id, "estop", nil); r.status != http.StatusForbidden {
		t.Fatalf("viewer sent a command: %d", r.status)
	}

	// Interlock on the latest telemetry.
	if err := p.client.Telemetry("door", map[string]any{"door_open": true}); err != nil {
		t.Fatal(err)
	}
	h.waitTelemetry(owner, p.id, `{"door_open":true}`)
	c = mustCommand(t, h.command(owner, p.id, "motor_start", nil), http.StatusUnprocessableEntity)
	if c.Verdict.Failures[0].Rule != "interlock" {
		t.Fatalf("interlock: %+v", c.Verdict)
	}
	_ = p.client.Telemetry("door", map[string]any{"door_open": false})
	h.waitTelemetry(owner, p.id, `{"door_open":false}`)

	// Select-before-operate: waits for a second person; self-approval refused.
	waiting := mustCommand(t, h.command(owner, p.id, "motor_start", nil), http.StatusCreated)
	if waiting.Status != api.CommandAwaitingApproval {
		t.Fatalf("hazardous: %+v", waiting)
	}
	if r := h.do("POST", "/api/v1/commands/"+waiting.ID+"/approve", owner, nil); r.status != http.StatusForbidden {
		t.Fatalf("self-approval: %d %s", r.status, r.body)
	}

	// Emergency stop passes at once while it waits, and withdraws it.
	stop := mustCommand(t, h.command(owner, p.id, "estop", nil), http.StatusCreated)
	h.waitStatus(owner, stop.ID, api.CommandExecuted)
	if got := h.commandStatus(owner, waiting.ID); got.Status != api.CommandCancelled {
		t.Fatalf("waiting command after the stop: %s", got.Status)
	}
	if r := h.do("POST", "/api/v1/commands/"+waiting.ID+"/approve", admin, nil); r.status != http.StatusConflict {
		t.Fatalf("approving a withdrawn command: %d %s", r.status, r.body)
	}
	if !p.guard.Status().Stopped {
		t.Fatal("the device is not latched stopped")
	}
	c = mustCommand(t, h.command(owner, p.id, "set_speed", map[string]any{"rpm": 10}), http.StatusUnprocessableEntity)
	if c.Verdict.Failures[0].Rule != "estopped" {
		t.Fatalf("after the stop: %+v", c.Verdict)
	}
	h.waitStatus(owner, mustCommand(t, h.command(owner, p.id, "rearm", nil), http.StatusCreated).ID, api.CommandExecuted)

	// Approved by a second person: executed.
	again := mustCommand(t, h.command(owner, p.id, "motor_start", nil), http.StatusCreated)
	ap := decodeInto[api.Command](t, h.do("POST", "/api/v1/commands/"+again.ID+"/approve", admin, nil), http.StatusOK)
	if ap.Status != api.CommandSent || ap.ApprovedBy == "" || ap.ApprovedBy == ap.IssuedBy {
		t.Fatalf("approval: %+v", ap)
	}
	h.waitStatus(owner, again.ID, api.CommandExecuted)

	// Not acknowledged before the deadline: failed (the late ack changes nothing).
	stall := mustCommand(t, h.command(owner, p.id, "stall", nil), http.StatusCreated)
	if c := h.waitStatus(owner, stall.ID, api.CommandFailed); c.AckCode != "no_ack" {
		t.Fatalf("deadline: %+v", c)
	}
	time.Sleep(700 * time.Millisecond)
	if c := h.commandStatus(owner, stall.ID); c.Status != api.CommandFailed {
		t.Fatalf("late ack revived the command: %s", c.Status)
	}

	list := decodeInto[api.CommandList](t, h.do("GET", "/api/v1/devices/"+p.id+"/commands", viewer, nil), http.StatusOK)
	if len(list.Commands) != 10 {
		t.Fatalf("%d commands listed, want 10", len(list.Commands))
	}
	p.mu.Lock()
	ran := slices.Clone(p.ran)
	p.mu.Unlock()
	if want := []string{"set_speed", "estop", "rearm", "motor_start", "stall"}; !slices.Equal(ran, want) {
		t.Fatalf("the device ran %v, want %v", ran, want)
	}
}

// TestCommandLatencyFigures measures API -> device ack latency through the
// real hub and logs p50/p99 (a figure, not an assertion), sequentially,
// one command in flight at a time. 30 commands by
// default; RAMPART_FIGURES=N runs N:
//
//	RAMPART_FIGURES=500 go test -run TestCommandLatencyFigures -v ./internal/app/
func TestCommandLatencyFigures(t *testing.T) {
	n := 30
	if s := os.Getenv("RAMPART_FIGURES"); s != "" {
		fmt.Sscan(s, &n)
	}
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	decodeInto[api.DeviceModel](t, h.do("POST", "/api/v1/models", owner, e2ePumpModel(3000)), http.StatusCreated)
	var p *pumpDevice
	var toAck, toExecuted []time.Duration
	for i := range n {
		if i%100 == 0 { // a new device every 100 commands: the quota is 120 per device per minute
			p = h.startPump(owner, 3000)
		}
		start := time.Now()
		c := mustCommand(t, h.command(owner, p.id, "set_speed", map[string]any{"rpm": i % 3000}), http.StatusCreated)
		select {
		case at := <-p.acked:
			toAck = append(toAck, at.Sub(start))
		case <-time.After(10 * time.Second):
			t.Fatal("no ack")
		}
		h.waitStatus(owner, c.ID, api.CommandExecuted)
		toExecuted = append(toExecuted, time.Since(start))
	}
	pct := func(d []time.Duration, q float64) time.Duration {
		slices.Sort(d)
		return d[min(len(d)-1, int(q*float64(len(d))))]
	}
	t.Logf("%d commands: API -> device handler p50 %v p99 %v; API -> status executed (polled) p50 %v p99 %v",
		n, pct(toAck, 0.5), pct(toAck, 0.99), pct(toExecuted, 0.5), pct(toExecuted, 0.99))
}

// makeCommandsB gives tenant B of the cross-tenant walk a model and a
// command waiting for approval (on a second device of that model).
func makeCommandsB(h *acctHub, ownerTok string) (model, command string) {
	t := h.t
	t.Helper()
	m := e2ePumpModel(3000)
	m.Name = "b-secret-model"
	decodeInto[api.DeviceModel](t, h.do("POST", "/api/v1/models", ownerTok, m), http.StatusCreated)
	dev := h.newDevice(ownerTok, api.CreateDeviceRequest{Name: "b-pump-2", Model: m.Name})
	c := mustCommand(t, h.command(ownerTok, dev.ID, "motor_start", nil), http.StatusUnprocessableEntity) // no door telemetry: interlock
	return m.Name, c.ID
}

// TestFailsafeWhenHubCutOff: a device whose model has a 500 ms failsafe
// treats every acknowledgement from the hub (PUBACK of its telemetry) as a
// sign of life; when the hub goes away the Guard puts it in the safe state
// 500 ms after the hub was last heard, and reports it.
func TestFailsafeWhenHubCutOff(t *testing.T) {
	h := startHub(t, testConfig(t, t.TempDir()))
	owner := h.setupAndLogin()
	m := e2ePumpModel(3000)
	m.FailsafeTimeout = "500ms"
	decodeInto[api.DeviceModel](t, h.do("POST", "/api/v1/models", owner, m), http.StatusCreated)
	p := h.startPump(owner, 3000)
	// startPump's Guard has no failsafe; this one does (same device).
	pub, _ := base64.StdEncoding.DecodeString(decodeJSON[api.CommandKey](t, h.do("GET", "/pki/command-key", "", nil)).PublicKey)
	entered := make(chan time.Time, 1)
	g, err := safety.NewGuard(safety.GuardOptions{DeviceID: p.id, HubKey: pub, Model: m,
		SafeState: func(reason string) {
			if reason == "failsafe" {
				entered <- time.Now()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Run(ctx)
	var mu sync.Mutex
	var lastHeard time.Time
	go func() { // the device's heartbeat and its watch on the hub's PUBACKs
		acked := p.client.Stats().Acked
		for ctx.Err() == nil {
			_ = p.client.Telemetry("beat", map[string]any{"ok": true})
			time.Sleep(20 * time.Millisecond)
			if a := p.client.Stats().Acked; a > acked {
				acked = a
				mu.Lock()
				lastHeard = time.Now() // before Heard: the failsafe can only come later
				mu.Unlock()
				g.Heard()
			}
		}
	}()
	time.Sleep(time.Second) // the hub answers: no failsafe
	select {
	case <-entered:
		t.Fatal("failsafe while the hub was answering")
	default:
	}
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-entered:
		mu.Lock()
		d := at.Sub(lastHeard)
		mu.Unlock()
		if d < 500*time.Millisecond || d > 900*time.Millisecond {
			t.Fatalf("failsafe %v after the hub was last heard; want 500 ms (plus scheduling slack)", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no failsafe after the hub was cut off")
	}
	if st := g.Status(); !st.Failsafe || st.Outputs["rpm"].Value != 0 {
		t.Fatalf("status %+v", st)
	}
}
