package safety

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/rampart-iot/rampart/api"
)

func f64(v float64) *float64 { return &v }

// pumpModel is the model the tests share: a speed with bounds and a rate,
// a valve, a hazardous start behind an interlock and a second person, an
// emergency stop, a re-arm, a failsafe.
func pumpModel() api.DeviceModel {
	return api.DeviceModel{
		Name: "pump", Version: 3,
		Commands: []api.CommandSpec{
			{Name: "set_speed", Params: []api.ParamSpec{{Name: "rpm", Type: api.ParamNumber, Unit: "rpm", Min: f64(0), Max: f64(3000), MaxRate: 100}}},
			{Name: "set_valve", Params: []api.ParamSpec{{Name: "open", Type: api.ParamBool, Output: "valve"}}, MinInterval: "2s"},
			{Name: "motor_start", Hazard: api.HazardHazardous, Approval: api.ApprovalSecondPerson,
				Interlocks: []api.Interlock{{Name: "door", Fact: "door_open", Op: "eq", Value: true}}},
			{Name: "flush", Windows: []api.TimeWindow{{Start: "22:00", End: "06:00"}}},
			{Name: "estop", EmergencyStop: true},
			{Name: "rearm", Rearm: true},
		},
		SafeState:       &api.SafeState{Outputs: map[string]float64{"rpm": 0, "valve": 0}},
		FailsafeTimeout: "2s",
		CommandTTL:      "10s",
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var t0 = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC) // a Wednesday, noon

// hub signs envelopes the way internal/safety does.
type hub struct {
	key ed25519.PrivateKey
	seq uint64
	clk *clock
	ttl time.Duration
}

func newKey(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }

func (h *hub) sign(t testing.TB, device, name string, params any) []byte {
	t.Helper()
	h.seq++
	var raw json.RawMessage
	if params != nil {
		raw, _ = json.Marshal(params)
	}
	now := h.clk.Now()
	env := api.CommandEnvelope{ID: fmt.Sprintf("cmd_%d", h.seq), DeviceID: device, Name: name, Params: raw, Seq: h.seq,
		Nonce: fmt.Sprintf("n%d", h.seq), IssuedAt: now.Format(TimeFormat), ExpiresAt: now.Add(h.ttl).Format(TimeFormat), ModelVersion: 3}
	b, err := Sign(h.key, &env)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type recorder struct {
	mu     sync.Mutex
	safe   []string
	events []Event
}

func (r *recorder) safeState(reason string) {
	r.mu.Lock()
	r.safe = append(r.safe, reason)
	r.mu.Unlock()
}
func (r *recorder) report(e Event) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func newGuard(t testing.TB, clk *clock, facts Facts, rec *recorder) (*Guard, *hub) {
	t.Helper()
	h := &hub{key: newKey(1), clk: clk, ttl: 10 * time.Second}
	g, err := NewGuard(GuardOptions{DeviceID: "dev_a", HubKey: h.key.Public().(ed25519.PublicKey), Model: pumpModel(),
		Facts: facts, Now: clk.Now, SafeState: rec.safeState, Report: rec.report})
	if err != nil {
		t.Fatal(err)
	}
	return g, h
}

func code(err error) string {
	var r *Rejection
	if errors.As(err, &r) {
		return r.Code
	}
	if err != nil {
		return "?" + err.Error()
	}
	return ""
}

func TestCompileRefusesUnsafeModels(t *testing.T) {
	for name, mut := range map[string]func(m *api.DeviceModel){
		"fail/no-bounds":               func(m *api.DeviceModel) { m.Commands[0].Params[0].Max = nil },
		"fail/hazardous-no-approval":   func(m *api.DeviceModel) { m.Commands[2].Approval = "" },
		"fail/rate-without-safe-value": func(m *api.DeviceModel) { delete(m.SafeState.Outputs, "rpm") },
		"fail/failsafe-without-safe-state": func(m *api.DeviceModel) {
			m.SafeState = nil
		},
		"fail/estop-with-params": func(m *api.DeviceModel) { m.Commands[4].Params = m.Commands[0].Params },
		"fail/bad-op":            func(m *api.DeviceModel) { m.Commands[2].Interlocks[0].Op = "like" },
		"fail/bad-window":        func(m *api.DeviceModel) { m.Commands[3].Windows[0].End = "25:00" },
		"fail/duplicate-command": func(m *api.DeviceModel) { m.Commands[1].Name = "set_speed" },
		"fail/safe-out-of-bounds": func(m *api.DeviceModel) {
			m.SafeState.Outputs["rpm"] = -1
		},
	} {
		t.Run(name, func(t *testing.T) {
			m := pumpModel()
			mut(&m)
			if _, err := Compile(m); err == nil {
				t.Fatal("compiled")
			}
		})
	}
	if _, err := Compile(pumpModel()); err != nil {
		t.Fatalf("ok/pump: %v", err)
	}
}

// TestVerdictNamesEveryFailedRule: one command failing several rules gets
// all of them, bounds are rejected never clamped, unknown facts block.
func TestVerdictNamesEveryFailedRule(t *testing.T) {
	p, err := Compile(pumpModel())
	if err != nil {
		t.Fatal(err)
	}
	st := p.NewState(t0)
	d := p.Evaluate(st, "set_speed", json.RawMessage(`{"rpm":5000,"extra":1}`), nil, t0)
	if d.Allowed() || len(d.Verdict.Failures) != 2 || d.Verdict.Failures[0].Rule != "schema" || d.Verdict.Failures[1].Rule != "bounds" {
		t.Fatalf("verdict %+v", d.Verdict)
	}
	if _, set := d.Outputs["rpm"]; set {
		t.Fatal("an out-of-bounds value was turned into an output (clamped)")
	}
	// Interlock: door open blocks; unknown door blocks; closed door passes.
	cases := []struct {
		name  string
		facts Facts
		ok    bool
	}{
		{"fail/door-open", MapFacts{Values: map[string]any{"door_open": true}, At: t0}, false},
		{"fail/door-unknown", MapFacts{Values: map[string]any{}}, false},
		{"fail/door-wrong-type", MapFacts{Values: map[string]any{"door_open": "yes"}}, false},
		{"ok/door-closed", MapFacts{Values: map[string]any{"door_open": false}, At: t0}, true},
	}
	for _, c := range cases {
		d := p.Evaluate(st, "motor_start", nil, c.facts, t0)
		if d.Allowed() != c.ok {
			t.Errorf("%s: allowed=%v %+v", c.name, d.Allowed(), d.Verdict.Failures)
		}
		if !c.ok && d.Verdict.Failures[0].Rule != "interlock" {
			t.Errorf("%s: rule %s", c.name, d.Verdict.Failures[0].Rule)
		}
	}
	// Window 22:00-06:00 UTC: refused at noon, allowed at 23:00 and 05:59.
	for _, c := range []struct {
		at time.Time
		ok bool
	}{{t0, false}, {t0.Add(11 * time.Hour), true}, {t0.Add(17*time.Hour + 59*time.Minute), true}, {t0.Add(18 * time.Hour), false}} {
		if d := p.Evaluate(st, "flush", nil, nil, c.at); d.Allowed() != c.ok {
			t.Errorf("flush at %s: allowed=%v", c.at.Format("15:04"), d.Allowed())
		}
	}
	// Minimum interval.
	d = p.Evaluate(st, "set_valve", json.RawMessage(`{"open":true}`), nil, t0)
	p.Apply(st, d, t0)
	if d := p.Evaluate(st, "set_valve", json.RawMessage(`{"open":false}`), nil, t0.Add(time.Second)); d.Allowed() || d.Verdict.Failures[0].Rule != "min_interval" {
		t.Errorf("min interval: %+v", d.Verdict)
	}
}

// TestPropertyNoAcceptedSequenceLeavesBoundsOrRate drives the Guard with
// random sequences of fresh commands, replays, expired and foreign-signed
// commands, stops, re-arms and failsafes, and checks after every step that
// the output is inside its bounds and that every accepted step of rpm
// moved no faster than 100 rpm/s from the output's previous value.
func TestPropertyNoAcceptedSequenceLeavesBoundsOrRate(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		clk := &clock{t: t0}
		rec := &recorder{}
		g, h := newGuard(t, clk, MapFacts{Values: map[string]any{"door_open": false}}, rec)
		other := &hub{key: newKey(2), clk: clk, ttl: 10 * time.Second, seq: 1 << 40}
		var sent [][]byte
		stopped := false
		steps := rapid.IntRange(1, 60).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			clk.Add(time.Duration(rapid.IntRange(0, 4000).Draw(rt, "dt_ms")) * time.Millisecond)
			g.Tick()
			before := g.Status()
			switch rapid.IntRange(0, 9).Draw(rt, "action") {
			case 0: // replay an earlier genuine command
				if len(sent) > 0 {
					old := sent[rapid.IntRange(0, len(sent)-1).Draw(rt, "which")]
					if _, err := g.Admit(old); err == nil {
						rt.Fatalf("replay accepted")
					}
				}
			case 1: // expired: signed long ago
				saved := clk.Now()
				clk.t = saved.Add(-time.Minute)
				p := h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 10})
				clk.t = saved
				if _, err := g.Admit(p); err == nil {
					rt.Fatalf("expired command accepted")
				}
			case 2: // another key
				if _, err := g.Admit(other.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 1})); code(err) != CodeBadSignature {
					rt.Fatalf("foreign command: %v", err)
				}
			case 3:
				p := h.sign(t, "dev_a", "estop", nil)
				sent = append(sent, p)
				if _, err := g.Admit(p); err != nil {
					rt.Fatalf("estop refused: %v", err)
				}
				stopped = true
			case 4:
				p := h.sign(t, "dev_a", "rearm", nil)
				sent = append(sent, p)
				if _, err := g.Admit(p); err == nil {
					stopped = false
				}
			default:
				rpm := rapid.Float64Range(-200, 3300).Draw(rt, "rpm")
				p := h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": rpm})
				sent = append(sent, p)
				_, err := g.Admit(p)
				if err == nil {
					if stopped {
						rt.Fatalf("set_speed accepted while emergency-stopped")
					}
					prev := before.Outputs["rpm"]
					dt := clk.Now().Sub(prev.At).Seconds()
					if math.Abs(rpm-prev.Value) > 100*dt*(1+1e-9)+1e-9 {
						rt.Fatalf("accepted %v -> %v in %.3fs: faster than 100 rpm/s", prev.Value, rpm, dt)
					}
				}
			}
			out := g.Status().Outputs["rpm"]
			if out.Value < 0 || out.Value > 3000 {
				rt.Fatalf("output rpm = %v is out of bounds", out.Value)
			}
		}
	})
}

