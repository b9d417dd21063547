package app

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/rampart-iot/rampart/internal/broker"
	"github.com/rampart-iot/rampart/internal/devices"
	"github.com/rampart-iot/rampart/internal/journal"
	"github.com/rampart-iot/rampart/internal/safety"
	"github.com/rampart-iot/rampart/internal/secrets"
	"github.com/rampart-iot/rampart/internal/telemetry"
	engine "github.com/rampart-iot/rampart/sdk/safety"
)

// vaultCommandKey holds the seed of the hub's Ed25519 command-signing key.
const vaultCommandKey = "commands/signing-key"

// factWindow: how many of a device's latest telemetry messages make up
// its facts for interlocks.
const factWindow = 50

// ackQueue bounds acknowledgements waiting for the safety service; the
// broker never blocks on them (an ack dropped here fails its command at
// the deadline, which is the safe side).
const ackQueue = 1024

// loadCommandKey reads the command key from the vault, creating it (and
// journaling that) on first run.
func loadCommandKey(ctx context.Context, d *data, j *journal.Journal, rnd io.Reader) (ed25519.PrivateKey, error) {
	seed, err := d.vault.Get(ctx, vaultCommandKey)
	if err == nil && len(seed) == ed25519.SeedSize {
		return ed25519.NewKeyFromSeed(seed), nil
	}
	if err != nil && !errors.Is(err, secrets.ErrNotFound) {
		return nil, fmt.Errorf("reading the command key: %w", err)
	}
	if err == nil {
		return nil, fmt.Errorf("the command key in the vault is %d bytes, not %d", len(seed), ed25519.SeedSize)
	}
	seed = make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(rnd, seed); err != nil {
		return nil, err
	}
	if err := d.vault.Put(ctx, vaultCommandKey, seed); err != nil {
		return nil, fmt.Errorf("storing the command key: %w", err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	if err := j.Record(ctx, journal.Event{Actor: "system", Action: "safety.command_key_created", Target: engine.KeyID(key.Public().(ed25519.PublicKey)),
		Outcome: journal.OutcomeSuccess}); err != nil {
		return nil, err
	}
	return key, nil
}

// deviceModels adapts the registry to safety.Devices.
type deviceModels struct{ devs *devices.Service }

func (m deviceModels) ModelOf(ctx context.Context, tenantID, deviceID string) (string, error) {
	d, err := m.devs.Get(ctx, tenantID, deviceID)
	if err != nil {
		return "", err
	}
	return d.Model, nil
}

// telemetryFacts turns a device's latest JSON telemetry into facts: every
// top-level number, boolean or string, the newest message winning.
type telemetryFacts struct{ g *telemetry.Ingester }

func (f telemetryFacts) Facts(ctx context.Context, tenantID, deviceID string) (engine.Facts, error) {
	msgs, err := f.g.List(ctx, tenantID, deviceID, factWindow)
	if err != nil {
		return nil, err
	}
	facts := engine.FactSet{}
	for _, m := range msgs { // oldest first
		if !strings.Contains(m.Topic, "/telemetry") && !strings.Contains(m.Topic, "/events") {
			continue
		}
		var obj map[string]any
		if json.Unmarshal(m.Payload, &obj) != nil {
			continue
		}
		for k, v := range obj {
			switch v.(type) {
			case float64, bool, string:
				facts[k] = engine.Fact{Value: v, At: m.Received}
			}
		}
	}
	return facts, nil
}

// brokerPublisher delivers envelopes at QoS 1.
type brokerPublisher struct{ b *broker.Broker }

func (p brokerPublisher) PublishCommand(deviceID string, payload []byte) error {
	return p.b.PublishToDevice(deviceID, "commands", payload, 1)
}

// ackSink wraps the telemetry sink: acknowledgements and the devices'
// safety events (devices/{id}/events/safety) also go, off the broker's
// goroutine, to the safety service.
type ackSink struct {
	next broker.Sink
	svc  *safety.Service
	q    chan broker.Message
	log  *slog.Logger
}

func newAckSink(svc *safety.Service, log *slog.Logger) *ackSink {
	return &ackSink{svc: svc, q: make(chan broker.Message, ackQueue), log: log}
}

// wrap puts the ack sink in front of the broker's telemetry sink.
func (s *ackSink) wrap(next broker.Sink) broker.Sink {
	s.next = next
	return s
}

// runCommands connects the service to the broker and runs the deadline
// sweep and the ack worker; the returned func stops them.
func runCommands(svc *safety.Service, acks *ackSink, b *broker.Broker) (stop func()) {
	svc.SetPublisher(brokerPublisher{b: b})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); svc.Run(ctx) }()
	go acks.run(ctx, &wg)
	return func() { cancel(); wg.Wait() }
}

func (s *ackSink) Ingest(m broker.Message) {
	s.next.Ingest(m)
	prefix := "devices/" + m.DeviceID + "/"
	rest, ok := strings.CutPrefix(m.Topic, prefix+"acks")
	if m.Topic == prefix+"events/safety" || ok && (rest == "" || rest[0] == '/') {
		select {
		case s.q <- m:
		default:
			s.log.Warn("ack queue full; dropping ack (its command fails at the deadline)", "device", m.DeviceID)
		}
	}
}

// run hands queued acks to the service until ctx ends.
func (s *ackSink) run(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-s.q:
			if strings.HasSuffix(m.Topic, "/events/safety") {
				s.svc.DeviceEvent(ctx, m.TenantID, m.DeviceID, m.Payload)
				continue
			}
			s.svc.Ack(ctx, m.TenantID, m.DeviceID, m.Topic, m.Payload)
		}
	}
}

// startCommands builds the command safety service.
func startCommands(ctx context.Context, d *data, j *journal.Journal, e env, log *slog.Logger, devs *devices.Service, ingest *telemetry.Ingester) (*safety.Service, error) {
	key, err := loadCommandKey(ctx, d, j, e.rand)
	if err != nil {
		return nil, err
	}
	return safety.New(safety.Options{
		Store: d.db.Commands(), Devices: deviceModels{devs: devs}, Facts: telemetryFacts{g: ingest},
		Journal: j, Key: key, Now: e.now, Rand: e.rand, Logger: log,
	})
}

var _ broker.Sink = (*ackSink)(nil)
