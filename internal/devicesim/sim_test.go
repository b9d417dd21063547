package devicesim

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/sdk"
)

func TestModelsArePlausible(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	th := newThermostat(rng)
	var r ThermostatReading
	for i := 0; i < 3600; i++ { // an hour of 1 s ticks (60 simulated hours)
		r = th.step(time.Second).(ThermostatReading)
		if r.Celsius < -10 || r.Celsius > 40 || r.Humidity < 25 || r.Humidity > 70 {
			t.Fatalf("implausible thermostat reading %+v", r)
		}
	}
	if d := r.Celsius - r.SetPoint; d < -1.5 || d > 1.5 {
		t.Fatalf("the thermostat does not hold its set point: %+v", r)
	}
	v := newValve(rng)
	if _, err := v.HandleCommand(context.Background(), &sdk.Command{ID: "1", Name: "set_position", Params: []byte(`{"percent":100}`)}); err != nil {
		t.Fatal(err)
	}
	var vr ValveReading
	for i := 0; i < 20; i++ {
		vr = v.step(time.Second).(ValveReading)
	}
	if vr.Position != 100 || vr.FlowLPM <= 0 || vr.PressureBar < 1.5 || vr.PressureBar > 4.5 {
		t.Fatalf("valve %+v", vr)
	}
	for _, tc := range []struct {
		name   string
		m      sdk.Handler
		cmd    string
		params string
	}{
		{"fail/set-point-too-high", th, "set_point", `{"celsius":80}`},
		{"fail/unknown", th, "open", `{}`},
		{"fail/valve-over-100", v, "set_position", `{"percent":101}`},
	} {
		if _, err := tc.m.HandleCommand(context.Background(), &sdk.Command{ID: "x", Name: tc.cmd, Params: []byte(tc.params)}); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestParseAddrsAndHistogram(t *testing.T) {
	ips, err := ParseAddrs("127.0.0.1-127.0.0.3,127.0.0.9")
	if err != nil || len(ips) != 4 || ips[3].String() != "127.0.0.9" {
		t.Fatalf("%v %v", ips, err)
	}
	for _, bad := range []string{"localhost", "127.0.0.5-127.0.0.1", "127.0.0.1-10.0.0.2"} {
		if _, err := ParseAddrs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var b bytes.Buffer
	Histogram(&b, "x", []time.Duration{100 * time.Millisecond, 1500 * time.Millisecond, 1600 * time.Millisecond}, time.Second)
	if !strings.Contains(b.String(), "n=3") || !strings.Contains(b.String(), "1s-2s") {
		t.Fatalf("histogram:\n%s", b.String())
	}
}