// TestGuardRefuses: the device refuses replayed, expired, unsigned,
// tampered, foreign-signed, misaddressed and stale commands, and those its
// own policy refuses; each refusal is reported.
func TestGuardRefuses(t *testing.T) {
	clk := &clock{t: t0}
	rec := &recorder{}
	g, h := newGuard(t, clk, MapFacts{Values: map[string]any{"door_open": true}, At: t0}, rec)
	clk.Add(time.Second)
	ok := h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 50})
	if _, err := g.Admit(ok); err != nil {
		t.Fatalf("ok/fresh: %v", err)
	}
	unsigned := func() []byte {
		var e map[string]any
		_ = json.Unmarshal(h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 60}), &e)
		delete(e, "signature")
		b, _ := json.Marshal(e)
		return b
	}
	tampered := func() []byte {
		return bytes.Replace(h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 60}), []byte(`"rpm":60`), []byte(`"rpm":99`), 1)
	}
	expired := func() []byte {
		p := h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 60})
		clk.Add(11 * time.Second)
		return p
	}
	future := func() []byte {
		clk.Add(time.Minute)
		p := h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 60})
		clk.Add(-time.Minute)
		return p
	}
	foreign := &hub{key: newKey(9), clk: clk, ttl: 10 * time.Second, seq: 100}
	for _, c := range []struct {
		name    string
		payload func() []byte
		want    string
	}{
		{"fail/replay", func() []byte { return ok }, CodeReplay},
		{"fail/unsigned", unsigned, CodeBadSignature},
		{"fail/tampered", tampered, CodeBadSignature},
		{"fail/other-key", func() []byte { return foreign.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 60}) }, CodeBadSignature},
		{"fail/other-device", func() []byte { return h.sign(t, "dev_b", "set_speed", map[string]any{"rpm": 60}) }, CodeWrongDevice},
		{"fail/expired", expired, CodeExpired},
		{"fail/future", future, CodeNotYetValid},
		{"fail/out-of-bounds", func() []byte { return h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 3001}) }, CodePolicy},
		{"fail/too-fast", func() []byte { return h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 2000}) }, CodePolicy},
		{"fail/interlock", func() []byte { return h.sign(t, "dev_a", "motor_start", nil) }, CodePolicy},
		{"fail/garbage", func() []byte { return []byte(`{"v":1}`) }, CodeMalformed},
	} {
		if _, err := g.Admit(c.payload()); code(err) != c.want {
			t.Errorf("%s: %v, want %s", c.name, err, c.want)
		}
	}
	if len(rec.events) != 11 {
		t.Errorf("%d refusals reported, want 11", len(rec.events))
	}
	// A restarted device (no persisted sequence) refuses what was signed
	// before it started, even with a sequence it has not seen.
	old := h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 0})
	clk.Add(30 * time.Second)
	h.ttl = time.Hour
	g2, _ := newGuard(t, clk, nil, &recorder{})
	if _, err := g2.Admit(old); code(err) != CodeExpired && code(err) != CodeStale {
		t.Errorf("fail/across-restart: %v", err)
	}
	clk.Add(-20 * time.Second)
	old = h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 0})
	clk.Add(20 * time.Second)
	if _, err := g2.Admit(old); code(err) != CodeStale {
		t.Errorf("fail/stale-across-restart: %v", err)
	}
}

