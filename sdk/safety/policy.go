// Package safety is Rampart's command safety engine, shared by the hub and
// the device: the compiled form of a device model's safety policy, its
// evaluation (a verdict that names every rule that failed), the signed
// command envelope, and the device-side Guard that verifies a command's
// signature, freshness and sequence before it checks the device's own copy
// of the policy, and that drives the failsafe.
//
// The hub is defence in depth; the Guard on the device is the last layer.
// Both run this same code, so a command the hub accepted is judged by the
// same rules on the device, against the device's own state.
//
// It imports only the standard library and api/.
package safety

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/api"
)

// Limits, each with its reason.
const (
	// MaxCommands, MaxParams, MaxInterlocks, MaxWindows bound a model so
	// that one evaluation stays a few microseconds.
	MaxCommands   = 64
	MaxParams     = 16
	MaxInterlocks = 16
	MaxWindows    = 8
	// MaxParamsBytes bounds a command's parameters (a set point, not a file).
	MaxParamsBytes = 4096
	// MaxNameLen bounds names of models, commands, parameters and facts.
	MaxNameLen = 64

	// DefaultCommandTTL: a signed command older than this is refused.
	DefaultCommandTTL = 30 * time.Second
	// DefaultConfirmTimeout: how long a selected hazardous command waits
	// for its confirmation or approval.
	DefaultConfirmTimeout = 60 * time.Second
	// MaxTTL bounds command TTLs, ack and confirm timeouts: a command
	// that may arrive an hour late is not a control action.
	MaxTTL = 10 * time.Minute
)

// rateTolerance absorbs float rounding in the rate check (relative).
const rateTolerance = 1e-9

// Policy is a compiled device model.
type Policy struct {
	Model           api.DeviceModel
	Commands        map[string]*Command
	SafeOutputs     map[string]float64
	FailsafeTimeout time.Duration // 0: no failsafe
	CommandTTL      time.Duration
	AckTimeout      time.Duration
}

// Command is a compiled command spec.
type Command struct {
	Spec           api.CommandSpec
	Params         []Param
	MinInterval    time.Duration
	ConfirmTimeout time.Duration
	Interlocks     []interlock
	Windows        []window
}

// Param is a compiled parameter spec.
type Param struct {
	api.ParamSpec
	Output string
}

type interlock struct {
	api.Interlock
	maxAge time.Duration
}

type window struct {
	days       uint8 // bit per weekday; 0 = every day
	start, end int   // minutes after midnight UTC
}

var (
	validOps    = map[string]bool{"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true}
	validHazard = map[string]bool{"": true, api.HazardNone: true, api.HazardLow: true, api.HazardHazardous: true}
	dayNames    = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
		"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}
)

// ValidName reports whether s is a usable name: 1..64 of [A-Za-z0-9_.-].
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func duration(field, s string, def, max time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > max {
		return 0, fmt.Errorf("%s: %q is not a duration between 0 and %s (example: \"30s\")", field, s, max)
	}
	return d, nil
}

func hhmm(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, false
	}
	hi, err1 := strconv.Atoi(h)
	mi, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hi < 0 || hi > 24 || mi < 0 || mi > 59 || hi == 24 && mi != 0 {
		return 0, false
	}
	return hi*60 + mi, true
}

