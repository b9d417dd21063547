package firmware

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
)

// RolloutSpec is what an operator asks for.
type RolloutSpec struct {
	ImageID          string
	Tags             []string
	Percent          int
	Waves            []int
	SuccessRate      float64
	FailureThreshold float64
}

func (sp *RolloutSpec) normalize() error {
	if sp.Percent == 0 {
		sp.Percent = 100
	}
	if sp.Percent < 1 || sp.Percent > 100 {
		return api.Errorf(api.CodeInvalid, "percent must be 1..100")
	}
	if len(sp.Waves) == 0 {
		sp.Waves = slices.Clone(DefaultWaves)
	}
	if len(sp.Waves) > maxWaves {
		return api.Errorf(api.CodeInvalid, "at most %d waves", maxWaves)
	}
	for i, w := range sp.Waves {
		if w < 1 || w > 100 || (i > 0 && w <= sp.Waves[i-1]) {
			return api.Errorf(api.CodeInvalid, "waves are ascending cumulative percentages 1..100 (like [1,10,50,100])")
		}
	}
	if sp.Waves[len(sp.Waves)-1] != 100 {
		return api.Errorf(api.CodeInvalid, "the last wave must be 100 (the whole cohort)")
	}
	if sp.SuccessRate == 0 {
		sp.SuccessRate = DefaultSuccessRate
	}
	if sp.FailureThreshold == 0 {
		sp.FailureThreshold = DefaultFailureThreshold
	}
	if sp.SuccessRate < 0 || sp.SuccessRate > 1 || sp.FailureThreshold < 0 || sp.FailureThreshold > 1 || math.IsNaN(sp.SuccessRate) || math.IsNaN(sp.FailureThreshold) {
		return api.Errorf(api.CodeInvalid, "success_rate and failure_threshold are fractions 0..1")
	}
	tags, err := cleanTags(sp.Tags)
	sp.Tags = tags
	return err
}

// rank orders devices within a rollout: a stable pseudo-random position.
func rank(rolloutID, deviceID string) uint64 {
	h := sha256.Sum256([]byte(rolloutID + "\x00" + deviceID))
	return binary.BigEndian.Uint64(h[:8])
}

// CreateRollout plans a rollout of an image to a cohort of the image's
// model: the tenant's active devices of that model, narrowed by tags and a
// percentage, ordered pseudo-randomly and cut into waves. It waits for a
// second person's approval when the tenant requires it.
func (s *Service) CreateRollout(ctx context.Context, tenantID, actor string, sp RolloutSpec) (Rollout, error) {
	if err := sp.normalize(); err != nil {
		return Rollout{}, err
	}
	img, err := s.Image(ctx, tenantID, sp.ImageID)
	if err != nil {
		return Rollout{}, err
	}
	if img.Status != ImageReady {
		return Rollout{}, api.Errorf(api.CodeConflict, "upload the image's bytes before rolling it out")
	}
	now := s.o.Now()
	if !now.Before(img.Manifest.Expires) {
		return Rollout{}, api.Errorf(api.CodeConflict, "the image's manifest has expired; sign a new one")
	}
	fleet, err := s.o.Fleet.Devices(ctx, tenantID)
	if err != nil {
		return Rollout{}, err
	}
	id, err := s.newID("rol_")
	if err != nil {
		return Rollout{}, err
	}
	var evs []journal.Event
	var r Rollout
	err = s.o.Store.Update(ctx, func(tx Tx) error {
		st, err := tx.Settings(tenantID)
		if err != nil {
			return err
		}
		states, err := tx.DeviceStates(tenantID)
		if err != nil {
			return err
		}
		tags := map[string][]string{}
		for _, d := range states {
			tags[d.DeviceID] = d.Tags
		}
		var cohort []string
		for _, d := range fleet {
			if !d.Active || d.Model != img.Manifest.Model {
				continue
			}
			if !hasAll(tags[d.ID], sp.Tags) {
				continue
			}
			if sp.Percent < 100 && rank("cohort", d.ID)%100 >= uint64(sp.Percent) {
				continue
			}
			cohort = append(cohort, d.ID)
		}
		if len(cohort) == 0 {
			return api.Errorf(api.CodeConflict, "no active device of model %q matches this cohort", img.Manifest.Model)
		}
		sort.Slice(cohort, func(i, j int) bool { return rank(id, cohort[i]) < rank(id, cohort[j]) })
		r = Rollout{ID: id, TenantID: tenantID, ImageID: img.ID, Model: img.Manifest.Model, Version: img.Manifest.Version,
			Tags: sp.Tags, Percent: sp.Percent, Waves: sp.Waves, SuccessRate: sp.SuccessRate, FailureThreshold: sp.FailureThreshold,
			Status: RolloutRunning, CreatedBy: actor, CreatedAt: now, UpdatedAt: now}
		if st.RequireApproval {
			r.Status = RolloutAwaitingApproval
		}
		targets := make([]Target, len(cohort))
		for i, dev := range cohort {
			targets[i] = Target{RolloutID: id, TenantID: tenantID, DeviceID: dev, Wave: waveOf(i, len(cohort), sp.Waves), Status: TargetPending, UpdatedAt: now}
			if err := tx.PutTarget(targets[i]); err != nil {
				return err
			}
		}
		if err := tx.PutRollout(r); err != nil {
			return err
		}
		evs = append(evs, journal.Event{Actor: actor, Tenant: tenantID, Action: "firmware.rollout_created", Target: id,
			Detail: map[string]string{"image": img.ID, "model": r.Model, "version": r.Version, "devices": fmt.Sprint(len(cohort)),
				"status": string(r.Status), "waves": fmt.Sprint(r.Waves)}})
		if r.Status == RolloutRunning {
			more, err := s.evaluate(tx, &r, targets, now)
			evs = append(evs, more...)
			return err
		}
		return nil
	})
	if err != nil {
		return Rollout{}, err
	}
	return r, s.record(ctx, evs...)
}

