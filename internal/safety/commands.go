package safety

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	engine "github.com/rampart-iot/rampart/sdk/safety"
)

// Submit authorizes a command and, as the verdict says, refuses it
// (status refused, every failed rule named), selects it for confirmation or
// approval (hazardous), or signs and sends it. An emergency stop is sent
// at once and withdraws the device's waiting commands. The caller has
// already checked the principal's permission (commands:write).
func (s *Service) Submit(ctx context.Context, a Actor, deviceID string, req api.CommandRequest) (Command, error) {
	if !engine.ValidName(req.Name) {
		return Command{}, api.Errorf(api.CodeInvalid, "name: %q is not a command name", req.Name)
	}
	if len(req.Params) > engine.MaxParamsBytes {
		return Command{}, api.Errorf(api.CodeTooLarge, "params are over %d bytes", engine.MaxParamsBytes)
	}
	p, err := s.policyFor(ctx, a.TenantID, deviceID)
	if err != nil {
		return Command{}, err
	}
	id, err := s.random("cmd_", 10)
	if err != nil {
		return Command{}, err
	}
	params := compactParams(req.Params)
	unlock := s.lock(deviceID)
	defer unlock()
	now := s.o.Now()
	c := Command{ID: id, TenantID: a.TenantID, DeviceID: deviceID, Name: req.Name, Params: params, IssuedBy: a.UserID, CreatedAt: now}
	st, seq, err := s.state(ctx, p, deviceID)
	if err != nil {
		return Command{}, err
	}
	d, err := s.evaluate(ctx, p, st, c, now)
	if err != nil {
		return Command{}, err
	}
	c.Verdict = d.Verdict
	if !d.Allowed() {
		c.Status = api.CommandRefused
		if err := s.o.Store.InsertCommand(ctx, &c); err != nil {
			return Command{}, err
		}
		s.journalVerdict(ctx, a.String(), c, "safety.command_refused", journal.OutcomeDenied)
		return c, nil
	}
	if d.Command.Spec.EmergencyStop {
		s.withdraw(ctx, a, deviceID, id, now)
	}
	if d.Command.Spec.Hazard == api.HazardHazardous {
		c.Status = api.CommandAwaitingApproval
		if d.Command.Spec.Approval == api.ApprovalConfirm {
			c.Status = api.CommandAwaitingConfirmation
		}
		c.SelectExpires = now.Add(d.Command.ConfirmTimeout)
		if err := s.o.Store.InsertCommand(ctx, &c); err != nil {
			return Command{}, err
		}
		s.journalVerdict(ctx, a.String(), c, "safety.command_selected", journal.OutcomeSuccess)
		return c, nil
	}
	if err := s.o.Store.InsertCommand(ctx, &c); err != nil {
		return Command{}, err
	}
	s.journalVerdict(ctx, a.String(), c, "safety.command_accepted", journal.OutcomeSuccess)
	return s.operate(ctx, a.String(), p, st, seq, d, c, now)
}

func compactParams(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if len(bytes.TrimSpace(raw)) == 0 || json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// state loads the device's policy state (a fresh one when none is stored).
func (s *Service) state(ctx context.Context, p *engine.Policy, deviceID string) (*engine.State, uint64, error) {
	raw, seq, err := s.o.Store.DeviceState(ctx, deviceID)
	if err != nil {
		return nil, 0, err
	}
	if raw == nil {
		// The hub has not commanded this device yet: outputs at their safe
		// values, with no time reference, so the first step is bounded but
		// not rate-limited here (the device's Guard counts from its start).
		return p.NewState(time.Time{}), seq, nil
	}
	var st engine.State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, 0, fmt.Errorf("device %s safety state is corrupt: %w", deviceID, err)
	}
	return &st, seq, nil
}

