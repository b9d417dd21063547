// Package safety is the hub's command safety service: device models and
// their versioned safety policies, and the life of a command from the API
// to the device's acknowledgement — authorization (the policy's verdict
// names every failed rule and carries the constraints to enforce),
// select-before-operate for hazardous commands (confirmation by the issuer
// or approval by a second person), emergency stops that nothing holds up,
// Ed25519-signed envelopes with a per-device sequence, a nonce and an
// expiry, delivery over the broker, acknowledgements and deadlines. Every
// step is journaled.
//
// The policy engine itself is sdk/safety, the same code the device's Guard
// runs: the hub is defence in depth, the device the last layer.
package safety

import (
	"context"
	"crypto/ed25519"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/api"
	"github.com/rampart-iot/rampart/internal/journal"
	engine "github.com/rampart-iot/rampart/sdk/safety"
)

// ErrNotFound is returned by a Store for a missing row.
var ErrNotFound = errors.New("not found")

// Command is a command's record.
type Command struct {
	ID, TenantID, DeviceID, Name string
	Params                       json.RawMessage
	Status                       string
	Verdict                      api.Verdict
	IssuedBy, ApprovedBy         string // user IDs
	Seq                          uint64
	CreatedAt, SelectExpires     time.Time
	SentAt, ExpiresAt, Deadline  time.Time
	AckedAt                      time.Time
	AckCode, AckMessage          string
}

// Store keeps models, commands and per-device safety state.
type Store interface {
	// InsertModel stores m as the next version of its name in the tenant
	// and returns that version (1 for a new name).
	InsertModel(ctx context.Context, tenantID string, m api.DeviceModel) (int, error)
	LatestModel(ctx context.Context, tenantID, name string) (api.DeviceModel, error)
	Models(ctx context.Context, tenantID string) ([]api.DeviceModel, error)

	InsertCommand(ctx context.Context, c *Command) error
	UpdateCommand(ctx context.Context, c *Command) error
	Command(ctx context.Context, tenantID, id string) (Command, error)
	Commands(ctx context.Context, tenantID, deviceID string, limit int) ([]Command, error)
	// OpenCommands are the device's commands awaiting confirmation or approval.
	OpenCommands(ctx context.Context, tenantID, deviceID string) ([]Command, error)
	// Due are commands sent with a deadline at or before now, or awaiting
	// with a selection that expired.
	Due(ctx context.Context, now time.Time, limit int) ([]Command, error)

	// DeviceState is the policy state and last sequence of a device (nil, 0 when none).
	DeviceState(ctx context.Context, deviceID string) ([]byte, uint64, error)
	SaveDeviceState(ctx context.Context, tenantID, deviceID string, state []byte, seq uint64) error
}

// Devices tells which model a device of the tenant has (the error of a
// missing device or another tenant's is a not-found *api.Error).
type Devices interface {
	ModelOf(ctx context.Context, tenantID, deviceID string) (string, error)
}

// FactSource gives the latest telemetry of a device as facts.
type FactSource interface {
	Facts(ctx context.Context, tenantID, deviceID string) (engine.Facts, error)
}

// Publisher delivers a signed envelope on devices/{id}/commands (QoS 1).
type Publisher interface {
	PublishCommand(deviceID string, payload []byte) error
}

// Recorder is the journal.
type Recorder interface {
	Record(ctx context.Context, e journal.Event) error
}

// Actor is who asks.
type Actor struct {
	UserID, TenantID, TokenID string
}

func (a Actor) String() string {
	if a.TokenID != "" {
		return "token:" + a.TokenID
	}
	return "user:" + a.UserID
}

// Options configure a Service.
type Options struct {
	Store     Store
	Devices   Devices
	Facts     FactSource
	Publisher Publisher
	Journal   Recorder
	Key       ed25519.PrivateKey // the hub's command-signing key
	Now       func() time.Time
	Rand      io.Reader
	Logger    *slog.Logger
	// QuotaPerMinute: commands per device per minute (emergency stops are
	// never counted against it). 0: DefaultQuotaPerMinute.
	QuotaPerMinute int
}

// Service is the hub's command safety service.
type Service struct {
	o     Options
	pub   ed25519.PublicKey
	locks sync.Map // device ID -> *sync.Mutex

	mu       sync.Mutex
	compiled map[string]*engine.Policy // tenant/name/version
	recent   map[string][]time.Time    // device -> send times in the last minute
}

// New validates o and builds the service.
func New(o Options) (*Service, error) {
	if o.Store == nil || o.Devices == nil || o.Journal == nil || o.Rand == nil || o.Now == nil {
		return nil, errors.New("safety: Store, Devices, Journal, Rand and Now are required")
	}
	if len(o.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("safety: an Ed25519 command key is required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.QuotaPerMinute <= 0 {
		o.QuotaPerMinute = DefaultQuotaPerMinute
	}
	return &Service{o: o, pub: o.Key.Public().(ed25519.PublicKey), compiled: map[string]*engine.Policy{}, recent: map[string][]time.Time{}}, nil
}

// SetPublisher sets the delivery path (the broker starts after the API).
func (s *Service) SetPublisher(p Publisher) {
	s.mu.Lock()
	s.o.Publisher = p
	s.mu.Unlock()
}

func (s *Service) publisher() Publisher {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.o.Publisher
}

// CommandKey is the public half of the command key, for devices to pin.
func (s *Service) CommandKey() api.CommandKey {
	return api.CommandKey{Algorithm: "Ed25519", KeyID: engine.KeyID(s.pub), PublicKey: base64.StdEncoding.EncodeToString(s.pub)}
}

func (s *Service) record(ctx context.Context, e journal.Event) {
	if err := s.o.Journal.Record(ctx, e); err != nil {
		s.o.Logger.Error("journal write failed", "action", e.Action, "err", err)
	}
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func (s *Service) random(prefix string, n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(s.o.Rand, b); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return prefix + lower(idEncoding.EncodeToString(b)), nil
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (s *Service) lock(deviceID string) func() {
	m, _ := s.locks.LoadOrStore(deviceID, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}