// Compile checks a model and compiles it. Every error names the field.
func Compile(m api.DeviceModel) (*Policy, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !ValidName(m.Name) {
		bad("name: %q must be 1-%d letters, digits, '-', '_' or '.'", m.Name, MaxNameLen)
	}
	if len(m.Commands) == 0 || len(m.Commands) > MaxCommands {
		bad("commands: a model declares 1 to %d commands", MaxCommands)
	}
	p := &Policy{Model: m, Commands: map[string]*Command{}, SafeOutputs: map[string]float64{}}
	var err error
	if p.FailsafeTimeout, err = duration("failsafe_timeout", m.FailsafeTimeout, 0, time.Hour); err != nil {
		errs = append(errs, err)
	}
	if p.CommandTTL, err = duration("command_ttl", m.CommandTTL, DefaultCommandTTL, MaxTTL); err != nil {
		errs = append(errs, err)
	}
	if p.CommandTTL == 0 {
		p.CommandTTL = DefaultCommandTTL
	}
	if p.AckTimeout, err = duration("ack_timeout", m.AckTimeout, p.CommandTTL, MaxTTL); err != nil {
		errs = append(errs, err)
	}
	if p.AckTimeout == 0 {
		p.AckTimeout = p.CommandTTL
	}
	if m.SafeState != nil {
		for o, v := range m.SafeState.Outputs {
			if !ValidName(o) || math.IsNaN(v) || math.IsInf(v, 0) {
				bad("safe_state.outputs: %q = %v is not a valid output value", o, v)
			}
			p.SafeOutputs[o] = v
		}
	}
	if p.FailsafeTimeout > 0 && m.SafeState == nil {
		bad("failsafe_timeout: a failsafe needs a safe_state to go to")
	}
	outputs := map[string]Param{}
	hasEStop := false
	for i, cs := range m.Commands {
		at := fmt.Sprintf("commands[%d]", i)
		if !ValidName(cs.Name) {
			bad("%s.name: %q must be 1-%d letters, digits, '-', '_' or '.'", at, cs.Name, MaxNameLen)
			continue
		}
		at = "commands." + cs.Name
		if _, dup := p.Commands[cs.Name]; dup {
			bad("%s: declared twice", at)
			continue
		}
		c := &Command{Spec: cs}
		if cs.Hazard == "" {
			c.Spec.Hazard = api.HazardNone
		}
		if !validHazard[cs.Hazard] {
			bad("%s.hazard: %q is not none, low or hazardous", at, cs.Hazard)
		}
		switch {
		case cs.EmergencyStop && (cs.Hazard == api.HazardHazardous || cs.Approval != "" || len(cs.Params) > 0 || cs.Rearm):
			bad("%s: an emergency stop takes no parameters, no approval and is not also a re-arm", at)
		case c.Spec.Hazard == api.HazardHazardous && cs.Approval != api.ApprovalConfirm && cs.Approval != api.ApprovalSecondPerson:
			bad("%s.approval: a hazardous command needs approval \"confirm\" or \"second_person\"", at)
		case c.Spec.Hazard != api.HazardHazardous && cs.Approval != "":
			bad("%s.approval: only hazardous commands take an approval", at)
		}
		hasEStop = hasEStop || cs.EmergencyStop
		if c.MinInterval, err = duration(at+".min_interval", cs.MinInterval, 0, 24*time.Hour); err != nil {
			errs = append(errs, err)
		}
		if c.ConfirmTimeout, err = duration(at+".confirm_timeout", cs.ConfirmTimeout, DefaultConfirmTimeout, MaxTTL); err != nil {
			errs = append(errs, err)
		}
		if len(cs.Params) > MaxParams {
			bad("%s.params: at most %d", at, MaxParams)
		}
		seen := map[string]bool{}
		for _, ps := range cs.Params {
			pat := at + ".params." + ps.Name
			if !ValidName(ps.Name) || seen[ps.Name] {
				bad("%s: parameter name %q is invalid or repeated", at, ps.Name)
				continue
			}
			seen[ps.Name] = true
			prm := Param{ParamSpec: ps, Output: ps.Output}
			if prm.Output == "" {
				prm.Output = ps.Name
			}
			if !ValidName(prm.Output) {
				bad("%s.output: %q is not a valid name", pat, prm.Output)
			}
			switch ps.Type {
			case api.ParamNumber, api.ParamInteger:
				if ps.Min == nil || ps.Max == nil || math.IsNaN(*ps.Min) || math.IsNaN(*ps.Max) || *ps.Min > *ps.Max ||
					math.IsInf(*ps.Min, 0) || math.IsInf(*ps.Max, 0) {
					bad("%s: a numeric parameter needs finite min <= max (bounds are how the policy rejects, never clamps)", pat)
				}
			case api.ParamBool:
				if ps.Min != nil || ps.Max != nil || ps.MaxRate != 0 {
					bad("%s: a boolean parameter takes no min, max or max_rate", pat)
				}
			default:
				bad("%s.type: %q is not number, integer or boolean", pat, ps.Type)
			}
			if ps.MaxRate < 0 || math.IsNaN(ps.MaxRate) || math.IsInf(ps.MaxRate, 0) {
				bad("%s.max_rate: must be a finite number >= 0", pat)
			}
			if ps.MaxRate > 0 {
				if _, ok := p.SafeOutputs[prm.Output]; !ok {
					bad("%s.max_rate: output %q needs a value in safe_state.outputs (the rate limit's starting point)", pat, prm.Output)
				}
			}
			if prev, ok := outputs[prm.Output]; ok && (prev.MaxRate != ps.MaxRate || prev.Type != ps.Type) {
				bad("%s: output %q is driven by several parameters with different types or rates", pat, prm.Output)
			}
			outputs[prm.Output] = prm
			if v, ok := p.SafeOutputs[prm.Output]; ok && ps.Min != nil && ps.Max != nil && (v < *ps.Min || v > *ps.Max) {
				bad("%s: safe value %v of output %q is outside [%v, %v]", pat, v, prm.Output, *ps.Min, *ps.Max)
			}
			c.Params = append(c.Params, prm)
		}
		if len(cs.Interlocks) > MaxInterlocks || len(cs.Windows) > MaxWindows {
			bad("%s: at most %d interlocks and %d windows", at, MaxInterlocks, MaxWindows)
		}
		for j, il := range cs.Interlocks {
			iat := fmt.Sprintf("%s.interlocks[%d]", at, j)
			if !ValidName(il.Fact) || !validOps[il.Op] {
				bad("%s: needs a fact name and an op (eq, ne, lt, le, gt, ge)", iat)
			}
			switch il.Value.(type) {
			case float64, bool, string:
			default:
				bad("%s.value: must be a number, boolean or string", iat)
			}
			if _, num := il.Value.(float64); !num && il.Op != "eq" && il.Op != "ne" {
				bad("%s: %s compares numbers only", iat, il.Op)
			}
			ma, err := duration(iat+".max_age", il.MaxAge, 0, 24*time.Hour)
			if err != nil {
				errs = append(errs, err)
			}
			if il.Name == "" {
				il.Name = il.Fact
			}
			c.Interlocks = append(c.Interlocks, interlock{Interlock: il, maxAge: ma})
		}
		for j, w := range cs.Windows {
			wat := fmt.Sprintf("%s.windows[%d]", at, j)
			s, ok1 := hhmm(w.Start)
			e, ok2 := hhmm(w.End)
			if !ok1 || !ok2 || s == e {
				bad("%s: start and end are distinct HH:MM (UTC)", wat)
			}
			cw := window{start: s, end: e}
			for _, d := range w.Days {
				wd, ok := dayNames[strings.ToLower(d)]
				if !ok {
					bad("%s.days: %q is not mon..sun", wat, d)
				}
				cw.days |= 1 << wd
			}
			c.Windows = append(c.Windows, cw)
		}
		p.Commands[cs.Name] = c
	}
	if len(p.SafeOutputs) > 0 && !hasEStop {
		bad("commands: a model with a safe state declares an emergency_stop command")
	}
	return p, errors.Join(errs...)
}

