package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/accounts"
	"github.com/rampart-iot/rampart/internal/broker"
	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/pki"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/telemetry"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// deviceAuth adapts the device registry (devices) and the API tokens
// (applications) to the broker's Authenticator, SessionTracker and
// SecretRotator.
type deviceAuth struct {
	devs   *devices.Service
	acc    *accounts.Service
	models modelLookup // per-model MQTT quotas; nil: the hub's defaults
}

// modelLookup finds a tenant's device model (internal/safety).
type modelLookup interface {
	Model(ctx context.Context, tenantID, name string) (api.DeviceModel, error)
}

// withQuota adds the device model's MQTT quota to a device identity.
func (a deviceAuth) withQuota(ctx context.Context, id broker.Identity, model string) broker.Identity {
	if a.models == nil || model == "" {
		return id
	}
	m, err := a.models.Model(ctx, id.TenantID, model)
	if err != nil || m.MQTTQuota == nil {
		return id
	}
	q := m.MQTTQuota
	id.Quota = &broker.Quota{PublishPerSec: float64(q.PublishPerSec), PublishBurst: q.PublishBurst,
		BytesPerSec: float64(q.BytesPerSec), MaxSubscriptions: q.MaxSubscriptions}
	return id
}

func identityOf(d devices.Device) broker.Identity {
	return broker.Identity{Kind: broker.KindDevice, DeviceID: d.ID, TenantID: d.TenantID,
		State: broker.DeviceState{Quarantined: d.Status == devices.StatusQuarantined, MustRotate: d.MustRotate}}
}

func (a deviceAuth) AuthenticateDevice(ctx context.Context, deviceID string, cert *x509.Certificate) (broker.Identity, error) {
	d, err := a.devs.AuthorizeCert(ctx, cert)
	if err != nil {
		return broker.Identity{}, err
	}
	if d.ID != deviceID {
		return broker.Identity{}, errors.New("certificate names another device")
	}
	return a.withQuota(ctx, identityOf(d), d.Model), nil
}

func (a deviceAuth) AuthenticatePassword(ctx context.Context, username string, password secrets.Text) (broker.Identity, error) {
	if strings.HasPrefix(password.Reveal(), "rpt_") {
		// A back-end application: an API token (never a person's session)
		// whose scopes include mqtt:subscribe. It reads its tenant only;
		// it never publishes and never sees $SYS.
		p, err := a.acc.Authenticate(ctx, password)
		if err != nil {
			return broker.Identity{}, err
		}
		if p.TokenID == "" || !p.Can(accounts.PermMQTTSubscribe) {
			return broker.Identity{}, errors.New("token lacks the mqtt:subscribe scope")
		}
		return broker.Identity{Kind: broker.KindApp, AppID: p.TokenID, TenantID: p.TenantID}, nil
	}
	if !pki.ValidDeviceID(username) {
		return broker.Identity{}, errors.New("unknown username")
	}
	d, err := a.devs.ValidateSecret(ctx, username, password)
	if err != nil {
		return broker.Identity{}, err
	}
	return a.withQuota(ctx, identityOf(d), d.Model), nil
}

func (a deviceAuth) Opened(ctx context.Context, id broker.Identity, remote string) error {
	if id.Kind != broker.KindDevice {
		return nil
	}
	ok, err := a.devs.ConnectionOpened(ctx, id.DeviceID, remote)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("possible clone: this identity is already connected")
	}
	return nil
}

func (a deviceAuth) Closed(ctx context.Context, id broker.Identity, remote string) {
	if id.Kind == broker.KindDevice {
		a.devs.ConnectionClosed(ctx, id.DeviceID, remote)
	}
}

func (a deviceAuth) RotateSecret(ctx context.Context, deviceID string, current, next secrets.Text, source string) error {
	_, err := a.devs.RotateSecret(ctx, deviceID, current, next, source)
	return err
}

// telemetrySink adapts the ingester to the broker's Sink.
type telemetrySink struct{ g *telemetry.Ingester }

func (s telemetrySink) Ingest(m broker.Message) {
	s.g.Ingest(telemetry.Message{TenantID: m.TenantID, DeviceID: m.DeviceID, Topic: m.Topic, Payload: m.Payload,
		ContentType: m.ContentType, Received: m.Received})
}

// startBroker builds the MQTT/TLS listener: the hub's server certificate,
// device certificates verified against the device CA when sent (devices
// without X.509 authenticate with their secret in CONNECT).
func startBroker(cfg *config.Config, e env, log *slog.Logger, reg *prometheus.Registry, j *journal.Journal,
	devs *devices.Service, acc *accounts.Service, dca *pki.DeviceCA, cert *tls.Certificate, ingest *telemetry.Ingester,
	wrapSink func(broker.Sink) broker.Sink, observer broker.Observer, models modelLookup) (*broker.Broker, error) {
	tcfg, err := tlsconf.Server(tlsconf.ServerOptions{
		MinVersion:         tlsconf.Version(cfg.TLS.MinVersion),
		Certificate:        func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil },
		ClientCAs:          dca.Pool(),
		ClientCertOptional: true,
		Time:               e.now,
	})
	if err != nil {
		return nil, err
	}
	auth := deviceAuth{devs: devs, acc: acc, models: models}
	b, err := broker.New(broker.Options{
		Addr: cfg.MQTT.Addr, TLS: tcfg, Auth: auth, Sessions: auth, Rotator: auth, Tenants: devs,
		Sink: wrapSink(telemetrySink{g: ingest}), Journal: j, Logger: log, Registry: reg, Now: e.now, Observer: observer,
		Limits: broker.Limits{
			MaxPacketBytes:      cfg.MQTT.MaxPacketBytes,
			PublishPerSec:       float64(cfg.MQTT.PublishPerSec),
			PublishBurst:        cfg.MQTT.PublishBurst,
			BytesPerSec:         float64(cfg.MQTT.BytesPerSec),
			MaxSubscriptions:    cfg.MQTT.MaxSubscriptions,
			MaxConnsPerIP:       cfg.MQTT.MaxConnsPerIP,
			NewConnsPerIPPerSec: float64(cfg.MQTT.NewConnsPerIPPerSec),
			MaxConns:            cfg.MQTT.MaxConns,
		},
	})
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	devs.SetDisconnector(b)
	return b, nil
}
