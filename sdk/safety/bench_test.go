package safety

import (
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkEvaluate: policy evaluations per second (one set_speed with
// bounds and rate, and a hazardous command with an interlock).
//
//	go test -run '^$' -bench Evaluate ./sdk/safety/
func BenchmarkEvaluate(b *testing.B) {
	p, err := Compile(pumpModel())
	if err != nil {
		b.Fatal(err)
	}
	st := p.NewState(t0)
	params := json.RawMessage(`{"rpm":50}`)
	facts := MapFacts{Values: map[string]any{"door_open": false}, At: t0}
	now := t0.Add(time.Hour)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 {
			if !p.Evaluate(st, "set_speed", params, facts, now).Allowed() {
				b.Fatal("refused")
			}
		} else if !p.Evaluate(st, "motor_start", nil, facts, now).Allowed() {
			b.Fatal("refused")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

// BenchmarkAdmit: the device's whole check (parse, Ed25519 verify,
// freshness, sequence, policy) per command.
func BenchmarkAdmit(b *testing.B) {
	clk := &clock{t: t0}
	h := &hub{key: newKey(1), clk: clk, ttl: time.Hour}
	payloads := make([][]byte, 0, 4096)
	for range 4096 {
		payloads = append(payloads, h.sign(b, "dev_a", "set_valve", map[string]any{"open": true}))
	}
	m := pumpModel()
	m.Commands[1].MinInterval = ""
	g, err := NewGuard(GuardOptions{DeviceID: "dev_a", HubKey: h.key.Public().(ed25519.PublicKey), Model: m, Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(payloads) {
			b.StopTimer()
			g, _ = NewGuard(GuardOptions{DeviceID: "dev_a", HubKey: h.key.Public().(ed25519.PublicKey), Model: m, Now: clk.Now})
			i = 0
			b.StartTimer()
		}
		if _, err := g.Admit(payloads[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "admits/s")
}