// Facts are what interlocks look at: the latest telemetry (hub) or the
// device's local state (SDK).
type Facts interface {
	// Fact returns the value (float64, bool or string), when it was
	// observed, and whether it is known.
	Fact(name string) (value any, at time.Time, ok bool)
}

// MapFacts is Facts from a map; every fact observed at At.
type MapFacts struct {
	Values map[string]any
	At     time.Time
}

// Fact implements Facts.
func (m MapFacts) Fact(name string) (any, time.Time, bool) {
	v, ok := m.Values[name]
	return v, m.At, ok
}

// Output is an output's last commanded value and when it was commanded.
type Output struct {
	Value float64   `json:"v"`
	At    time.Time `json:"at"`
}

// State is what the policy remembers between commands of one device.
// It is not safe for concurrent use; the hub and the Guard serialise.
type State struct {
	Outputs  map[string]Output    `json:"outputs"`
	Last     map[string]time.Time `json:"last"` // last accepted command of each name
	Stopped  bool                 `json:"stopped,omitempty"`
	StopTime time.Time            `json:"stop_time,omitzero"`
}

// NewState is the state of a device at its safe state since now.
func (p *Policy) NewState(now time.Time) *State {
	st := &State{Outputs: map[string]Output{}, Last: map[string]time.Time{}}
	p.ResetOutputs(st, now)
	return st
}

// ResetOutputs puts every output at its safe value as of now (failsafe,
// emergency stop, start-up): the rate limits count from there.
func (p *Policy) ResetOutputs(st *State, now time.Time) {
	if st.Outputs == nil {
		st.Outputs = map[string]Output{}
	}
	if st.Last == nil {
		st.Last = map[string]time.Time{}
	}
	for o, v := range p.SafeOutputs {
		st.Outputs[o] = Output{Value: v, At: now}
	}
}

// Decision is a verdict and the constraints the caller enforces when it
// acts on it: the parsed parameter values and the outputs they set.
type Decision struct {
	Verdict api.Verdict
	Command *Command           // nil when the name is unknown
	Values  map[string]any     // parameter -> float64 or bool
	Outputs map[string]float64 // output -> new value (booleans as 0/1)
}

