package devicesim

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/sdk"
)

// A model is a simulated appliance: it advances its physics on every tick
// and produces a reading; it may take commands.
type model interface {
	kind() string
	step(dt time.Duration) any
	sdk.Handler
}

// thermostat: a room that cools toward the outside temperature and a
// heater with 0.5 °C hysteresis around the set point.
type thermostat struct {
	mu       sync.Mutex
	rng      *rand.Rand
	room     float64 // °C
	outside  float64
	setPoint float64
	heating  bool
	humidity float64
}

// ThermostatReading is what a simulated thermostat publishes.
type ThermostatReading struct {
	Celsius  float64 `json:"celsius" cbor:"celsius"`
	SetPoint float64 `json:"set_point" cbor:"set_point"`
	Heating  bool    `json:"heating" cbor:"heating"`
	Humidity float64 `json:"humidity" cbor:"humidity"`
}

func newThermostat(rng *rand.Rand) *thermostat {
	return &thermostat{rng: rng, room: 17 + rng.Float64()*4, outside: 2 + rng.Float64()*10,
		setPoint: 20 + math.Round(rng.Float64()*4)/2, humidity: 40 + rng.Float64()*15}
}

func (t *thermostat) kind() string { return "thermostat" }

func (t *thermostat) step(dt time.Duration) any {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := dt.Hours() * 60 // simulated time runs 60x faster, so a demo shows movement
	switch {
	case t.room < t.setPoint-0.5:
		t.heating = true
	case t.room > t.setPoint+0.5:
		t.heating = false
	}
	loss := 0.8 * (t.room - t.outside) / 10 // °C per hour toward outside
	gain := 0.0
	if t.heating {
		gain = 3.0
	}
	t.room += (gain-loss)*h + t.rng.NormFloat64()*0.02
	t.humidity = math.Min(70, math.Max(25, t.humidity+t.rng.NormFloat64()*0.2))
	return ThermostatReading{Celsius: round(t.room, 2), SetPoint: t.setPoint, Heating: t.heating, Humidity: round(t.humidity, 1)}
}

// HandleCommand takes set_point {"celsius": 5..30}.
func (t *thermostat) HandleCommand(_ context.Context, cmd *sdk.Command) (any, error) {
	if cmd.Name != "set_point" {
		return nil, sdk.Reject("unknown_command", "a thermostat takes set_point")
	}
	var p struct {
		Celsius *float64 `json:"celsius"`
	}
	if err := json.Unmarshal(cmd.Params, &p); err != nil || p.Celsius == nil {
		return nil, sdk.Reject("bad_params", `set_point needs {"celsius": N}`)
	}
	if *p.Celsius < 5 || *p.Celsius > 30 {
		return nil, sdk.Reject("out_of_bounds", "set point %.1f °C is outside 5..30", *p.Celsius)
	}
	t.mu.Lock()
	t.setPoint = *p.Celsius
	t.mu.Unlock()
	return map[string]float64{"set_point": *p.Celsius}, nil
}

// valve: a motorised valve moving toward its commanded position at 10 %/s,
// flow following the opening and the line pressure.
type valve struct {
	mu       sync.Mutex
	rng      *rand.Rand
	position float64 // % open
	target   float64
	pressure float64 // bar
}

// ValveReading is what a simulated valve publishes.
type ValveReading struct {
	Position    float64 `json:"position_pct" cbor:"position_pct"`
	Target      float64 `json:"target_pct" cbor:"target_pct"`
	FlowLPM     float64 `json:"flow_lpm" cbor:"flow_lpm"`
	PressureBar float64 `json:"pressure_bar" cbor:"pressure_bar"`
}

func newValve(rng *rand.Rand) *valve {
	p := math.Round(rng.Float64() * 100)
	return &valve{rng: rng, position: p, target: p, pressure: 2.5 + rng.Float64()}
}

func (v *valve) kind() string { return "valve" }

func (v *valve) step(dt time.Duration) any {
	v.mu.Lock()
	defer v.mu.Unlock()
	move := 10 * dt.Seconds()
	if d := v.target - v.position; math.Abs(d) <= move {
		v.position = v.target
	} else {
		v.position += math.Copysign(move, d)
	}
	v.pressure = math.Min(4.5, math.Max(1.5, v.pressure+v.rng.NormFloat64()*0.02))
	flow := 0.0
	if v.position > 0 {
		flow = 40 * (v.position / 100) * math.Sqrt(v.pressure/3) * (1 + v.rng.NormFloat64()*0.01)
	}
	return ValveReading{Position: round(v.position, 1), Target: v.target, FlowLPM: round(math.Max(0, flow), 2), PressureBar: round(v.pressure, 2)}
}

// HandleCommand takes set_position {"percent": 0..100}.
func (v *valve) HandleCommand(_ context.Context, cmd *sdk.Command) (any, error) {
	if cmd.Name != "set_position" {
		return nil, sdk.Reject("unknown_command", "a valve takes set_position")
	}
	var p struct {
		Percent *float64 `json:"percent"`
	}
	if err := json.Unmarshal(cmd.Params, &p); err != nil || p.Percent == nil || *p.Percent < 0 || *p.Percent > 100 {
		return nil, sdk.Reject("bad_params", `set_position needs {"percent": 0..100}`)
	}
	v.mu.Lock()
	v.target = *p.Percent
	v.mu.Unlock()
	return map[string]float64{"target_pct": *p.Percent}, nil
}

func round(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}