// TestFailsafeWithinTimeout (fake clock): silence of exactly the timeout
// puts the outputs in the safe state, once; a command signed before the
// failsafe never resumes motion; a fresh one does.
func TestFailsafeWithinTimeout(t *testing.T) {
	clk := &clock{t: t0}
	rec := &recorder{}
	g, h := newGuard(t, clk, nil, rec)
	clk.Add(time.Second)
	if _, err := g.Admit(h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 100})); err != nil {
		t.Fatal(err)
	}
	clk.Add(500 * time.Millisecond)
	stale := h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 150}) // in flight while the link dies
	clk.Add(1499 * time.Millisecond)
	if g.Tick() {
		t.Fatal("failsafe before the timeout")
	}
	clk.Add(time.Millisecond)
	if !g.Tick() || g.Tick() {
		t.Fatal("failsafe not entered exactly once at the timeout")
	}
	if st := g.Status(); !st.Failsafe || st.Outputs["rpm"].Value != 0 || len(rec.safe) != 1 || rec.safe[0] != "failsafe" {
		t.Fatalf("status %+v, safe %v", st, rec.safe)
	}
	if _, err := g.Admit(stale); code(err) != CodeStale {
		t.Fatalf("stale command after failsafe: %v", err)
	}
	clk.Add(time.Second)
	if _, err := g.Admit(h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 100})); err != nil {
		t.Fatalf("fresh command after failsafe: %v", err)
	}
}