// Allowed reports whether the verdict allows the command.
func (d Decision) Allowed() bool { return d.Verdict.Allowed }

// Evaluate judges one command against the policy and st at now. It changes
// nothing; Apply records an accepted command. Every failed rule is named.
func (p *Policy) Evaluate(st *State, name string, params json.RawMessage, facts Facts, now time.Time) Decision {
	d := Decision{Verdict: api.Verdict{ModelVersion: p.Model.Version, Hazard: api.HazardNone}}
	fail := func(rule, target, format string, args ...any) {
		d.Verdict.Failures = append(d.Verdict.Failures, api.Failure{Rule: rule, Target: target, Message: fmt.Sprintf(format, args...)})
	}
	c := p.Commands[name]
	if c == nil {
		fail("schema", name, "model %s has no command %q", p.Model.Name, name)
		return d
	}
	d.Command = c
	d.Verdict.Hazard, d.Verdict.Approval, d.Verdict.EmergencyStop = c.Spec.Hazard, c.Spec.Approval, c.Spec.EmergencyStop
	d.Values, d.Outputs = map[string]any{}, map[string]float64{}
	p.checkParams(c, params, &d, fail)
	if c.Spec.EmergencyStop {
		// SR 1.1: nothing stands in an emergency stop's way but its schema.
		d.Verdict.Allowed = len(d.Verdict.Failures) == 0
		return d
	}
	if st.Stopped && !c.Spec.Rearm {
		fail("estopped", name, "the device is emergency-stopped; send a re-arm command first")
	}
	for _, prm := range c.Params {
		v, ok := d.Outputs[prm.Output]
		if !ok || prm.MaxRate == 0 {
			continue
		}
		prev, ok := st.Outputs[prm.Output]
		if !ok {
			continue
		}
		dt := now.Sub(prev.At).Seconds()
		if dt < 0 {
			dt = 0
		}
		allowed := prm.MaxRate * dt
		if math.Abs(v-prev.Value) > allowed+rateTolerance*math.Max(1, allowed) {
			fail("rate", prm.Name, "%s from %v to %v in %.3fs exceeds %v %s/s", prm.Output, prev.Value, v, dt, prm.MaxRate, unitOr(prm.Unit))
		}
	}
	if c.MinInterval > 0 {
		if last, ok := st.Last[name]; ok && now.Sub(last) < c.MinInterval {
			fail("min_interval", name, "%s ran %s ago; the policy allows one every %s", name, now.Sub(last).Round(time.Millisecond), c.MinInterval)
		}
	}
	if len(c.Windows) > 0 && !inWindows(c.Windows, now) {
		fail("window", name, "%s is allowed only inside its time windows (UTC); now is %s", name, now.UTC().Format("Mon 15:04"))
	}
	for _, il := range c.Interlocks {
		if held, why := il.holds(facts, now); held {
			fail("interlock", il.Name, "%s", why)
		}
	}
	d.Verdict.Allowed = len(d.Verdict.Failures) == 0
	return d
}

func unitOr(u string) string {
	if u == "" {
		return "units"
	}
	return u
}

// checkParams parses params strictly: a JSON object with exactly the
// declared parameters, each of its type and inside its bounds.
func (p *Policy) checkParams(c *Command, raw json.RawMessage, d *Decision, fail func(rule, target, format string, args ...any)) {
	if len(raw) > MaxParamsBytes {
		fail("schema", "params", "params are %d bytes; at most %d", len(raw), MaxParamsBytes)
		return
	}
	var obj map[string]json.RawMessage
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null")) {
		if trimmed[0] != '{' || json.Unmarshal(trimmed, &obj) != nil {
			fail("schema", "params", "params must be a JSON object")
			return
		}
		if dup := duplicateKey(trimmed); dup != "" {
			// Parsers disagree on which duplicate wins; refuse rather than guess.
			fail("schema", dup, "parameter %q appears twice", dup)
			return
		}
	}
	for k := range obj {
		if !slices.ContainsFunc(c.Params, func(p Param) bool { return p.Name == k }) {
			fail("schema", k, "%s takes no parameter %q", c.Spec.Name, k)
		}
	}
	for _, prm := range c.Params {
		rv, ok := obj[prm.Name]
		if !ok {
			fail("schema", prm.Name, "parameter %s is required", prm.Name)
			continue
		}
		switch prm.Type {
		case api.ParamBool:
			var b bool
			if json.Unmarshal(rv, &b) != nil {
				fail("schema", prm.Name, "%s must be true or false", prm.Name)
				continue
			}
			d.Values[prm.Name] = b
			d.Outputs[prm.Output] = map[bool]float64{false: 0, true: 1}[b]
		default:
			var f float64
			if json.Unmarshal(rv, &f) != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				fail("schema", prm.Name, "%s must be a number", prm.Name)
				continue
			}
			if prm.Type == api.ParamInteger && f != math.Trunc(f) {
				fail("schema", prm.Name, "%s must be a whole number", prm.Name)
				continue
			}
			if f < *prm.Min || f > *prm.Max {
				// Reject and alarm; never clamp.
				fail("bounds", prm.Name, "%s = %v %s is outside [%v, %v]", prm.Name, f, prm.Unit, *prm.Min, *prm.Max)
				continue
			}
			d.Values[prm.Name] = f
			d.Outputs[prm.Output] = f
		}
	}
}

