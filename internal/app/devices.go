package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/pki"
	"github.com/rampart-iot/rampart/internal/secrets"
)

// startDevices loads (on first run creates) the device intermediate under
// the root and builds the device registry.
func startDevices(ctx context.Context, cfg *config.Config, d *data, j *journal.Journal, e env, log *slog.Logger, root *pki.CA) (*devices.Service, *pki.DeviceCA, error) {
	dca, created, err := pki.LoadOrCreateDeviceCA(ctx, pki.Options{
		Vault: d.vault, NotFound: func(err error) bool { return errors.Is(err, secrets.ErrNotFound) },
		Now: e.now, Rand: e.rand,
	}, root)
	if err != nil {
		return nil, nil, fmt.Errorf("starting the device CA: %w", err)
	}
	if created {
		if err := j.Record(ctx, journal.Event{Actor: "system", Action: "pki.device_ca_created", Target: dca.Cert.Subject.CommonName, Outcome: journal.OutcomeSuccess}); err != nil {
			return nil, nil, err
		}
	}
	svc, err := devices.New(devices.Options{
		Store: d.db.Devices(), CA: dca, Journal: j, Now: e.now, Rand: e.rand, Logger: log,
		CertLifetime: time.Duration(cfg.Devices.CertLifetime),
		TokenTTL:     time.Duration(cfg.Devices.TokenTTL),
		ClonePolicy:  devices.ClonePolicy(cfg.Devices.ClonePolicy),
		CloneWindow:  time.Duration(cfg.Devices.CloneWindow),
	})
	if err != nil {
		return nil, nil, err
	}
	return svc, dca, nil
}