// TestFailsafeOnRealClock: Run reaches the safe state within the timeout
// (plus scheduling slack) after the hub falls silent, and Heard holds it off.
func TestFailsafeOnRealClock(t *testing.T) {
	m := pumpModel()
	m.FailsafeTimeout = "150ms"
	key := newKey(1)
	entered := make(chan time.Time, 1)
	g, err := NewGuard(GuardOptions{DeviceID: "dev_a", HubKey: key.Public().(ed25519.PublicKey), Model: m,
		SafeState: func(string) { entered <- time.Now() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go g.Run(ctx)
	for i := 0; i < 5; i++ { // the hub keeps talking: no failsafe
		time.Sleep(50 * time.Millisecond)
		g.Heard()
	}
	select {
	case <-entered:
		t.Fatal("failsafe while the hub was heard")
	default:
	}
	cut := time.Now()
	g.Heard()
	select {
	case at := <-entered:
		if d := at.Sub(cut); d < 150*time.Millisecond || d > time.Second {
			t.Fatalf("failsafe after %s; want 150ms (plus slack)", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no failsafe after the hub was cut off")
	}
}

// TestEmergencyStopLatchesUntilRearm: the stop goes through whatever the
// interlocks and intervals say, and nothing but a re-arm moves anything
// afterwards.
func TestEmergencyStopLatchesUntilRearm(t *testing.T) {
	clk := &clock{t: t0}
	rec := &recorder{}
	g, h := newGuard(t, clk, MapFacts{}, rec) // every interlock fact unknown
	clk.Add(time.Second)
	if _, err := g.Admit(h.sign(t, "dev_a", "estop", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(h.sign(t, "dev_a", "estop", nil)); err != nil {
		t.Fatal("a second stop must pass too:", err)
	}
	clk.Add(time.Second)
	if _, err := g.Admit(h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 10})); code(err) != CodePolicy || !strings.Contains(err.Error(), "estopped") {
		t.Fatalf("command after stop: %v", err)
	}
	g.Rearm()
	if _, err := g.Admit(h.sign(t, "dev_a", "set_speed", map[string]any{"rpm": 10})); err != nil {
		t.Fatalf("after local re-arm: %v", err)
	}
	if len(rec.safe) != 2 || rec.safe[0] != "emergency_stop" {
		t.Fatalf("safe-state calls %v", rec.safe)
	}
}