func inWindows(ws []window, now time.Time) bool {
	u := now.UTC()
	mins := u.Hour()*60 + u.Minute()
	for _, w := range ws {
		day := u.Weekday()
		in := false
		if w.start < w.end {
			in = mins >= w.start && mins < w.end
		} else { // spans midnight: the part after midnight belongs to the previous day's window
			if mins >= w.start {
				in = true
			} else if mins < w.end {
				in, day = true, (day+6)%7
			}
		}
		if in && (w.days == 0 || w.days&(1<<day) != 0) {
			return true
		}
	}
	return false
}

// holds reports whether the interlock blocks; unknown or stale facts block.
func (il interlock) holds(f Facts, now time.Time) (bool, string) {
	if f == nil {
		return true, fmt.Sprintf("interlock %s: fact %s is unknown", il.Name, il.Fact)
	}
	v, at, ok := f.Fact(il.Fact)
	if !ok {
		return true, fmt.Sprintf("interlock %s: fact %s is unknown", il.Name, il.Fact)
	}
	if il.maxAge > 0 && now.Sub(at) > il.maxAge {
		return true, fmt.Sprintf("interlock %s: fact %s is %s old (max %s)", il.Name, il.Fact, now.Sub(at).Round(time.Second), il.maxAge)
	}
	c, ok := compare(v, il.Value)
	if !ok {
		return true, fmt.Sprintf("interlock %s: fact %s = %v cannot be compared with %v", il.Name, il.Fact, v, il.Value)
	}
	var held bool
	switch il.Op {
	case "eq":
		held = c == 0
	case "ne":
		held = c != 0
	case "lt":
		held = c < 0
	case "le":
		held = c <= 0
	case "gt":
		held = c > 0
	case "ge":
		held = c >= 0
	}
	if held {
		return true, fmt.Sprintf("interlock %s: %s %s %v (it is %v)", il.Name, il.Fact, il.Op, il.Value, v)
	}
	return false, ""
}

// compare returns -1, 0, 1 for numbers; 0 or 2 (unequal) for booleans and
// strings; ok false for mismatched types.
func compare(a, b any) (int, bool) {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		if !ok || math.IsNaN(x) {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case bool:
		y, ok := b.(bool)
		if !ok {
			return 0, false
		}
		if x == y {
			return 0, true
		}
		return 2, true
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		if x == y {
			return 0, true
		}
		return 2, true
	}
	return 0, false
}

// Apply records an accepted command in st at now.
func (p *Policy) Apply(st *State, d Decision, now time.Time) {
	if !d.Verdict.Allowed || d.Command == nil {
		return
	}
	if st.Outputs == nil {
		st.Outputs = map[string]Output{}
	}
	if st.Last == nil {
		st.Last = map[string]time.Time{}
	}
	st.Last[d.Command.Spec.Name] = now
	switch {
	case d.Command.Spec.EmergencyStop:
		st.Stopped, st.StopTime = true, now
		p.ResetOutputs(st, now)
		return
	case d.Command.Spec.Rearm:
		st.Stopped = false
	}
	for o, v := range d.Outputs {
		st.Outputs[o] = Output{Value: v, At: now}
	}
}

// Fact is one observed value.
type Fact struct {
	Value any
	At    time.Time
}

// FactSet is Facts from a map of observations.
type FactSet map[string]Fact

// Fact implements Facts.
func (s FactSet) Fact(name string) (any, time.Time, bool) {
	f, ok := s[name]
	return f.Value, f.At, ok
}

// duplicateKey returns a top-level key that appears twice in a JSON object.
func duplicateKey(obj []byte) string {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return ""
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return ""
		}
		k, _ := t.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var skip json.RawMessage
		if dec.Decode(&skip) != nil {
			return ""
		}
	}
	return ""
}
