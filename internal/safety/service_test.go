package safety_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/safety"
	"github.com/rampart-iot/rampart/internal/store/sqlite"
	"github.com/rampart-iot/rampart/internal/testkit"
	engine "github.com/rampart-iot/rampart/sdk/safety"
)

func f64(v float64) *float64 { return &v }

func pumpModel() api.DeviceModel {
	return api.DeviceModel{
		Name: "pump",
		Commands: []api.CommandSpec{
			{Name: "set_speed", Params: []api.ParamSpec{{Name: "rpm", Type: api.ParamNumber, Unit: "rpm", Min: f64(0), Max: f64(3000), MaxRate: 100}}},
			{Name: "motor_start", Hazard: api.HazardHazardous, Approval: api.ApprovalSecondPerson, ConfirmTimeout: "30s",
				Interlocks: []api.Interlock{{Name: "door", Fact: "door_open", Op: "eq", Value: true}}},
			{Name: "drain", Hazard: api.HazardHazardous, Approval: api.ApprovalConfirm, ConfirmTimeout: "10s"},
			{Name: "estop", EmergencyStop: true},
			{Name: "rearm", Rearm: true},
		},
		SafeState:       &api.SafeState{Outputs: map[string]float64{"rpm": 0}},
		FailsafeTimeout: "5s",
		CommandTTL:      "10s",
		AckTimeout:      "5s",
	}
}

type devicesFake map[string]string // device -> model (tenant t1 only)

func (d devicesFake) ModelOf(_ context.Context, tenant, id string) (string, error) {
	m, ok := d[id]
	if strings.HasPrefix(id, "dev_p") {
		m, ok = "pump", true
	}
	if !ok || tenant != "t1" {
		return "", api.Errorf(api.CodeNotFound, "no such device")
	}
	return m, nil
}

type factsFake struct {
	mu sync.Mutex
	v  map[string]any
}

func (f *factsFake) set(k string, v any) { f.mu.Lock(); f.v[k] = v; f.mu.Unlock() }
func (f *factsFake) Facts(context.Context, string, string) (engine.Facts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fs := engine.FactSet{}
	for k, v := range f.v {
		fs[k] = engine.Fact{Value: v, At: time.Now()}
	}
	return fs, nil
}

type pubFake struct {
	mu   sync.Mutex
	sent [][]byte
}

func (p *pubFake) PublishCommand(_ string, b []byte) error {
	p.mu.Lock()
	p.sent = append(p.sent, b)
	p.mu.Unlock()
	return nil
}

type journalFake struct {
	mu sync.Mutex
	ev []journal.Event
}

func (j *journalFake) Record(_ context.Context, e journal.Event) error {
	j.mu.Lock()
	j.ev = append(j.ev, e)
	j.mu.Unlock()
	return nil
}

func (j *journalFake) actions() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []string
	for _, e := range j.ev {
		out = append(out, e.Action)
	}
	return out
}

type rig struct {
	svc   *safety.Service
	clk   *testkit.Clock
	facts *factsFake
	pub   *pubFake
	j     *journalFake
	key   ed25519.PublicKey
}

var (
	alice = safety.Actor{UserID: "usr_alice", TenantID: "t1"}
	bob   = safety.Actor{UserID: "usr_bob", TenantID: "t1"}
	eve   = safety.Actor{UserID: "usr_eve", TenantID: "t2"}
)

func newRig(t testing.TB, quota int) *rig {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := &rig{clk: testkit.NewClock(time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)), facts: &factsFake{v: map[string]any{"door_open": false}},
		pub: &pubFake{}, j: &journalFake{}}
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	r.key = key.Public().(ed25519.PublicKey)
	r.svc, err = safety.New(safety.Options{Store: db.Commands(), Devices: devicesFake{"dev_1": "pump", "dev_2": "pump", "dev_nomodel": ""},
		Facts: r.facts, Publisher: r.pub, Journal: r.j, Key: key, Now: r.clk.Now, Rand: testkit.NewRand(t.Name()), QuotaPerMinute: quota})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.PutModel(context.Background(), alice, pumpModel()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) submit(t testing.TB, a safety.Actor, dev, name string, params string) safety.Command {
	t.Helper()
	c, err := r.svc.Submit(context.Background(), a, dev, api.CommandRequest{Name: name, Params: json.RawMessage(params)})
	if err != nil {
		t.Fatalf("submit %s: %v", name, err)
	}
	return c
}