// evaluate runs the policy with the latest telemetry and the quota.
func (s *Service) evaluate(ctx context.Context, p *engine.Policy, st *engine.State, c Command, now time.Time) (engine.Decision, error) {
	var facts engine.Facts
	if s.o.Facts != nil {
		f, err := s.o.Facts.Facts(ctx, c.TenantID, c.DeviceID)
		if err != nil {
			return engine.Decision{}, err
		}
		facts = f
	}
	d := p.Evaluate(st, c.Name, c.Params, facts, now)
	if d.Command != nil && !d.Command.Spec.EmergencyStop && !s.quotaLeft(c.DeviceID, now) {
		d.Verdict.Failures = append(d.Verdict.Failures, api.Failure{Rule: "quota", Target: c.DeviceID,
			Message: fmt.Sprintf("the device has had %d commands in the last minute", s.o.QuotaPerMinute)})
		d.Verdict.Allowed = false
	}
	return d, nil
}

func (s *Service) quotaLeft(deviceID string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.recent[deviceID]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= time.Minute {
		i++
	}
	ts = ts[i:]
	s.recent[deviceID] = ts
	return len(ts) < s.o.QuotaPerMinute
}

func (s *Service) countSent(deviceID string, now time.Time) {
	s.mu.Lock()
	s.recent[deviceID] = append(s.recent[deviceID], now)
	s.mu.Unlock()
}

// operate signs and sends an allowed command, recording it in the
// device's state. The caller holds the device lock.
func (s *Service) operate(ctx context.Context, actor string, p *engine.Policy, st *engine.State, seq uint64, d engine.Decision, c Command, now time.Time) (Command, error) {
	nonce, err := s.random("", 16)
	if err != nil {
		return Command{}, err
	}
	seq++
	env := api.CommandEnvelope{ID: c.ID, DeviceID: c.DeviceID, Name: c.Name, Params: c.Params, Seq: seq, Nonce: nonce,
		IssuedAt: now.UTC().Format(engine.TimeFormat), ExpiresAt: now.Add(p.CommandTTL).UTC().Format(engine.TimeFormat),
		ModelVersion: p.Model.Version}
	payload, err := engine.Sign(s.o.Key, &env)
	if err != nil {
		return Command{}, err
	}
	p.Apply(st, d, now)
	raw, err := json.Marshal(st)
	if err != nil {
		return Command{}, err
	}
	if err := s.o.Store.SaveDeviceState(ctx, c.TenantID, c.DeviceID, raw, seq); err != nil {
		return Command{}, err
	}
	c.Seq, c.Status, c.SentAt = seq, api.CommandSent, now
	c.ExpiresAt, c.Deadline = now.Add(p.CommandTTL), now.Add(p.AckTimeout)
	if err := s.o.Store.UpdateCommand(ctx, &c); err != nil {
		return Command{}, err
	}
	if !d.Command.Spec.EmergencyStop {
		s.countSent(c.DeviceID, now)
	}
	pub := s.publisher()
	if pub == nil {
		err = errors.New("no broker")
	} else {
		err = pub.PublishCommand(c.DeviceID, payload)
	}
	if err != nil {
		c.Status, c.AckCode, c.AckMessage, c.AckedAt = api.CommandFailed, "undeliverable", "the broker could not take it", now
		if uerr := s.o.Store.UpdateCommand(ctx, &c); uerr != nil {
			return Command{}, uerr
		}
		s.o.Logger.Error("publishing command", "device", c.DeviceID, "command", c.ID, "err", err)
		s.record(ctx, journal.Event{Actor: actor, Tenant: c.TenantID, Action: "safety.command_failed", Target: c.ID, Outcome: journal.OutcomeFailure,
			Detail: map[string]string{"device": c.DeviceID, "code": "undeliverable"}})
		return c, nil
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: c.TenantID, Action: "safety.command_sent", Target: c.ID, Outcome: journal.OutcomeSuccess,
		Detail: map[string]string{"device": c.DeviceID, "name": c.Name, "seq": strconv.FormatUint(seq, 10), "nonce": nonce,
			"expires_at": env.ExpiresAt, "model_version": strconv.Itoa(p.Model.Version)}})
	return c, nil
}

