package safety

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/api"
)

// DefaultMaxClockSkew: a command may carry an issued_at this far in the
// device's future (the hub's and the device's clocks disagree a little).
const DefaultMaxClockSkew = 5 * time.Second

// Rejection codes a Guard returns (the ack's "code").
const (
	CodeMalformed    = "malformed"     // not an envelope
	CodeWrongDevice  = "wrong_device"  // addressed to another device
	CodeBadSignature = "bad_signature" // unsigned, forged, or signed by another key
	CodeExpired      = "expired"       // past expires_at
	CodeNotYetValid  = "not_yet_valid" // issued in the future
	CodeStale        = "stale"         // issued before the last failsafe or before start-up
	CodeReplay       = "replay"        // sequence not above the last accepted one
	CodePolicy       = "policy"        // the device's copy of the policy refused it
)

// Rejection is why the Guard refused a command.
type Rejection struct {
	Code    string
	Message string
	Verdict *api.Verdict // for CodePolicy
}

func (r *Rejection) Error() string { return fmt.Sprintf("command refused (%s): %s", r.Code, r.Message) }

// RejectCode lets a command pipeline (the SDK) keep the code in its ack.
func (r *Rejection) RejectCode() string { return r.Code }

// Event is something the Guard reports: a refusal, a failsafe, an
// emergency stop, a re-arm. The SDK publishes them when it can.
type Event struct {
	Kind      string // refused, failsafe, emergency_stop, rearmed
	CommandID string
	Code      string
	Message   string
	At        time.Time
}

// GuardOptions configure a Guard.
type GuardOptions struct {
	DeviceID string
	// HubKey is the hub's command key, pinned at enrollment
	// (GET /pki/command-key over the hub's TLS).
	HubKey ed25519.PublicKey
	// Model is the device's own copy of its safety policy.
	Model api.DeviceModel
	// Facts is the device's local state for interlocks; nil makes every
	// interlock block (unknown state blocks).
	Facts Facts
	Now   func() time.Time // nil: time.Now
	// LastSeq is the highest sequence accepted before a restart (persist
	// it with OnAccept). With 0, commands issued before the Guard started
	// are refused as stale, which closes the replay window a restart opens.
	LastSeq uint64
	// OnAccept runs after a command passed signature, freshness and
	// sequence (whatever the policy says), before Admit returns: persist
	// seq. Called without the Guard's lock.
	OnAccept func(seq uint64)
	// SafeState must drive the outputs to Model.SafeState; reason is
	// "failsafe" or "emergency_stop". Called without the Guard's lock.
	SafeState func(reason string)
	// Report receives every refusal, failsafe, stop and re-arm.
	Report       func(Event)
	MaxClockSkew time.Duration // 0: DefaultMaxClockSkew
}

// Guard is the device's last safety layer. Safe for concurrent use.
type Guard struct {
	o       GuardOptions
	p       *Policy
	started time.Time

	mu         sync.Mutex
	st         *State
	lastSeq    uint64
	lastHeard  time.Time
	failsafe   bool
	failsafeAt time.Time
	poke       chan struct{}
}

// Admitted is a command that passed every check.
type Admitted struct {
	Envelope *Envelope
	Decision Decision
}