func rules(v api.Verdict) string {
	var s []string
	for _, f := range v.Failures {
		s = append(s, f.Rule)
	}
	return strings.Join(s, ",")
}

func TestModelsAreVersionedAndJournaled(t *testing.T) {
	r := newRig(t, 0)
	m, err := r.svc.PutModel(context.Background(), alice, pumpModel())
	if err != nil || m.Version != 2 {
		t.Fatalf("second version: %+v %v", m.Version, err)
	}
	bad := pumpModel()
	bad.Commands[0].Params[0].Min = nil
	if _, err := r.svc.PutModel(context.Background(), alice, bad); api.ErrorCode(err) != api.CodeInvalid {
		t.Fatalf("fail/unbounded: %v", err)
	}
	if got := strings.Count(strings.Join(r.j.actions(), " "), "safety.policy_changed"); got != 2 {
		t.Fatalf("%d policy changes journaled, want 2", got)
	}
	if _, err := r.svc.Model(context.Background(), "t2", "pump"); api.ErrorCode(err) != api.CodeNotFound {
		t.Fatalf("another tenant's model: %v", err)
	}
	if _, err := r.svc.Submit(context.Background(), alice, "dev_nomodel", api.CommandRequest{Name: "estop"}); api.ErrorCode(err) != api.CodeConflict {
		t.Fatalf("device without a model: %v", err)
	}
	if _, err := r.svc.Submit(context.Background(), eve, "dev_1", api.CommandRequest{Name: "estop"}); api.ErrorCode(err) != api.CodeNotFound {
		t.Fatalf("another tenant's device: %v", err)
	}
}

func TestRefusalNamesEveryRuleAndSendsNothing(t *testing.T) {
	r := newRig(t, 0)
	c := r.submit(t, alice, "dev_1", "set_speed", `{"rpm":9000,"turbo":true}`)
	if c.Status != api.CommandRefused || rules(c.Verdict) != "schema,bounds" {
		t.Fatalf("status %s rules %s", c.Status, rules(c.Verdict))
	}
	if len(r.pub.sent) != 0 {
		t.Fatal("a refused command was published")
	}
	e := r.j.ev[len(r.j.ev)-1]
	if e.Action != "safety.command_refused" || e.Detail["failed.0"] == "" || e.Detail["failed.1"] == "" {
		t.Fatalf("journal: %+v", e)
	}
}

func TestInterlockBlocks(t *testing.T) {
	r := newRig(t, 0)
	r.facts.set("door_open", true)
	c := r.submit(t, alice, "dev_1", "motor_start", "")
	if c.Status != api.CommandRefused || rules(c.Verdict) != "interlock" {
		t.Fatalf("door open: %s %s", c.Status, rules(c.Verdict))
	}
	// Selected while closed, the door opens before approval: re-evaluated, refused.
	r.facts.set("door_open", false)
	c = r.submit(t, alice, "dev_1", "motor_start", "")
	r.facts.set("door_open", true)
	c, err := r.svc.Approve(context.Background(), bob, c.ID)
	if err != nil || c.Status != api.CommandRefused || rules(c.Verdict) != "interlock" {
		t.Fatalf("approval with the door open: %s %s %v", c.Status, rules(c.Verdict), err)
	}
	if len(r.pub.sent) != 0 {
		t.Fatal("published despite the interlock")
	}
}