func (s *Service) journalVerdict(ctx context.Context, actor string, c Command, action, outcome string) {
	detail := map[string]string{"device": c.DeviceID, "name": c.Name, "params": truncate(string(c.Params), 256),
		"model_version": strconv.Itoa(c.Verdict.ModelVersion), "hazard": c.Verdict.Hazard}
	for i, f := range c.Verdict.Failures {
		detail["failed."+strconv.Itoa(i)] = f.Rule + " " + f.Target + ": " + truncate(f.Message, 200)
	}
	if c.Verdict.EmergencyStop {
		detail["emergency_stop"] = "true"
	}
	s.record(ctx, journal.Event{Actor: actor, Tenant: c.TenantID, Action: action, Target: c.ID, Outcome: outcome, Detail: detail})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// withdraw cancels the device's commands that wait for confirmation or
// approval: after an emergency stop, nothing selected before it may run.
func (s *Service) withdraw(ctx context.Context, a Actor, deviceID, by string, now time.Time) {
	open, err := s.o.Store.OpenCommands(ctx, a.TenantID, deviceID)
	if err != nil {
		s.o.Logger.Error("listing open commands", "device", deviceID, "err", err)
		return
	}
	for _, c := range open {
		c.Status, c.AckCode, c.AckMessage, c.AckedAt = api.CommandCancelled, "emergency_stop", "withdrawn by emergency stop "+by, now
		if err := s.o.Store.UpdateCommand(ctx, &c); err != nil {
			s.o.Logger.Error("cancelling command", "command", c.ID, "err", err)
			continue
		}
		s.record(ctx, journal.Event{Actor: a.String(), Tenant: a.TenantID, Action: "safety.command_cancelled", Target: c.ID,
			Outcome: journal.OutcomeSuccess, Detail: map[string]string{"device": deviceID, "by": by}})
	}
}

// Confirm is the issuer's "operate" for a command awaiting confirmation.
func (s *Service) Confirm(ctx context.Context, a Actor, id string) (Command, error) {
	return s.release(ctx, a, id, api.CommandAwaitingConfirmation)
}

// Approve is a second person's "operate" for a command awaiting approval.
// The issuer can never approve their own command.
func (s *Service) Approve(ctx context.Context, a Actor, id string) (Command, error) {
	return s.release(ctx, a, id, api.CommandAwaitingApproval)
}

func (s *Service) release(ctx context.Context, a Actor, id, want string) (Command, error) {
	c, err := s.Get(ctx, a.TenantID, id)
	if err != nil {
		return Command{}, err
	}
	p, err := s.policyFor(ctx, a.TenantID, c.DeviceID)
	if err != nil {
		return Command{}, err
	}
	unlock := s.lock(c.DeviceID)
	defer unlock()
	if c, err = s.Get(ctx, a.TenantID, id); err != nil { // re-read under the lock
		return Command{}, err
	}
	now := s.o.Now()
	if c.Status != want {
		return c, api.Errorf(api.CodeConflict, "command %s is %s, not %s", id, c.Status, want)
	}
	switch {
	case want == api.CommandAwaitingConfirmation && a.UserID != c.IssuedBy:
		s.record(ctx, journal.Event{Actor: a.String(), Tenant: a.TenantID, Action: "safety.confirm_refused", Target: id, Outcome: journal.OutcomeDenied,
			Detail: map[string]string{"reason": "not the issuer"}})
		return c, api.Errorf(api.CodeForbidden, "only the user who issued command %s confirms it", id)
	case want == api.CommandAwaitingApproval && a.UserID == c.IssuedBy:
		s.record(ctx, journal.Event{Actor: a.String(), Tenant: a.TenantID, Action: "safety.approval_refused", Target: id, Outcome: journal.OutcomeDenied,
			Detail: map[string]string{"reason": "self-approval"}})
		return c, api.Errorf(api.CodeForbidden, "you issued command %s; a second, different user must approve it", id)
	case !now.Before(c.SelectExpires):
		s.expire(ctx, c, now)
		return c, api.Errorf(api.CodeExpired, "command %s was not confirmed before %s; issue it again", id, c.SelectExpires.UTC().Format(time.RFC3339))
	}
	// Select-before-operate: the policy is evaluated again at operate time.
	st, seq, err := s.state(ctx, p, c.DeviceID)
	if err != nil {
		return Command{}, err
	}
	d, err := s.evaluate(ctx, p, st, c, now)
	if err != nil {
		return Command{}, err
	}
	c.Verdict = d.Verdict
	if want == api.CommandAwaitingApproval {
		c.ApprovedBy = a.UserID
	}
	if !d.Allowed() {
		c.Status = api.CommandRefused
		if err := s.o.Store.UpdateCommand(ctx, &c); err != nil {
			return Command{}, err
		}
		s.journalVerdict(ctx, a.String(), c, "safety.command_refused", journal.OutcomeDenied)
		return c, nil
	}
	action := "safety.command_confirmed"
	if want == api.CommandAwaitingApproval {
		action = "safety.command_approved"
	}
	s.journalVerdict(ctx, a.String(), c, action, journal.OutcomeSuccess)
	return s.operate(ctx, a.String(), p, st, seq, d, c, now)
}

func (s *Service) expire(ctx context.Context, c Command, now time.Time) {
	c.Status, c.AckedAt, c.AckCode = api.CommandExpired, now, "not_confirmed"
	if err := s.o.Store.UpdateCommand(ctx, &c); err != nil {
		s.o.Logger.Error("expiring command", "command", c.ID, "err", err)
		return
	}
	s.record(ctx, journal.Event{Actor: "system", Tenant: c.TenantID, Action: "safety.command_expired", Target: c.ID, Outcome: journal.OutcomeFailure,
		Detail: map[string]string{"device": c.DeviceID}})
}

// Get returns one of the tenant's commands.
func (s *Service) Get(ctx context.Context, tenantID, id string) (Command, error) {
	c, err := s.o.Store.Command(ctx, tenantID, id)
	if errors.Is(err, ErrNotFound) {
		return c, api.Errorf(api.CodeNotFound, "no such command")
	}
	return c, err
}

// List returns a device's commands, newest first.
func (s *Service) List(ctx context.Context, tenantID, deviceID string, limit int) ([]Command, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	return s.o.Store.Commands(ctx, tenantID, deviceID, limit)
}

// ParseAck decodes a device's acknowledgement strictly.
func ParseAck(payload []byte) (api.CommandAck, error) {
	var a api.CommandAck
	if len(payload) > MaxAckBytes {
		return a, fmt.Errorf("ack of %d bytes is over %d", len(payload), MaxAckBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&a); err != nil {
		return a, fmt.Errorf("ack is not a JSON object: %w", err)
	}
	if dec.More() {
		return a, errors.New("trailing data after the ack")
	}
	if !engine.ValidName(a.ID) {
		return a, errors.New("ack needs a command id")
	}
	switch a.Status {
	case "done", "rejected", "failed":
	default:
		return a, fmt.Errorf("ack status %q is not done, rejected or failed", a.Status)
	}
	return a, nil
}

// Ack closes a command's loop with the device's acknowledgement from
// devices/{id}/acks/{command id}. Only the first ack of a sent command
// counts; anything else is logged and dropped.
func (s *Service) Ack(ctx context.Context, tenantID, deviceID, topic string, payload []byte) {
	a, err := ParseAck(payload)
	if err != nil {
		s.o.Logger.Warn("dropping malformed ack", "device", deviceID, "err", err)
		return
	}
	if last := topic[strings.LastIndexByte(topic, '/')+1:]; last != a.ID && last != "acks" {
		s.o.Logger.Warn("dropping ack whose topic names another command", "device", deviceID, "topic", topic)
		return
	}
	unlock := s.lock(deviceID)
	defer unlock()
	c, err := s.o.Store.Command(ctx, tenantID, a.ID)
	if err != nil || c.DeviceID != deviceID {
		s.o.Logger.Warn("dropping ack for an unknown command", "device", deviceID, "command", a.ID)
		return
	}
	if c.Status != api.CommandSent {
		s.o.Logger.Debug("dropping late or repeated ack", "device", deviceID, "command", a.ID, "status", c.Status)
		return
	}
	now := s.o.Now()
	c.AckedAt, c.AckCode, c.AckMessage = now, truncate(a.Code, 64), truncate(a.Message, MaxAckMessage)
	outcome := journal.OutcomeSuccess
	switch a.Status {
	case "done":
		c.Status = api.CommandExecuted
	case "rejected":
		c.Status, outcome = api.CommandRejected, journal.OutcomeDenied
	default:
		c.Status, outcome = api.CommandFailed, journal.OutcomeFailure
	}
	if err := s.o.Store.UpdateCommand(ctx, &c); err != nil {
		s.o.Logger.Error("recording ack", "command", c.ID, "err", err)
		return
	}
	s.record(ctx, journal.Event{Actor: "device:" + deviceID, Tenant: tenantID, Action: "safety.command_" + c.Status, Target: c.ID, Outcome: outcome,
		Detail: map[string]string{"code": c.AckCode, "message": truncate(c.AckMessage, 200), "latency_ms": strconv.FormatInt(now.Sub(c.SentAt).Milliseconds(), 10)}})
}

// Sweep fails sent commands past their ack deadline and expires
// selections nobody confirmed in time.
func (s *Service) Sweep(ctx context.Context) {
	now := s.o.Now()
	due, err := s.o.Store.Due(ctx, now, sweepBatch)
	if err != nil {
		s.o.Logger.Error("listing due commands", "err", err)
		return
	}
	for _, c := range due {
		unlock := s.lock(c.DeviceID)
		cur, err := s.o.Store.Command(ctx, c.TenantID, c.ID)
		switch {
		case err != nil:
		case cur.Status == api.CommandSent && !now.Before(cur.Deadline):
			cur.Status, cur.AckedAt, cur.AckCode, cur.AckMessage = api.CommandFailed, now, "no_ack", "the device did not acknowledge before the deadline"
			if err := s.o.Store.UpdateCommand(ctx, &cur); err == nil {
				s.record(ctx, journal.Event{Actor: "system", Tenant: cur.TenantID, Action: "safety.command_failed", Target: cur.ID, Outcome: journal.OutcomeFailure,
					Detail: map[string]string{"device": cur.DeviceID, "code": "no_ack"}})
			}
		case (cur.Status == api.CommandAwaitingApproval || cur.Status == api.CommandAwaitingConfirmation) && !now.Before(cur.SelectExpires):
			s.expire(ctx, cur, now)
		}
		unlock()
	}
}

// Run sweeps deadlines until ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Sweep(ctx)
		}
	}
}

