package app

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/broker"
	"github.com/rampart-iot/rampart/internal/config"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/posture"
	"github.com/rampart-iot/rampart/internal/tlsconf"
)

// detection wires the anomaly detector between the broker (observations)
// and the device registry (mitigations).
type detection struct {
	det    *posture.Detector
	devs   *devices.Service
	j      *journal.Journal
	log    *slog.Logger
	notify *posture.Notifier
	stop   chan struct{}
	queue  chan posture.Anomaly
}

// startDetection builds the detector from config; nil when detection is off.
func startDetection(cfg *config.Config, e env, log *slog.Logger, j *journal.Journal, devs *devices.Service) (*detection, error) {
	if !cfg.Detect.Enabled {
		return nil, nil
	}
	d := &detection{devs: devs, j: j, log: log, stop: make(chan struct{}), queue: make(chan posture.Anomaly, 1024)}
	var actions []posture.Action
	if a := posture.Action(cfg.Detect.BaselineAction); a != posture.ActionNone && a != "none" {
		actions = append(actions, a)
	}
	if cfg.Detect.WebhookURL != "" {
		secret, err := readPassphrase(cfg.Detect.WebhookSecretFile)
		if err != nil {
			return nil, fmt.Errorf("detect webhook secret: %w", err)
		}
		var roots *x509.CertPool
		if cfg.Detect.WebhookCAFile != "" {
			pemBytes, err := os.ReadFile(cfg.Detect.WebhookCAFile)
			if err != nil {
				return nil, err
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pemBytes) {
				return nil, fmt.Errorf("detect.webhook_ca_file %s holds no certificate", cfg.Detect.WebhookCAFile)
			}
		}
		tcfg, err := tlsconf.Outbound(roots)
		if err != nil {
			return nil, err
		}
		d.notify = &posture.Notifier{URL: cfg.Detect.WebhookURL, Secret: secret, Now: e.now,
			Client: &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg}, Timeout: 10 * time.Second}}
		actions = append(actions, posture.ActionNotify)
	}
	d.det = posture.NewDetector(posture.DetectOptions{
		Window: time.Duration(cfg.Detect.Window), Now: e.now, BaselineActions: actions,
		OnAnomaly: func(a posture.Anomaly) {
			select {
			case d.queue <- a:
			default:
				log.Error("anomaly queue full; dropping", "device", a.DeviceID)
			}
		},
	})
	go d.det.Run(d.stop)
	go d.mitigate()
	return d, nil
}

// observer is the broker's Observer, or nil when detection is off.
func (d *detection) observer() broker.Observer {
	if d == nil {
		return nil
	}
	return d
}

// Recent lists a tenant's recent anomalies (nil-safe).
func (d *detection) Recent(tenantID string) []posture.Anomaly {
	if d == nil {
		return nil
	}
	return d.det.Recent(tenantID)
}

func (d *detection) Close() {
	if d != nil {
		close(d.stop)
	}
}

// mitigate journals each anomaly and carries out its actions.
func (d *detection) mitigate() {
	for {
		select {
		case <-d.stop:
			return
		case a := <-d.queue:
			ctx := context.Background()
			detail := map[string]string{"rule": a.Rule, "metric": a.Metric, "value": fmt.Sprint(a.Value),
				"baseline": fmt.Sprintf("%.1f", a.Baseline)}
			var done []string
			for _, act := range a.Actions {
				var err error
				switch act {
				case posture.ActionQuarantine:
					_, err = d.devs.SetStatus(ctx, a.TenantID, "detector", a.DeviceID, devices.StatusQuarantined)
				case posture.ActionSuspend:
					_, err = d.devs.SetStatus(ctx, a.TenantID, "detector", a.DeviceID, devices.StatusSuspended)
				case posture.ActionRevoke:
					_, err = d.devs.Revoke(ctx, a.TenantID, "detector", a.DeviceID, "anomaly: "+a.Metric)
				case posture.ActionNotify:
					if d.notify != nil {
						err = d.notify.Notify(ctx, a)
					}
				}
				if err != nil {
					d.log.Error("mitigation failed", "device", a.DeviceID, "action", act, "err", err)
					done = append(done, string(act)+":failed")
				} else {
					done = append(done, string(act))
				}
			}
			detail["actions"] = strings.Join(done, ",")
			if err := d.j.Record(ctx, journal.Event{Actor: "detector", Tenant: a.TenantID, Action: "detect.anomaly",
				Target: a.DeviceID, Outcome: journal.OutcomeSuccess, Detail: detail}); err != nil {
				d.log.Error("journal write failed", "err", err)
			}
		}
	}
}

// ObserveMQTT adapts broker observations; device network reports on
// devices/{id}/events/network ({"destinations":["host:port"],
// "listening":[port]}) become destination samples.
func (d *detection) ObserveMQTT(ev broker.Observation) {
	s := posture.Sample{DeviceID: ev.DeviceID, TenantID: ev.TenantID, Topic: ev.Topic, Bytes: ev.Bytes, Remote: ev.Remote}
	switch ev.Kind {
	case broker.ObservedPublish:
		s.Kind = posture.SamplePublish
		if strings.HasSuffix(ev.Topic, "/events/network") {
			var rep struct {
				Destinations []string `json:"destinations"`
				Listening    []int    `json:"listening"`
			}
			if json.Unmarshal(ev.Payload, &rep) == nil && len(rep.Destinations) <= 256 && len(rep.Listening) <= 256 {
				for _, dst := range rep.Destinations {
					if len(dst) <= 300 {
						d.det.Observe(posture.Sample{Kind: posture.SampleDestination, DeviceID: ev.DeviceID, TenantID: ev.TenantID, Remote: dst})
					}
				}
				for _, port := range rep.Listening {
					d.det.Observe(posture.Sample{Kind: posture.SampleListenPort, DeviceID: ev.DeviceID, TenantID: ev.TenantID, Remote: fmt.Sprint(port)})
				}
			}
		}
	case broker.ObservedConnect:
		s.Kind = posture.SampleConnect
	case broker.ObservedAuthFailure:
		s.Kind = posture.SampleAuthFailure
	case broker.ObservedACLDenied:
		s.Kind = posture.SampleACLDenied
	default:
		return
	}
	d.det.Observe(s)
}