// NewGuard compiles the model and starts the failsafe clock.
func NewGuard(o GuardOptions) (*Guard, error) {
	if o.DeviceID == "" {
		return nil, errors.New("safety: GuardOptions.DeviceID is required")
	}
	if len(o.HubKey) != ed25519.PublicKeySize {
		return nil, errors.New("safety: GuardOptions.HubKey must be the hub's 32-byte Ed25519 command key")
	}
	p, err := Compile(o.Model)
	if err != nil {
		return nil, fmt.Errorf("safety: the device's model: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxClockSkew <= 0 {
		o.MaxClockSkew = DefaultMaxClockSkew
	}
	now := o.Now()
	return &Guard{o: o, p: p, started: now, st: p.NewState(now), lastSeq: o.LastSeq, lastHeard: now, poke: make(chan struct{}, 1)}, nil
}

// Policy returns the compiled policy.
func (g *Guard) Policy() *Policy { return g.p }

func (g *Guard) report(ev Event) {
	if g.o.Report != nil {
		g.o.Report(ev)
	}
}

func (g *Guard) refuse(id, code, format string, args ...any) error {
	r := &Rejection{Code: code, Message: fmt.Sprintf(format, args...)}
	g.report(Event{Kind: "refused", CommandID: id, Code: code, Message: r.Message, At: g.o.Now()})
	return r
}

// Admit checks a command payload: envelope, device, signature, freshness,
// sequence, then the local policy. On success the command is recorded
// (its outputs count for later rate checks) and may run; on failure the
// error is a *Rejection and nothing changed but the sequence (a genuine
// command refused by the policy is still spent).
func (g *Guard) Admit(payload []byte) (*Admitted, error) {
	e, err := ParseEnvelope(payload)
	if err != nil {
		return nil, g.refuse("", CodeMalformed, "%v", err)
	}
	if e.DeviceID != g.o.DeviceID {
		return nil, g.refuse(e.ID, CodeWrongDevice, "command is for another device")
	}
	if !e.Verify(g.o.HubKey) {
		return nil, g.refuse(e.ID, CodeBadSignature, "signature does not verify with the pinned hub key")
	}
	now := g.o.Now()
	g.mu.Lock()
	switch {
	case !now.Before(e.ExpiresAt):
		g.mu.Unlock()
		return nil, g.refuse(e.ID, CodeExpired, "expired at %s", e.CommandEnvelope.ExpiresAt)
	case e.IssuedAt.After(now.Add(g.o.MaxClockSkew)):
		g.mu.Unlock()
		return nil, g.refuse(e.ID, CodeNotYetValid, "issued at %s, in the future", e.CommandEnvelope.IssuedAt)
	case e.Seq <= g.lastSeq:
		g.mu.Unlock()
		return nil, g.refuse(e.ID, CodeReplay, "sequence %d is not above %d", e.Seq, g.lastSeq)
	case g.o.LastSeq == 0 && e.IssuedAt.Before(g.started.Add(-g.o.MaxClockSkew)):
		g.mu.Unlock()
		return nil, g.refuse(e.ID, CodeStale, "issued before this device started")
	case !g.failsafeAt.IsZero() && e.IssuedAt.Before(g.failsafeAt) && !g.p.isEStop(e.Name):
		g.mu.Unlock()
		return nil, g.refuse(e.ID, CodeStale, "issued before the failsafe at %s; no stale command resumes motion", g.failsafeAt.Format(time.RFC3339))
	}
	g.lastSeq = e.Seq
	g.lastHeard, g.failsafe = now, false
	d := g.p.Evaluate(g.st, e.Name, e.Params, g.o.Facts, now)
	if d.Allowed() {
		g.p.Apply(g.st, d, now)
	}
	g.mu.Unlock()
	if g.o.OnAccept != nil {
		g.o.OnAccept(e.Seq)
	}
	if !d.Allowed() {
		msgs := make([]string, 0, len(d.Verdict.Failures))
		for _, f := range d.Verdict.Failures {
			msgs = append(msgs, f.Rule+": "+f.Message)
		}
		err := g.refuse(e.ID, CodePolicy, "%s", strings.Join(msgs, "; "))
		err.(*Rejection).Verdict = &d.Verdict
		return nil, err
	}
	estop, rearm := d.Command.Spec.EmergencyStop, d.Command.Spec.Rearm
	g.wake()
	if estop {
		g.report(Event{Kind: "emergency_stop", CommandID: e.ID, At: now})
		if g.o.SafeState != nil {
			g.o.SafeState("emergency_stop")
		}
	}
	if rearm {
		g.report(Event{Kind: "rearmed", CommandID: e.ID, At: now})
	}
	return &Admitted{Envelope: e, Decision: d}, nil
}

func (p *Policy) isEStop(name string) bool {
	c := p.Commands[name]
	return c != nil && c.Spec.EmergencyStop
}

// Heard records a sign of life from the hub (the MQTT session is up and
// the hub acknowledged something): it holds off the failsafe.
func (g *Guard) Heard() {
	g.mu.Lock()
	g.lastHeard, g.failsafe = g.o.Now(), false
	g.mu.Unlock()
	g.wake()
}

func (g *Guard) wake() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// Tick enters the failsafe when the hub has been silent for the model's
// failsafe timeout; it reports whether it did just now.
func (g *Guard) Tick() bool {
	if g.p.FailsafeTimeout <= 0 {
		return false
	}
	now := g.o.Now()
	g.mu.Lock()
	if g.failsafe || now.Sub(g.lastHeard) < g.p.FailsafeTimeout {
		g.mu.Unlock()
		return false
	}
	g.failsafe, g.failsafeAt = true, now
	g.p.ResetOutputs(g.st, now)
	g.mu.Unlock()
	g.report(Event{Kind: "failsafe", Message: fmt.Sprintf("nothing from the hub for %s", g.p.FailsafeTimeout), At: now})
	if g.o.SafeState != nil {
		g.o.SafeState("failsafe")
	}
	return true
}

// Run drives the failsafe on the real clock until ctx ends: it wakes
// exactly when the silence reaches the timeout.
func (g *Guard) Run(ctx context.Context) {
	if g.p.FailsafeTimeout <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		g.mu.Lock()
		wait := g.p.FailsafeTimeout - g.o.Now().Sub(g.lastHeard)
		if g.failsafe {
			wait = g.p.FailsafeTimeout
		}
		g.mu.Unlock()
		if wait < 0 {
			wait = 0
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-g.poke:
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-t.C:
			g.Tick()
		}
	}
}

// Rearm clears an emergency stop locally (a person at the machine). The
// outputs stay at their safe values; motion resumes only with new
// commands.
func (g *Guard) Rearm() {
	g.mu.Lock()
	was := g.st.Stopped
	g.st.Stopped = false
	g.mu.Unlock()
	if was {
		g.report(Event{Kind: "rearmed", At: g.o.Now()})
	}
}

// Status is a snapshot of the Guard.
type Status struct {
	LastSeq  uint64
	Stopped  bool
	Failsafe bool
	Outputs  map[string]Output
}

// Status returns a snapshot.
func (g *Guard) Status() Status {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]Output, len(g.st.Outputs))
	for k, v := range g.st.Outputs {
		out[k] = v
	}
	return Status{LastSeq: g.lastSeq, Stopped: g.st.Stopped, Failsafe: g.failsafe, Outputs: out}
}

// Wire is the event as the device publishes it on devices/{id}/events/safety.
func (e Event) Wire() api.SafetyEvent {
	return api.SafetyEvent{Kind: e.Kind, CommandID: e.CommandID, Code: e.Code, Message: e.Message, At: e.At.UTC().Format(time.RFC3339Nano)}
}