// Wire converts a record to its API form.
func (c Command) Wire() api.Command {
	ts := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	return api.Command{ID: c.ID, DeviceID: c.DeviceID, Name: c.Name, Params: c.Params, Status: c.Status, Verdict: c.Verdict,
		IssuedBy: c.IssuedBy, ApprovedBy: c.ApprovedBy, Seq: c.Seq, CreatedAt: ts(c.CreatedAt), SelectExp: ts(c.SelectExpires),
		SentAt: ts(c.SentAt), ExpiresAt: ts(c.ExpiresAt), Deadline: ts(c.Deadline), AckedAt: ts(c.AckedAt), AckCode: c.AckCode, AckMessage: c.AckMessage}
}

var deviceEventKinds = map[string]bool{"refused": true, "failsafe": true, "emergency_stop": true, "rearmed": true}

// DeviceEvent journals what a device's Guard reported on
// devices/{id}/events/safety (a refusal, a failsafe, a stop, a re-arm).
func (s *Service) DeviceEvent(ctx context.Context, tenantID, deviceID string, payload []byte) {
	var ev api.SafetyEvent
	if len(payload) > MaxAckBytes || json.Unmarshal(payload, &ev) != nil || !deviceEventKinds[ev.Kind] {
		s.o.Logger.Warn("dropping malformed safety event", "device", deviceID)
		return
	}
	outcome := journal.OutcomeSuccess
	if ev.Kind == "refused" {
		outcome = journal.OutcomeDenied
	}
	s.record(ctx, journal.Event{Actor: "device:" + deviceID, Tenant: tenantID, Action: "safety.device_" + ev.Kind, Target: deviceID, Outcome: outcome,
		Detail: map[string]string{"command": truncate(ev.CommandID, 64), "code": truncate(ev.Code, 64), "message": truncate(ev.Message, 200), "device_time": truncate(ev.At, 40)}})
}
