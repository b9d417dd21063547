package safety

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	engine "github.com/rampart-iot/rampart/sdk/safety"
)

// PutModel stores m as a new version of its model (policies are
// versioned; nothing is overwritten) and journals the change.
func (s *Service) PutModel(ctx context.Context, a Actor, m api.DeviceModel) (api.DeviceModel, error) {
	m.Version, m.CreatedAt, m.CreatedBy = 0, "", ""
	if _, err := engine.Compile(m); err != nil {
		return api.DeviceModel{}, api.Errorf(api.CodeInvalid, "the model's policy is invalid: %v", err)
	}
	if q := m.MQTTQuota; q != nil {
		for name, v := range map[string]int{"publish_per_sec": q.PublishPerSec, "publish_burst": q.PublishBurst,
			"bytes_per_sec": q.BytesPerSec, "max_subscriptions": q.MaxSubscriptions} {
			if v < 0 || v > maxModelQuota {
				return api.DeviceModel{}, api.Errorf(api.CodeInvalid, "mqtt_quota.%s must be 0 (the hub's default) to %d", name, maxModelQuota)
			}
		}
	}
	m.CreatedAt = s.o.Now().UTC().Format(time.RFC3339)
	m.CreatedBy = a.String()
	v, err := s.o.Store.InsertModel(ctx, a.TenantID, m)
	if err != nil {
		return api.DeviceModel{}, fmt.Errorf("storing model %s: %w", m.Name, err)
	}
	m.Version = v
	spec, _ := json.Marshal(m)
	sum := sha256.Sum256(spec)
	s.record(ctx, journal.Event{Actor: a.String(), Tenant: a.TenantID, Action: "safety.policy_changed", Target: m.Name,
		Outcome: journal.OutcomeSuccess, Detail: map[string]string{"version": strconv.Itoa(v), "sha256": hex.EncodeToString(sum[:])}})
	return m, nil
}

// Model returns the latest version of a tenant's model.
func (s *Service) Model(ctx context.Context, tenantID, name string) (api.DeviceModel, error) {
	m, err := s.o.Store.LatestModel(ctx, tenantID, name)
	if errors.Is(err, ErrNotFound) {
		return m, api.Errorf(api.CodeNotFound, "no such model")
	}
	return m, err
}

// Models lists the latest version of each of the tenant's models.
func (s *Service) Models(ctx context.Context, tenantID string) ([]api.DeviceModel, error) {
	return s.o.Store.Models(ctx, tenantID)
}

// policyFor compiles (once per version) the latest policy of a device's model.
func (s *Service) policyFor(ctx context.Context, tenantID, deviceID string) (*engine.Policy, error) {
	name, err := s.o.Devices.ModelOf(ctx, tenantID, deviceID)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, api.Errorf(api.CodeConflict, "device %s has no model; commands go only to devices whose model has a safety policy", deviceID)
	}
	m, err := s.o.Store.LatestModel(ctx, tenantID, name)
	if errors.Is(err, ErrNotFound) {
		return nil, api.Errorf(api.CodeConflict, "model %q has no safety policy yet: POST /api/v1/models first", name)
	}
	if err != nil {
		return nil, err
	}
	key := tenantID + "/" + name + "/" + strconv.Itoa(m.Version)
	s.mu.Lock()
	p := s.compiled[key]
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err = engine.Compile(m)
	if err != nil {
		return nil, fmt.Errorf("stored model %s v%d does not compile: %w", name, m.Version, err)
	}
	s.mu.Lock()
	s.compiled[key] = p
	s.mu.Unlock()
	return p, nil
}