func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// waveOf puts the i-th of n ranked devices into the first wave whose
// cumulative share covers it.
func waveOf(i, n int, waves []int) int {
	for w, pct := range waves {
		if i < int(math.Ceil(float64(n)*float64(pct)/100)) {
			return w
		}
	}
	return len(waves) - 1
}

// evaluate applies the rollout rules after a change, inside tx: halt when
// the failed share of the devices offered so far passes the threshold;
// start the next wave when every device offered so far has finished and
// enough succeeded; complete after the last wave. It saves r when it
// changes and returns the events to journal.
func (s *Service) evaluate(tx Tx, r *Rollout, targets []Target, now time.Time) ([]journal.Event, error) {
	var evs []journal.Event
	changed := false
	for r.Status == RolloutRunning {
		var inWaves, done, failed, succeeded int
		for _, t := range targets {
			if t.Wave > r.Wave {
				continue
			}
			inWaves++
			switch t.Status {
			case TargetFailed:
				failed++
				done++
			case TargetSucceeded:
				succeeded++
				done++
			}
		}
		if inWaves > 0 && float64(failed)/float64(inWaves) > r.FailureThreshold {
			r.Status, changed = RolloutHalted, true
			r.Reason = fmt.Sprintf("%d of %d devices failed, past the %.0f%% failure threshold", failed, inWaves, r.FailureThreshold*100)
			evs = append(evs, journal.Event{Actor: "system", Tenant: r.TenantID, Action: "firmware.rollout_halted", Target: r.ID,
				Outcome: journal.OutcomeFailure, Detail: map[string]string{"reason": r.Reason, "wave": fmt.Sprint(r.Wave)}})
			break
		}
		if done < inWaves {
			break
		}
		if inWaves > 0 && float64(succeeded)/float64(inWaves) < r.SuccessRate {
			r.Status, changed = RolloutHalted, true
			r.Reason = fmt.Sprintf("wave %d finished with %d of %d succeeded, below the %.0f%% success rate", r.Wave+1, succeeded, inWaves, r.SuccessRate*100)
			evs = append(evs, journal.Event{Actor: "system", Tenant: r.TenantID, Action: "firmware.rollout_halted", Target: r.ID,
				Outcome: journal.OutcomeFailure, Detail: map[string]string{"reason": r.Reason, "wave": fmt.Sprint(r.Wave)}})
			break
		}
		changed = true
		if r.Wave == len(r.Waves)-1 {
			r.Status, r.Reason = RolloutCompleted, ""
			evs = append(evs, journal.Event{Actor: "system", Tenant: r.TenantID, Action: "firmware.rollout_completed", Target: r.ID,
				Outcome: journal.OutcomeSuccess, Detail: map[string]string{"succeeded": fmt.Sprint(succeeded), "failed": fmt.Sprint(failed)}})
			break
		}
		r.Wave++
		evs = append(evs, journal.Event{Actor: "system", Tenant: r.TenantID, Action: "firmware.rollout_wave", Target: r.ID,
			Outcome: journal.OutcomeSuccess, Detail: map[string]string{"wave": fmt.Sprint(r.Wave + 1), "percent": fmt.Sprint(r.Waves[r.Wave])}})
	}
	if changed {
		r.UpdatedAt = now
		if err := tx.PutRollout(*r); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

// Rollout returns a rollout and its per-device status.
func (s *Service) Rollout(ctx context.Context, tenantID, id string) (Rollout, []Target, error) {
	var r Rollout
	var ts []Target
	err := s.o.Store.View(ctx, func(tx Tx) (err error) {
		if r, err = tx.Rollout(tenantID, id); err != nil {
			return err
		}
		ts, err = tx.Targets(id)
		return err
	})
	return r, ts, notFound("rollout", err)
}

// Rollouts lists the tenant's rollouts.
func (s *Service) Rollouts(ctx context.Context, tenantID string) ([]Rollout, error) {
	var out []Rollout
	err := s.o.Store.View(ctx, func(tx Tx) (err error) { out, err = tx.Rollouts(tenantID); return err })
	return out, err
}

// Action is an operator's action on a rollout.
type Action string

// Actions.
const (
	ActionApprove Action = "approve"
	ActionPause   Action = "pause"
	ActionResume  Action = "resume"
	ActionAbort   Action = "abort"
)

// ErrSamePerson is returned when a rollout's creator tries to approve it.
var ErrSamePerson = errors.New("approval needs a second person")

// Act applies an operator action. Approve must come from someone other
// than the rollout's creator.
func (s *Service) Act(ctx context.Context, tenantID, actor, id string, a Action) (Rollout, error) {
	now := s.o.Now()
	var r Rollout
	var evs []journal.Event
	err := s.o.Store.Update(ctx, func(tx Tx) error {
		var err error
		if r, err = tx.Rollout(tenantID, id); err != nil {
			return notFound("rollout", err)
		}
		from := r.Status
		switch a {
		case ActionApprove:
			if r.Status != RolloutAwaitingApproval {
				return api.Errorf(api.CodeConflict, "this rollout is %s, not awaiting approval", r.Status)
			}
			if actor == r.CreatedBy {
				return api.Errorf(api.CodeForbidden, "%v: the rollout's creator cannot approve it", ErrSamePerson)
			}
			r.Status, r.ApprovedBy = RolloutRunning, actor
		case ActionPause:
			if r.Status != RolloutRunning {
				return api.Errorf(api.CodeConflict, "only a running rollout can be paused (this one is %s)", r.Status)
			}
			r.Status = RolloutPaused
		case ActionResume:
			// A halted rollout stays halted: its failures are still past the
			// threshold. Abort it and roll out a fixed image instead.
			if r.Status != RolloutPaused {
				return api.Errorf(api.CodeConflict, "only a paused rollout can be resumed (this one is %s)", r.Status)
			}
			r.Status, r.Reason = RolloutRunning, ""
		case ActionAbort:
			if r.Status == RolloutAborted || r.Status == RolloutCompleted {
				return api.Errorf(api.CodeConflict, "this rollout is already %s", r.Status)
			}
			r.Status = RolloutAborted
		default:
			return api.Errorf(api.CodeInvalid, "unknown action %q", a)
		}
		r.UpdatedAt = now
		if err := tx.PutRollout(r); err != nil {
			return err
		}
		evs = append(evs, journal.Event{Actor: actor, Tenant: tenantID, Action: "firmware.rollout_" + string(a), Target: id,
			Detail: map[string]string{"from": string(from), "to": string(r.Status)}})
		if r.Status == RolloutRunning {
			targets, err := tx.Targets(id)
			if err != nil {
				return err
			}
			more, err := s.evaluate(tx, &r, targets, now)
			evs = append(evs, more...)
			return err
		}
		return nil
	})
	if err != nil {
		if api.ErrorCode(err) == api.CodeForbidden {
			_ = s.record(ctx, journal.Event{Actor: actor, Tenant: tenantID, Action: "firmware.rollout_approve", Target: id,
				Outcome: journal.OutcomeDenied, Detail: map[string]string{"reason": "creator tried to approve"}})
		}
		return Rollout{}, err
	}
	return r, s.record(ctx, evs...)
}

// Counts returns the number of targets per status.
func Counts(ts []Target) map[string]int {
	out := map[string]int{}
	for _, t := range ts {
		out[string(t.Status)]++
	}
	return out
}