func TestSameUserCannotApproveOwnHazardousCommand(t *testing.T) {
	r := newRig(t, 0)
	c := r.submit(t, alice, "dev_1", "motor_start", "")
	if c.Status != api.CommandAwaitingApproval {
		t.Fatalf("status %s", c.Status)
	}
	if _, err := r.svc.Approve(context.Background(), alice, c.ID); api.ErrorCode(err) != api.CodeForbidden {
		t.Fatalf("self-approval: %v", err)
	}
	// An API token of the same user is the same person.
	if _, err := r.svc.Approve(context.Background(), safety.Actor{UserID: "usr_alice", TenantID: "t1", TokenID: "tok_1"}, c.ID); api.ErrorCode(err) != api.CodeForbidden {
		t.Fatalf("self-approval by token: %v", err)
	}
	if _, err := r.svc.Approve(context.Background(), eve, c.ID); api.ErrorCode(err) != api.CodeNotFound {
		t.Fatalf("another tenant's approval: %v", err)
	}
	if got, _ := r.svc.Get(context.Background(), "t1", c.ID); got.Status != api.CommandAwaitingApproval || len(r.pub.sent) != 0 {
		t.Fatalf("refused approvals changed something: %s", got.Status)
	}
	got, err := r.svc.Approve(context.Background(), bob, c.ID)
	if err != nil || got.Status != api.CommandSent || got.ApprovedBy != bob.UserID {
		t.Fatalf("second person: %+v %v", got, err)
	}
	if !strings.Contains(strings.Join(r.j.actions(), " "), "safety.approval_refused") {
		t.Fatal("self-approval not journaled")
	}
	// The envelope verifies with the published command key, and the
	// device's Guard admits it.
	k := r.svc.CommandKey()
	pub, _ := base64.StdEncoding.DecodeString(k.PublicKey)
	g, err := engine.NewGuard(engine.GuardOptions{DeviceID: "dev_1", HubKey: pub, Model: pumpModel(), Now: r.clk.Now,
		Facts: engine.MapFacts{Values: map[string]any{"door_open": false}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Admit(r.pub.sent[0]); err != nil {
		t.Fatalf("device refused the approved command: %v", err)
	}
}

// TestEmergencyStopPassesWhileHazardousCommandWaits: with a hazardous
// command waiting for approval, the quota spent and every interlock fact
// unknown, an emergency stop is sent at once and withdraws the waiting
// command, which can then never be approved.
func TestEmergencyStopPassesWhileHazardousCommandWaits(t *testing.T) {
	r := newRig(t, 2)
	waiting := r.submit(t, alice, "dev_1", "motor_start", "")
	r.clk.Advance(time.Second)
	r.submit(t, alice, "dev_1", "set_speed", `{"rpm":10}`)
	r.clk.Advance(time.Second)
	r.submit(t, alice, "dev_1", "set_speed", `{"rpm":20}`)
	r.clk.Advance(time.Second)
	if c := r.submit(t, alice, "dev_1", "set_speed", `{"rpm":30}`); rules(c.Verdict) != "quota" {
		t.Fatalf("quota: %s %s", c.Status, rules(c.Verdict))
	}
	r.facts.mu.Lock()
	r.facts.v = map[string]any{}
	r.facts.mu.Unlock()
	stop := r.submit(t, alice, "dev_1", "estop", "")
	if stop.Status != api.CommandSent {
		t.Fatalf("estop: %s %s", stop.Status, rules(stop.Verdict))
	}
	if w, _ := r.svc.Get(context.Background(), "t1", waiting.ID); w.Status != api.CommandCancelled {
		t.Fatalf("waiting command is %s after the stop", w.Status)
	}
	if _, err := r.svc.Approve(context.Background(), bob, waiting.ID); api.ErrorCode(err) != api.CodeConflict {
		t.Fatalf("approving a withdrawn command: %v", err)
	}
	// The hub holds the device stopped until a re-arm.
	r.clk.Advance(time.Minute)
	if c := r.submit(t, alice, "dev_1", "set_speed", `{"rpm":1}`); rules(c.Verdict) != "estopped" {
		t.Fatalf("after stop: %s", rules(c.Verdict))
	}
	if c := r.submit(t, alice, "dev_1", "rearm", ""); c.Status != api.CommandSent {
		t.Fatalf("rearm: %s %s", c.Status, rules(c.Verdict))
	}
}

func TestConfirmationTimesOut(t *testing.T) {
	r := newRig(t, 0)
	c := r.submit(t, alice, "dev_1", "drain", "")
	if c.Status != api.CommandAwaitingConfirmation {
		t.Fatal(c.Status)
	}
	if _, err := r.svc.Confirm(context.Background(), bob, c.ID); api.ErrorCode(err) != api.CodeForbidden {
		t.Fatalf("confirmation by someone else: %v", err)
	}
	r.clk.Advance(10 * time.Second)
	r.svc.Sweep(context.Background())
	if got, _ := r.svc.Get(context.Background(), "t1", c.ID); got.Status != api.CommandExpired {
		t.Fatalf("after the timeout: %s", got.Status)
	}
	c = r.submit(t, alice, "dev_1", "drain", "")
	r.clk.Advance(9 * time.Second)
	if got, err := r.svc.Confirm(context.Background(), alice, c.ID); err != nil || got.Status != api.CommandSent {
		t.Fatalf("confirm in time: %+v %v", got, err)
	}
}

func ack(id, status string) []byte {
	b, _ := json.Marshal(api.CommandAck{ID: id, Status: status})
	return b
}

func TestAcksCloseTheLoopAndDeadlinesFail(t *testing.T) {
	r := newRig(t, 0)
	ctx := context.Background()
	c := r.submit(t, alice, "dev_1", "set_speed", `{"rpm":0}`)
	r.svc.Ack(ctx, "t1", "dev_2", "devices/dev_2/acks/"+c.ID, ack(c.ID, "done")) // another device's ack: ignored
	r.svc.Ack(ctx, "t1", "dev_1", "devices/dev_1/acks/"+c.ID, []byte(`{"id":`))  // malformed: ignored
	if got, _ := r.svc.Get(ctx, "t1", c.ID); got.Status != api.CommandSent {
		t.Fatalf("status %s after foreign and malformed acks", got.Status)
	}
	r.clk.Advance(40 * time.Millisecond)
	r.svc.Ack(ctx, "t1", "dev_1", "devices/dev_1/acks/"+c.ID, ack(c.ID, "done"))
	r.svc.Ack(ctx, "t1", "dev_1", "devices/dev_1/acks/"+c.ID, ack(c.ID, "rejected")) // a repeat does not count
	if got, _ := r.svc.Get(ctx, "t1", c.ID); got.Status != api.CommandExecuted {
		t.Fatalf("status %s after ack", got.Status)
	}
	r.clk.Advance(time.Second)
	lost := r.submit(t, alice, "dev_1", "set_speed", `{"rpm":10}`)
	r.clk.Advance(4999 * time.Millisecond)
	r.svc.Sweep(ctx)
	if got, _ := r.svc.Get(ctx, "t1", lost.ID); got.Status != api.CommandSent {
		t.Fatalf("failed before the deadline: %s", got.Status)
	}
	r.clk.Advance(time.Millisecond)
	r.svc.Sweep(ctx)
	got, _ := r.svc.Get(ctx, "t1", lost.ID)
	if got.Status != api.CommandFailed || got.AckCode != "no_ack" {
		t.Fatalf("after the deadline: %s %s", got.Status, got.AckCode)
	}
	r.svc.Ack(ctx, "t1", "dev_1", "devices/dev_1/acks/"+lost.ID, ack(lost.ID, "done"))
	if got, _ := r.svc.Get(ctx, "t1", lost.ID); got.Status != api.CommandFailed {
		t.Fatalf("a late ack revived a failed command: %s", got.Status)
	}
}

// TestPropertyHubNeverSendsOutOfBoundsOrTooFast: whatever is submitted
// when, the envelopes the hub signs and sends carry values inside the
// bounds that move no faster than the rate from the previous sent value.
func TestPropertyHubNeverSendsOutOfBoundsOrTooFast(t *testing.T) {
	r := newRig(t, 1<<30)
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		dev := fmt.Sprintf("dev_p%d", run)
		var last *struct {
			v  float64
			at time.Time
		}
		for i := range rapid.IntRange(1, 25).Draw(rt, "n") {
			r.clk.Advance(time.Duration(rapid.IntRange(0, 5000).Draw(rt, "dt_ms")) * time.Millisecond)
			rpm := rapid.Float64Range(-100, 3200).Draw(rt, "rpm")
			name := "set_speed"
			if rapid.IntRange(0, 10).Draw(rt, "estop") == 0 {
				name = "estop"
			}
			params := ""
			if name == "set_speed" {
				params = fmt.Sprintf(`{"rpm":%v}`, rpm)
			}
			before := len(r.pub.sent)
			c := r.submit(t, alice, dev, name, params)
			_ = i
			if len(r.pub.sent) == before {
				continue
			}
			if c.Status != api.CommandSent {
				rt.Fatalf("published but status %s", c.Status)
			}
			if name == "estop" {
				r.submit(t, alice, dev, "rearm", "")
				last = &struct {
					v  float64
					at time.Time
				}{0, r.clk.Now()}
				continue
			}
			if rpm < 0 || rpm > 3000 {
				rt.Fatalf("sent rpm %v", rpm)
			}
			if last != nil {
				dt := r.clk.Now().Sub(last.at).Seconds()
				if math.Abs(rpm-last.v) > 100*dt*(1+1e-9)+1e-9 {
					rt.Fatalf("sent %v -> %v in %.3fs", last.v, rpm, dt)
				}
			}
			last = &struct {
				v  float64
				at time.Time
			}{rpm, r.clk.Now()}
		}
	})
}

// FuzzParseAck: the hub's ack parser never panics and accepts only the
// three statuses with a command ID.
func FuzzParseAck(f *testing.F) {
	f.Add([]byte(`{"id":"cmd_a","status":"done"}`))
	f.Add([]byte(`{"id":"cmd_a","status":"rejected","code":"replay","message":"x"}`))
	f.Add([]byte(`{"id":"../x","status":"done"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := safety.ParseAck(b)
		if err != nil {
			return
		}
		if !engine.ValidName(a.ID) || (a.Status != "done" && a.Status != "rejected" && a.Status != "failed") {
			t.Fatalf("accepted %+v", a)
		}
	})
}

// FuzzSubmitParams: any params through the hub's Submit either refuse or
// produce a signed envelope whose params are in bounds.
func FuzzSubmitParams(f *testing.F) {
	r := newRig(f, 1<<30)
	for _, s := range []string{`{"rpm":1}`, `{"rpm":1e400}`, `{"rpm":null}`, `{}`, `"x"`, `{"rpm":1,"rpm":5000}`} {
		f.Add("set_speed", s)
	}
	f.Fuzz(func(t *testing.T, name, params string) {
		r.clk.Advance(time.Hour)
		c, err := r.svc.Submit(context.Background(), alice, "dev_1", api.CommandRequest{Name: name, Params: json.RawMessage(params)})
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code == api.CodeInternal {
				t.Fatalf("internal error for %q %q: %v", name, params, err)
			}
			return
		}
		if c.Status == api.CommandSent && name == "set_speed" {
			var p struct{ RPM float64 }
			if json.Unmarshal(c.Params, &p) != nil || p.RPM < 0 || p.RPM > 3000 {
				t.Fatalf("sent %q", c.Params)
			}
		}
	})
}

func TestDeviceSafetyEventsAreJournaled(t *testing.T) {
	r := newRig(t, 0)
	ev, _ := json.Marshal(engine.Event{Kind: "failsafe", Message: "nothing from the hub for 5s", At: r.clk.Now()}.Wire())
	r.svc.DeviceEvent(context.Background(), "t1", "dev_1", ev)
	r.svc.DeviceEvent(context.Background(), "t1", "dev_1", []byte(`{"kind":"anything"}`))
	e := r.j.ev[len(r.j.ev)-1]
	if e.Action != "safety.device_failsafe" || e.Actor != "device:dev_1" || e.Tenant != "t1" {
		t.Fatalf("journal: %+v", e)
	}
}
