package safety

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/api"
)

// FuzzAdmit feeds arbitrary payloads to the device's Guard: it never
// panics, and nothing but a genuinely signed envelope is ever admitted.
func FuzzAdmit(f *testing.F) {
	clk := &clock{t: t0}
	h := &hub{key: newKey(1), clk: clk, ttl: 10 * time.Second}
	f.Add(h.sign(f, "dev_a", "set_speed", map[string]any{"rpm": 1}))
	f.Add([]byte(`{"v":1,"id":"x","device_id":"dev_a","name":"estop","seq":9,"nonce":"n","issued_at":"2026-03-04T12:00:00Z","expires_at":"2026-03-04T12:01:00Z","key_id":"00","signature":""}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		g, err := NewGuard(GuardOptions{DeviceID: "dev_a", HubKey: newKey(7).Public().(ed25519.PublicKey), Model: pumpModel(), Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Admit(payload); err == nil {
			t.Fatalf("admitted a payload not signed by the pinned key: %q", payload)
		}
		if e, err := ParseEnvelope(payload); err == nil && e.Seq == 0 {
			t.Fatal("parsed an envelope with seq 0")
		}
	})
}

// FuzzEvaluateParams: any params the policy allows are inside the bounds
// and of the declared type; nothing panics.
func FuzzEvaluateParams(f *testing.F) {
	p, err := Compile(pumpModel())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{`{"rpm":5}`, `{"rpm":1e309}`, `{"rpm":"5"}`, `{"open":true}`, `null`, `{"rpm":-0}`, `{"rpm":5,"rpm":9000}`} {
		f.Add("set_speed", []byte(s))
	}
	f.Fuzz(func(t *testing.T, name string, params []byte) {
		st := p.NewState(time.Time{})
		d := p.Evaluate(st, name, params, MapFacts{Values: map[string]any{"door_open": false}}, t0)
		if !d.Allowed() {
			return
		}
		if v, ok := d.Outputs["rpm"]; ok && (v < 0 || v > 3000) {
			t.Fatalf("allowed rpm %v from %q", v, params)
		}
	})
}

// FuzzCompile: any model JSON compiles or fails with an error; never panics.
func FuzzCompile(f *testing.F) {
	b, _ := json.Marshal(pumpModel())
	f.Add(b)
	f.Add([]byte(`{"name":"x","commands":[{"name":"a","params":[{"name":"p","type":"number","min":1,"max":0}]}]}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m api.DeviceModel
		if json.Unmarshal(raw, &m) != nil {
			return
		}
		p, err := Compile(m)
		if err == nil {
			_ = p.Evaluate(p.NewState(t0), "a", nil, nil, t0)
		}
	})
}
